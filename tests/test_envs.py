"""The conda environments (envs/*.yaml, for snakemake --sdm conda) agree with pyproject.toml,
and every rule names one that exists."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

REPO = Path(__file__).resolve().parents[1]
ENVS = sorted((REPO / "envs").glob("*.yaml"))
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
# Packages only the driving snakemake process uses (the Snakefile's schema validation),
# not the jobs, so no job environment needs them.
DRIVER_ONLY = {"snakemake", "jsonschema"}


def _pinned() -> dict[str, Requirement]:
    requirements = (Requirement(r) for r in PYPROJECT["dependencies"])
    return {r.name.lower(): r for r in requirements}


def _env(path: Path) -> tuple[str, list[Requirement]]:
    """(python version, pip requirements) of a conda environment file."""
    spec = yaml.safe_load(path.read_text())["dependencies"]
    python = next(d.split("=", 1)[1] for d in spec if isinstance(d, str) and d.startswith("python="))
    pip = next(d["pip"] for d in spec if isinstance(d, dict))
    return python, [Requirement(r) for r in pip]


def _rules() -> dict[str, str]:
    """Rule name -> its body, for every rule in rules/*.smk."""
    out = {}
    for smk in sorted((REPO / "rules").glob("*.smk")):
        parts = re.split(r"^rule (\w+):\n", smk.read_text(), flags=re.M)
        out |= {name: f"{smk.name}\n{body}" for name, body in zip(parts[1::2], parts[2::2], strict=True)}
    return out


def test_there_is_one_environment_per_rule_group():
    assert {p.stem for p in ENVS} == {"environment", "torch", "plots"}


@pytest.mark.parametrize("path", ENVS, ids=lambda p: p.name)
def test_every_pin_in_an_environment_is_pyproject_tomls(path):
    python, requirements = _env(path)
    assert SpecifierSet(PYPROJECT["requires-python"]).contains(f"{python}.0"), (path.name, python)
    pinned = _pinned()
    for requirement in requirements:
        name = requirement.name.lower()
        assert name in pinned, f"{path.name}: {requirement} is not a dependency in pyproject.toml"
        assert requirement.specifier == pinned[name].specifier, (
            f"{path.name}: {requirement} but pyproject.toml has {pinned[name]}"
        )
    names = [r.name.lower() for r in requirements]
    assert len(names) == len(set(names)), f"{path.name} lists a package twice"


def test_every_dependency_a_job_needs_is_in_some_environment():
    in_envs = {r.name.lower() for path in ENVS for r in _env(path)[1]}
    assert set(_pinned()) - DRIVER_ONLY <= in_envs


def test_every_rule_that_runs_code_names_an_existing_environment():
    rules = _rules()
    scripts = {m.group(1) for body in rules.values() if (m := re.search(r'"../scripts/(\w+\.py)"', body))}
    assert scripts == {p.name for p in (REPO / "scripts").glob("*.py")}  # every rule was parsed
    for name, body in rules.items():
        if "script:" not in body and "shell:" not in body and "run:" not in body:
            continue
        conda = re.search(r'^    conda:\n        "([^"]+)"', body, flags=re.M)
        assert conda, f"rule {name} has no conda: directive"
        env = (REPO / "rules" / conda.group(1)).resolve()
        assert env.parent == REPO / "envs" and env.is_file(), f"rule {name}: {conda.group(1)} does not exist"


# Run in a fresh interpreter: import the modules in argv[2:], print which of the
# distributions in argv[1] (comma-separated) got loaded. yaml's distribution is pyyaml.
PROBE = """
import importlib, sys
for module in sys.argv[2:]:
    importlib.import_module(module)
loaded = {{"yaml": "pyyaml"}.get(name, name) for name in sys.modules}
print(",".join(sorted(loaded & set(sys.argv[1].split(",")))))
"""


def _package_modules(env_name: str) -> list[str]:
    """The projected_grpo modules the rule scripts that use ``envs/<env_name>`` import."""
    scripts = [
        REPO / "scripts" / re.search(r'script:\n        "../scripts/(\w+\.py)"', body).group(1)
        for body in _rules().values()
        if f'"../envs/{env_name}"' in body
    ]
    found = (
        re.findall(r"^from (projected_grpo(?:\.\w+)+) import", s.read_text(), flags=re.M) for s in scripts
    )
    return sorted({m for modules in found for m in modules})


@pytest.mark.parametrize("path", ENVS, ids=lambda p: p.name)
def test_the_modules_an_environments_rules_import_need_only_its_packages(path):
    """What importing the modules loads must be in the environment (functions may import
    more when they run, e.g. scipy in stats.paired_test, so this is a floor, not the list)."""
    modules = _package_modules(path.name)
    assert modules, f"no rule script uses {path.name}"
    jobs_need = ",".join(sorted(set(_pinned()) - DRIVER_ONLY))
    probe = [sys.executable, "-c", PROBE, jobs_need, *modules]
    loaded = subprocess.run(probe, capture_output=True, text=True, timeout=120, check=True).stdout
    env_has = {r.name.lower() for r in _env(path)[1]}
    assert set(filter(None, loaded.strip().split(","))) <= env_has, path.name

"""The package is laid out by the DAG's stages and its imports run one way: a module may
import its own subpackage and the stages below it, never a stage above (nor a circle)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import yaml

from projected_grpo.environment.modes import MODES

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "projected_grpo"
# Bottom to top. Stages on one level are independent of each other.
LAYERS = [
    ("core",),
    ("environment",),
    ("organism", "policy"),
    ("pool",),
    ("method",),
    ("training",),
    ("study",),
]
LEVEL = {stage: i for i, stages in enumerate(LAYERS) for stage in stages}


def imports_of(path: Path, source: str | None = None) -> set[str]:
    """Every ``projected_grpo`` module the module at ``path`` (its text: ``source``, else the
    file) imports, at the top or inside a function, as dotted names below the package
    (``environment.modes``; ``from ..study import stats`` gives ``study.stats``)."""
    package = path.relative_to(PACKAGE.parent).with_suffix("").parts[:-1]
    found = set()
    for node in ast.walk(ast.parse(source if source is not None else path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                target = [*package[: len(package) - node.level + 1], *(node.module or "").split(".")]
            else:
                target = (node.module or "").split(".")
            target = [part for part in target if part]
            if target[0] != "projected_grpo":
                continue
            for alias in node.names:
                submodule = PACKAGE.joinpath(*target[1:], alias.name)
                is_module = submodule.with_suffix(".py").is_file() or submodule.is_dir()
                found.add(".".join([*target[1:], alias.name] if is_module else target[1:]))
        elif isinstance(node, ast.Import):
            found |= {
                a.name.removeprefix("projected_grpo.")
                for a in node.names
                if a.name.startswith("projected_grpo.")
            }
    return found


def modules() -> dict[str, Path]:
    return {
        ".".join(p.relative_to(PACKAGE).with_suffix("").parts): p
        for p in sorted(PACKAGE.rglob("*.py"))
        if p.name != "__init__.py"
    }


def test_every_module_lives_in_a_stage_subpackage():
    stray = [name for name in modules() if "." not in name or name.split(".")[0] not in LEVEL]
    assert stray == [], f"modules outside the stage subpackages {sorted(LEVEL)}: {stray}"


@pytest.mark.parametrize("name", sorted(modules()))
def test_imports_never_run_up_the_stages(name):
    stage = name.split(".")[0]
    upward = [
        target
        for target in imports_of(modules()[name])
        if target.split(".")[0] != stage and LEVEL[target.split(".")[0]] >= LEVEL[stage]
    ]
    assert upward == [], (
        f"{name} ({stage}, level {LEVEL[stage]}) imports a stage at or above its own: {upward}"
    )


def test_no_import_circle_inside_a_stage():
    graph = {name: {t for t in imports_of(path) if t in modules()} for name, path in modules().items()}
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                raise AssertionError("import circle: " + " -> ".join([*trail, node, nxt]))
            if nxt not in state:
                visit(nxt, [*trail, node])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [])


def test_the_layer_check_sees_an_upward_import():
    """The walker finds relative, parent-relative and function-local imports (else the two
    tests above could pass on a package they cannot read)."""
    probe = PACKAGE / "environment" / "probe.py"
    source = (
        "from ..training.train import train\nfrom . import modes\n\ndef f():\n    from ..study import stats\n"
    )
    assert imports_of(probe, source) == {"training.train", "environment.modes", "study.stats"}


def test_the_config_schema_names_the_modes_the_package_defines():
    schema = yaml.safe_load((PACKAGE.parents[1] / "schemas" / "config.schema.yaml").read_text())
    pattern = schema["properties"]["method"]["properties"]["folds"]["items"]["pattern"]
    named = re.search(r"without_\(([^)]*)\)", pattern).group(1).split("|")
    assert named == list(MODES)


def test_every_console_script_runs_a_main_of_the_package():
    import importlib
    import tomllib

    scripts = tomllib.loads((PACKAGE.parents[1] / "pyproject.toml").read_text())["project"]["scripts"]
    assert {"pgrpo-grade", "pgrpo-evaluate", "pgrpo-train", "pgrpo-leetcode", "pgrpo-benchmarks"} <= set(
        scripts
    )
    for target in scripts.values():
        module, function = target.split(":")
        assert callable(getattr(importlib.import_module(module), function)), target

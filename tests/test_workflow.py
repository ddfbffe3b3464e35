"""The Snakemake workflow: the DAG resolves, and a bad config fails at start-up naming the key."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import pandas as pd
import pytest
import yaml

pytestmark = pytest.mark.dag  # every test here runs snakemake (a DAG, a dry run or a start-up check)

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake", "--cores", "1", "--dry-run"]


def _dry_run(*extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([*SNAKEMAKE, *extra], cwd=REPO, capture_output=True, text=True, timeout=120)


def test_default_dag_schedules_every_stage():
    result = _dry_run("--directory", str(REPO), "--forceall")
    assert result.returncode == 0, result.stderr
    rules = ("build_problems", "self_check", "build_organism", "organism_base_rates", "build_pool",
             "build_pairs", "extract_v_hack", "random_basis", "train", "emergence_figure", "all")  # fmt: skip
    for rule in rules:
        assert f"rule {rule}:" in result.stdout or f"localrule {rule}:" in result.stdout


def _config_with(tmp_path: Path, change) -> Path:
    """config.yaml with ``change(config)`` applied, as a --configfile (which replaces it)."""
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    change(config)
    path = tmp_path / "changed.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_bad_config_value_fails_before_any_job_naming_the_key(tmp_path):
    bad = _config_with(tmp_path, lambda c: c["sandbox"].update(workers="zero"))
    result = _dry_run("--configfile", str(bad))
    output = result.stdout + result.stderr  # snakemake 9 logs errors to stdout
    assert result.returncode != 0
    assert "['sandbox']['workers']" in output and "'zero'" in output and "integer" in output
    assert "rule build_problems:" not in output


def test_unknown_config_key_is_rejected(tmp_path):
    bad = _config_with(tmp_path, lambda c: c.update(evaluaton={"n_samples": 4}))
    result = _dry_run("--configfile", str(bad))
    output = result.stdout + result.stderr
    assert result.returncode != 0 and "'evaluaton' was unexpected" in output


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda c: c["arms"]["erase"].pop("basis"),
            "arms.erase: projection.intervention 'erase' needs a basis",
        ),
        (
            lambda c: c["arms"]["erase_random_V_matched"].pop("match_basis"),
            "match_removed and match_basis go together",
        ),
        (
            lambda c: c["arms"]["keep_trusted"].pop("basis"),
            "arms.keep_trusted: projection.intervention 'keep' needs a basis",
        ),
        (
            lambda c: c["arms"]["keep_random_V"]["projection"].update(overshoot=2.0),
            "arms.keep_random_V: expected valid projection settings (projection.intervention keep keeps span(V) whole",
        ),
        (lambda c: c["method"].update(folds=["without_sentinel"]), "method.folds: must contain 'all'"),
        (
            lambda c: (
                c["method"]["extraction"].update(method="gev", source="pairs", geometry="raw"),
                c["arms"].pop("erase_correct_V"),
                c["arms"]["erase"].setdefault("projection", {}).update(refresh_every=2),
            ),
            "arms.erase: projection.refresh_every re-extracts V with method svd only",
        ),
        (
            lambda c: c["arms"]["erase_random_V"].setdefault("projection", {}).update(refresh_every=2),
            "arms.erase_random_V: projection.refresh_every re-extracts a basis extract_v_hack builds (real, "
            "shuffled, correct for extraction.source policy); basis 'random' cannot be refreshed",
        ),
        (
            lambda c: c["arms"].update(erase_nonhack_V={"basis": "nonhack"}),
            "arms.erase_nonhack_V: basis 'nonhack' is not built by extraction.source policy",
        ),
        (
            lambda c: (c["method"]["extraction"].update(source="pairs"), c["arms"].pop("erase_correct_V")),
            "method.extraction: extraction.geometry adam: for source policy",
        ),
        (
            lambda c: c["arms"].update(erase_oracle_V={"basis": "oracle", "folds": ["all", "lomo"]}),
            "arms.erase_oracle_V: the oracle basis comes from fold-all runs",
        ),
        (
            lambda c: c["arms"].pop("rl_baseline"),
            "the oracle basis needs arms 'vanilla' and 'rl_baseline'",
        ),
    ],
)
def test_an_arm_that_cannot_work_fails_at_start_up_naming_it(tmp_path, change, message):
    result = _dry_run("--configfile", str(_config_with(tmp_path, change)))
    assert result.returncode != 0 and message in result.stdout + result.stderr
    assert "rule build_problems:" not in result.stdout


def test_with_method_gev_extraction_reads_the_folds_clean_vs_clean_pairs(tmp_path):
    def gev(c: dict) -> None:
        c["method"]["extraction"].update(method="gev", null_draws=20, source="pairs", geometry="raw")
        c["arms"].pop("erase_correct_V")
        c["arms"].pop("erase_refresh")  # gev is not wired into refresh

    config = _config_with(tmp_path, gev)
    result = _dry_run("results/basis/without_sentinel/V_real.safetensors", "--configfile", str(config))
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    job = result.stdout.split("rule extract_v_hack:")[1].split("\n\n")[0]
    assert "results/basis/without_sentinel/pairs_nonhack.parquet" in job


def test_by_default_every_basis_reads_the_students_own_samples(tmp_path):
    """The default extraction is the policy source; the oracle reads the dev-seed runs."""
    config = _config_with(tmp_path, lambda c: None)
    result = _dry_run("--configfile", str(config), "--directory", str(tmp_path), "--forceall")
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert {
        "policy_samples",
        "policy_gradients",
        "dominant_basis",
        "trusted_basis",
        "random_basis",
        "oracle_basis",
        "oracle_overlap",
    } <= _scheduled(result)
    extraction = result.stdout.split("rule extract_v_hack:")[1].split("output:")[0]
    assert "results/basis/policy_gradients.safetensors" in extraction and "pairs_" not in extraction
    oracle = result.stdout.split("rule oracle_basis:")[1].split("output:")[0]  # its inputs
    for run in ("vanilla/seed1", "vanilla/seed3", "rl_baseline/seed1", "rl_baseline/seed3"):
        assert f"results/runs/all/{run}" in oracle  # dev seeds, not the report seeds
    assert "seed41" not in oracle
    random_trusted = result.stdout.split("output: results/basis/all/V_random_trusted.safetensors")[0]
    assert random_trusted.rsplit("input:", 1)[1].strip() == "results/basis/all/V_trusted.safetensors"


def test_a_configfile_replaces_the_default_config_instead_of_merging_into_it(tmp_path):
    fewer = _config_with(tmp_path, lambda c: c.update(arms={"vanilla": {"basis": "real"}}))
    result = _dry_run("--configfile", str(fewer), "--directory", str(tmp_path), "--forceall")
    assert result.returncode == 0, result.stdout[-2000:]
    assert "results/runs/all/vanilla/seed41" in result.stdout
    assert "results/runs/all/erase/" not in result.stdout  # config.yaml's other arms are not merged in


def _scheduled(result: subprocess.CompletedProcess) -> set[str]:
    """Rule names a dry run schedules."""
    return set(re.findall(r"^(?:local)?rule (\w+):", result.stdout, flags=re.M))


@pytest.mark.timeout(1200)  # the shared DAG run's setup counts here: minutes on a busy machine
def test_tiny_config_runs_the_whole_dag_and_a_rerun_schedules_nothing(tiny_dag):
    """End to end on .test/config.yaml (minutes-scale settings cut to seconds); then dry
    runs: nothing to redo, an edited figure script redoes only its figures, a changed
    extraction setting redoes V and the runs but not the organism or the pool."""
    first, tmp_path = tiny_dag.result, tiny_dag.workdir
    config = tmp_path / ".test" / "config.yaml"
    run = [*tiny_dag.command, "--cores", "2"]
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    rates = json.loads((tmp_path / "results/organism/student/base_rates.json").read_text())
    assert set(rates["variants"]) == {"loophole", "no_loophole", "renamed"}
    assert set(rates["checks"]) >= {"performance", "hack_rate", "format_ok", "hint_match_ratio"}
    assert (tmp_path / "results/organism/student/model/config.json").is_file()
    assert (tmp_path / "results/benchmarks/build_organism/student.tsv").is_file()
    assert (tmp_path / "results/organism/teacher/model/config.json").is_file()
    arms = ("vanilla", "route", "erase_random_V_matched", "erase_shuffled_V", "erase_nonhack_V",
            "monitor_screen", "vanilla_no_teacher", "rl_baseline")  # fmt: skip
    for arm in arms:
        run_dir = tmp_path / f"results/runs/all/{arm}/seed41"
        assert {"steps.parquet", "knobs.safetensors", "eval_summary.json", "manifest.json"} <= {
            f.name for f in run_dir.iterdir()
        }
    assert (tmp_path / "results/runs/all/route/seed41/eval_summary_ablated.json").is_file()
    manifest = json.loads((tmp_path / "results/runs/all/vanilla/seed41/manifest.json").read_text())
    assert manifest["config"]["train"]["seed"] == 41 and manifest["versions"]["torch"]
    assert manifest["config"]["basis"]["basis"]["meta"]["kind"] == "real"
    steps = {arm: pd.read_parquet(tmp_path / f"results/runs/all/{arm}/seed41/steps.parquet") for arm in arms}
    vanilla = steps["vanilla"]
    assert "cin" in vanilla and "cout" not in vanilla  # measured, not projected
    assert vanilla["cin"].notna().equals(vanilla["grad_norm"] > 0)
    assert steps["route"]["hack_rate_deployed"].notna().sum() == 2  # steps 0 and 2
    assert steps["erase_shuffled_V"]["basis_overlap"].notna().sum() == 1  # refreshed after step 2
    assert "cin" not in steps["monitor_screen"]
    for kind in ("real", "random", "shuffled", "nonhack"):
        assert (tmp_path / f"results/basis/all/V_{kind}.safetensors").is_file()
    assert (tmp_path / "results/figures/emergence.png").stat().st_size > 0
    selfcheck = json.loads((tmp_path / "results/environment/selfcheck.json").read_text())
    assert selfcheck["errors"] == [] and selfcheck["problems"] == 70
    for arm in ("vanilla", "route", "route_random_V"):  # the leave-one-mode-out fold's arms
        assert (tmp_path / f"results/runs/without_sentinel/{arm}/seed41/eval_summary.json").is_file()
    assert "sentinel" in (tmp_path / "results/tables/lomo.md").read_text()
    for name in ("table1.md", "table1.pdf", "tables/verdict.md", "figures/arms.png", "figures/cin.png",
                 "figures/lomo.png", "figures/tradeoff.png"):  # fmt: skip
        assert (tmp_path / "results" / name).stat().st_size > 0, name
    again = subprocess.run([*run, "--dry-run"], capture_output=True, text=True, timeout=120)
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr
    report = tmp_path / "results" / "report.html"
    made = subprocess.run([*run, "--report", str(report)], capture_output=True, text=True, timeout=300)
    assert made.returncode == 0 and report.stat().st_size > 0, made.stdout[-2000:] + made.stderr[-2000:]
    front = report.read_text().split("workflow-desc")[1]  # the front page: question, verdict, Table 1
    assert (
        front.index("Can gradient projection stop")
        < front.index("The verdict on H1")
        < front.index("Table 1.")
    )

    figure_script = tmp_path / "scripts" / "arm_figures.py"
    figure_script.write_text(figure_script.read_text() + "# a changed figure script\n")
    edited = subprocess.run([*run, "--dry-run"], capture_output=True, text=True, timeout=120)
    assert _scheduled(edited) == {"arm_figures", "all"}, edited.stdout[-2000:]

    original = config.read_text()
    config.write_text(original.replace("extraction: {k: 2,", "extraction: {k: 1,"))
    changed = subprocess.run([*run, "--dry-run"], capture_output=True, text=True, timeout=120)
    config.write_text(original)
    scheduled = _scheduled(changed)
    assert {"extract_v_hack", "random_basis", "train", "aggregate"} <= scheduled, changed.stdout[-2000:]
    assert not scheduled & {"build_organism", "build_pool", "build_pairs", "build_problems"}
    assert "output: results/runs/all/vanilla/seed41" in changed.stdout  # reads V
    assert "output: results/runs/all/monitor_screen/seed41" not in changed.stdout  # does not


def test_the_interim_report_reads_the_runs_a_study_has_finished(tiny_dag, tmp_path, monkeypatch, capsys):
    """pgrpo-aggregate on the tiny DAG's results: with every run finished its Table 1 and
    verdict are the aggregate rule's, byte for byte; a run without its manifest (still
    training) is left out and counted in an "Interim: N - 1 of N" note; no vanilla run yet is
    a clear error."""
    from projected_grpo.study.aggregate import main

    assert tiny_dag.result.returncode == 0, tiny_dag.result.stdout[-3000:]
    results = tmp_path / "results"
    shutil.copytree(tiny_dag.workdir / "results", results, ignore=shutil.ignore_patterns("checkpoints"))
    monkeypatch.chdir(
        tiny_dag.workdir
    )  # reads report/workflow.rst and the config there, writes under tmp_path
    args = ["--config", ".test/config.yaml", "--results", str(results)]
    main([*args, "--out", str(tmp_path / "full")])
    scheduled = len(pd.read_parquet(results / "summary.parquet"))
    assert f"All {scheduled} scheduled runs finished" in capsys.readouterr().out
    assert (tmp_path / "full/table1.md").read_text() == (results / "table1.md").read_text()
    assert (tmp_path / "full/tables/verdict.md").read_text() == (results / "tables/verdict.md").read_text()
    assert (tmp_path / "full/figures/arms.png").stat().st_size > 0

    (results / "runs/all/erase_shuffled_V/seed41/manifest.json").unlink()
    main([*args, "--out", str(tmp_path / "partial")])
    assert f"Interim: {scheduled - 1} of {scheduled} scheduled runs finished" in capsys.readouterr().out
    assert (
        (tmp_path / "partial/table1.md")
        .read_text()
        .startswith(f"Table 1. Interim: {scheduled - 1} of {scheduled} scheduled runs finished. ")
    )
    summary = pd.read_parquet(tmp_path / "partial/summary.parquet")
    assert len(summary) == scheduled - 1 and "erase_shuffled_V" not in set(summary["arm"])

    shutil.rmtree(results / "runs/all/vanilla")
    with pytest.raises(SystemExit) as exit_:
        main([*args, "--out", str(tmp_path / "none")])
    assert exit_.value.code == 2 and "no finished fold-all vanilla run" in capsys.readouterr().err


# Columns that hold wall-clock time, the one thing two runs of the DAG may differ in.
WALL_TIME_COLUMNS = {"step_seconds"}


@pytest.mark.timeout(1500)  # two DAG runs (the shared ones' setup counts here): minutes on a busy machine
def test_two_runs_of_the_tiny_dag_write_identical_parquet_files(tiny_dag, tiny_dag_rerun):
    """The DAG rerun from scratch in another folder and process (on SLURM where the SLURM
    test runs) gives byte-identical parquet outputs; files with wall-time columns are
    identical once those are dropped."""
    assert tiny_dag.result.returncode == 0, tiny_dag.result.stdout[-3000:]
    assert tiny_dag_rerun.result.returncode == 0, tiny_dag_rerun.result.stdout[-3000:]
    first, tmp_path = tiny_dag.workdir, tiny_dag_rerun.workdir
    files = sorted(p.relative_to(first) for p in (first / "results").rglob("*.parquet"))
    assert files == sorted(p.relative_to(tmp_path) for p in (tmp_path / "results").rglob("*.parquet"))
    assert len(files) > 40
    differing = []
    for name in files:
        a, b = (first / name).read_bytes(), (tmp_path / name).read_bytes()
        if a == b:
            continue
        frame_a, frame_b = pd.read_parquet(first / name), pd.read_parquet(tmp_path / name)
        wall = WALL_TIME_COLUMNS & set(frame_a.columns)
        if not wall or not frame_a.drop(columns=list(wall)).equals(frame_b.drop(columns=list(wall))):
            differing.append(str(name))
    assert differing == []


@pytest.mark.timeout(1200)  # a DAG run (the shared one's setup counts here): minutes on a busy machine
def test_every_run_has_a_manifest_with_its_config_versions_and_git_revision(tiny_dag):
    from projected_grpo.core.manifest import git_revision, package_versions
    from projected_grpo.organism.pretrain import OrganismConfig
    from projected_grpo.training.train import TrainConfig

    folder = tiny_dag.workdir
    config = yaml.safe_load((REPO / ".test" / "config.yaml").read_text())
    runs = sorted((folder / "results" / "runs").glob("*/*/seed*"))
    assert len(runs) == 11
    revision, versions = git_revision(REPO), package_versions()
    assert revision["commit"] and all(versions[name] for name in ("torch", "transformers", "projected-grpo"))
    for run in runs:
        manifest = json.loads((run / "manifest.json").read_text())
        fold, arm, seed = run.parent.parent.name, run.parent.name, int(run.name.removeprefix("seed"))
        changes = {k: v for k, v in config["arms"][arm].items() if k not in ("basis", "match_basis", "folds")}
        settings = _merged(config["train"], changes) | {"seed": seed, **config["compute"]}
        modes = ["run_tests", "sentinel", "stdout_marker", "file_marker"]
        settings["known_modes"] = [m for m in modes if fold == "all" or fold != f"without_{m}"]
        expected = json.loads(json.dumps(asdict(TrainConfig.from_dict(settings))))
        assert manifest["config"]["train"] == expected, run
        assert manifest["config"]["model"] == "results/organism/student/model"
        assert manifest["config"]["device"] == "cpu"
        assert (manifest["config"]["basis"] is None) == ("basis" not in config["arms"][arm])
        assert manifest["versions"] == versions
        assert manifest["git"] == revision
    for role, changes in (("student", {}), ("teacher", config["teacher"]["organism"])):
        record = json.loads((folder / f"results/organism/{role}/model/organism.json").read_text())
        expected = asdict(OrganismConfig.from_dict(_merged(config["organism"], changes)))
        assert record["config"] == json.loads(json.dumps(expected))


def _merged(base: dict, changes: dict) -> dict:
    """rules/common.smk's `merged`: nested mappings merged key by key."""
    out = dict(base)
    for key, value in changes.items():
        out[key] = (
            _merged(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
        )
    return out


@pytest.mark.timeout(1500)  # the shared DAG run's setup counts here
def test_the_policy_source_and_the_oracle_run_on_the_tiny_organism(tiny_dag, tmp_path):
    """On a copy of the tiny DAG's results (organisms, pool, the seed-41 runs reused):
    extraction.source policy in Adam's geometry builds every basis kind from the student's
    own samples, one axis per module; the diagnostics read them in both folds; the oracle
    basis comes from the vanilla and rl_baseline runs and an arm trains with it; an arm
    refreshes its policy basis every step, and the keep arms train with the trusted basis
    and its random control."""
    import shutil

    import torch

    from projected_grpo.method.basis import Basis

    assert tiny_dag.result.returncode == 0, tiny_dag.result.stdout[-3000:]
    work = tmp_path / "work"
    shutil.copytree(tiny_dag.workdir, work, symlinks=True, ignore=shutil.ignore_patterns(".snakemake"))
    config = yaml.safe_load((work / ".test" / "config.yaml").read_text())
    config["method"]["extraction"].update(source="policy", geometry="adam")
    config["method"].update(
        policy={"n_per_problem": 8, "seed": 0, "refresh_rows": 8},
        oracle={"seeds": [41], "k": 1},
        trusted={"k": 3},
    )
    config["arms"] = {
        "vanilla": {"basis": "real"},
        "rl_baseline": {"loophole": False},
        "erase_update_oracle_V": {"basis": "oracle", "projection": {"intervention": "erase", "project_target": "update"}},
        "erase_correct_V": {"basis": "correct", "projection": {"intervention": "erase"}, "folds": ["all", "lomo"]},
        "erase_dominant_V": {"basis": "dominant", "projection": {"intervention": "erase"}},
        "erase_shuffled_V": {"basis": "shuffled", "projection": {"intervention": "erase"}},
        "erase_random_V": {"basis": "random", "projection": {"intervention": "erase"}},
        "erase_refresh": {"basis": "real", "projection": {"intervention": "erase", "project_target": "update", "refresh_every": 1}},
        "keep_trusted": {"basis": "trusted", "projection": {"intervention": "keep", "project_target": "update"}},
        "keep_random_V": {"basis": "random_trusted", "projection": {"intervention": "keep", "project_target": "update"}},
    }  # fmt: skip
    (work / "policy.yaml").write_text(yaml.safe_dump(config))
    command = [
        sys.executable, "-m", "snakemake", "--snakefile", str(work / "Snakefile"), "--directory", str(work),
        "--configfile", str(work / "policy.yaml"), "--cores", "2", "--rerun-triggers", "mtime", "--",
    ]  # fmt: skip
    sampled = subprocess.run(
        [*command, "results/basis/policy_samples.parquet"], capture_output=True, text=True
    )
    assert sampled.returncode == 0, sampled.stdout[-3000:] + sampled.stderr[-3000:]
    # The tiny organism writes no well-formed code, so its detector flags nothing: mark two of
    # every eight samples of a prompt as using a lever (sentinel, run_tests) and two as
    # correct, which is all the extraction reads of the grades.
    samples_file = work / "results/basis/policy_samples.parquet"
    samples = pd.read_parquet(samples_file)
    i = pd.RangeIndex(len(samples))
    samples = samples.assign(
        attempted_sentinel=i % 8 == 0, attempted_run_tests=i % 8 == 4, oracle_correct=i % 4 == 2
    )
    samples.to_parquet(samples_file)
    targets = ["results/tables/basis_diagnostics.md", "results/tables/oracle_overlap.md",
               *(f"results/runs/all/{arm}/seed41" for arm in ("erase_update_oracle_V", "erase_refresh", "keep_trusted",
                                                               "keep_random_V"))]  # fmt: skip
    result = subprocess.run([*command, *targets], capture_output=True, text=True, timeout=1200)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    scheduled = _scheduled(result)
    assert not scheduled & {"build_organism", "build_pool"}  # reused
    for fold, kinds in (("all", ("real", "correct", "shuffled")), ("without_sentinel", ("real", "correct"))):
        for kind in kinds:
            basis = Basis.load(work / f"results/basis/{fold}/V_{kind}.safetensors")
            assert basis.scale is not None and set(basis.ranks.values()) == {1}, (fold, kind)
    real = Basis.load(work / "results/basis/all/V_real.safetensors")
    dominant = Basis.load(work / "results/basis/all/V_dominant.safetensors")
    assert dominant.ranks == real.ranks and torch.equal(
        dominant.scale[next(iter(real.scale))], next(iter(real.scale.values()))
    )
    samples = pd.read_parquet(work / "results/basis/policy_samples.parquet")
    assert set(samples["variant"]) == {"loophole"} and len(samples) == 8 * samples["problem_id"].nunique()
    assert real.meta["n_flagged"] == str(len(samples) // 4)  # fold all: both levers
    assert (work / "results/figures/basis_diagnostics.png").stat().st_size > 0
    diagnostics = pd.read_csv(work / "results/tables/basis_diagnostics.csv")
    fold_all = {"real", "correct", "dominant", "shuffled", "random", "trusted", "random_trusted"}
    assert set(diagnostics[diagnostics["fold"] == "all"]["kind"]) == fold_all
    assert set(diagnostics["fold"]) == {"all", "without_sentinel"}
    # the tiny organism's groups all score alike, so its knobs never move and the oracle is empty
    # here (tests/test_oracle.py has its maths); the DAG still builds it from the seed-41 runs
    assert Basis.load(work / "results/basis/all/V_oracle.safetensors").meta["seeds"] == "[41]"
    overlap = pd.read_csv(work / "results/tables/oracle_overlap.csv")
    assert set(overlap["kind"]) == fold_all
    trusted = Basis.load(work / "results/basis/all/V_trusted.safetensors")
    control = Basis.load(work / "results/basis/all/V_random_trusted.safetensors")
    assert trusted.meta["kind"] == "trusted" and set(trusted.ranks.values()) == {3}
    assert control.ranks == trusted.ranks and all(
        torch.equal(control.scale[n], trusted.scale[n]) for n in trusted.scale
    )
    assert all(torch.equal(trusted.scale[n], real.scale[n]) for n in real.scale)  # V_real's geometry
    refreshed = pd.read_parquet(work / "results/runs/all/erase_refresh/seed41/steps.parquet")
    assert refreshed["basis_overlap"].notna().all()  # re-read after every step
    for arm in ("keep_trusted", "keep_random_V"):
        steps = pd.read_parquet(work / f"results/runs/all/{arm}/seed41/steps.parquet")
        assert "kept_share" in steps, arm
    manifest = json.loads((work / "results/runs/all/erase_update_oracle_V/seed41/manifest.json").read_text())
    assert manifest["config"]["basis"]["basis"]["meta"]["kind"] == "oracle"


@pytest.mark.timeout(1500)  # the shared DAG run's setup counts here
def test_a_lomo_fold_whose_v_cannot_test_transfer_is_not_trained_by_default(tiny_dag, tmp_path):
    """On a copy of the tiny DAG (results and Snakemake's records), the gate switched on
    (method.diagnostics.untestable_folds: skip, config.yaml's default; the tiny config trains).
    The tiny student writes no hack, so real V separates none of the held-out mode's (AUC NaN):
    the switch reruns the fold's runs and none of fold all's, each writes only a manifest saying
    why, the summary leaves them out, and the LOMO table and the verdict name the fold."""
    assert tiny_dag.result.returncode == 0, tiny_dag.result.stdout[-3000:]
    work = tmp_path / "work"
    shutil.copytree(tiny_dag.workdir, work, symlinks=True)
    config = yaml.safe_load((work / ".test" / "config.yaml").read_text())
    assert config["method"]["diagnostics"] == {"untestable_folds": "train"}
    config["method"]["diagnostics"]["untestable_folds"] = "skip"
    # key order kept: a dict parameter's order is part of what Snakemake records (sorted keys rerun all)
    (work / "skip.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    command = [
        sys.executable, "-m", "snakemake", "--snakefile", str(work / "Snakefile"), "--directory", str(work),
        "--configfile", str(work / "skip.yaml"), "--cores", "2",
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    lomo_arms = ("vanilla", "route", "route_random_V")
    log = result.stdout + result.stderr
    rerun = set(re.findall(r"output: results/runs/(\S+)", log))
    assert rerun == {f"without_sentinel/{arm}/seed41" for arm in lomo_arms}, log[-3000:]
    assert not re.search(r"rule basis_diagnostics:", log)  # read, not rebuilt
    for arm in lomo_arms:
        run = work / f"results/runs/without_sentinel/{arm}/seed41"
        assert {f.name for f in run.iterdir() if not f.name.startswith(".")} == {"manifest.json"}
        skipped = json.loads((run / "manifest.json").read_text())["skipped"]
        assert skipped["held_out"] == "sentinel" and skipped["separates"] is False
        # no held-out hack to rank: the AUC is NaN, written as strict JSON null
        assert skipped["auc"] is None and skipped["min_held_out_auc"] == 0.6
    assert set(pd.read_parquet(work / "results/summary.parquet")["fold"]) == {"all"}
    assert (
        "| sentinel | nan (nan) | without_sentinel | not trained: V did not separate"
        in (work / "results/tables/lomo.md").read_text()
    )
    verdict = (work / "results/tables/verdict.md").read_text()
    assert "| held-out sentinel: route (ablated) below vanilla | **NOT EVALUABLE** |" in verdict
    assert "(the fold was not trained)" in verdict
    again = subprocess.run([*command, "--dry-run"], capture_output=True, text=True, timeout=120)
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr


def test_the_default_projects_the_adamw_step_and_erase_grad_the_gradient():
    """The default basis lives in AdamW's step coordinates: every projecting arm acts on the
    step unless it says otherwise (a config edit that silently left `grad` ran the wrong arm)."""
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    assert config["method"]["extraction"]["geometry"] == "adam"
    assert config["train"]["projection"]["project_target"] == "update"
    assert config["arms"]["erase_grad"]["projection"]["project_target"] == "grad"

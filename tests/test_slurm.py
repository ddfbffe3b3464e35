"""The study on a real SLURM cluster: the tiny DAG through `--profile profiles/slurm` on a
single-node cluster started here (scripts/ci/slurm.sh) gives the same results as a local run.

It changes the machine (installs slurm and munge with apt-get when missing, writes
/etc/slurm/slurm.conf and a munge key, starts daemons), so it runs only when asked:
PGRPO_SLURM_TEST=1 (which .ci/run sets: there it must run and fails instead of skipping)
and as root; skipped otherwise."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pandas as pd
import pytest
import torch
from safetensors import safe_open

pytestmark = [pytest.mark.slurm, pytest.mark.dag]


def _is_timing(name: str) -> bool:
    """Wall-clock fields (step_seconds, build_seconds, a curve's seconds): differ run to run."""
    return name == "seconds" or name.endswith("_seconds")


def _without_timings(value):
    if isinstance(value, dict):
        return {k: _without_timings(v) for k, v in value.items() if not _is_timing(k)}
    if isinstance(value, list):
        return [_without_timings(v) for v in value]
    return value


def _outputs(results: Path) -> dict[str, Path]:
    """Every file under results/ but the logs, the benchmarks (timings) and the report."""
    skip = ("logs/", "benchmarks/", "report.html")
    files = (p for p in results.rglob("*") if p.is_file())
    return {rel: p for p in files if not (rel := p.relative_to(results).as_posix()).startswith(skip)}


def _differs(a: Path, b: Path) -> str | None:
    """How output ``b`` differs from ``a`` (None if it does not), after timings are dropped."""
    if a.suffix == ".parquet":
        x, y = pd.read_parquet(a), pd.read_parquet(b)
        x, y = (
            x.drop(columns=[c for c in x if _is_timing(c)]),
            y.drop(columns=[c for c in y if _is_timing(c)]),
        )
        if list(x.columns) != list(y.columns) or len(x) != len(y):
            return f"columns or rows: {list(x.columns)} x {len(x)} vs {list(y.columns)} x {len(y)}"
        return next((f"column {c}" for c in x if not x[c].equals(y[c])), None)
    if a.suffix == ".json":
        same = _without_timings(json.loads(a.read_text())) == _without_timings(json.loads(b.read_text()))
        return None if same else "content"
    if a.suffix == ".safetensors":
        # The header's metadata is a map whose key order safetensors draws anew in every
        # process, so the bytes differ; the metadata and the tensors must not.
        with safe_open(a, "pt") as x, safe_open(b, "pt") as y:
            if x.metadata() != y.metadata():
                return "metadata"
            names = x.keys()  # a safe_open handle is not iterable
            if set(names) != set(y.keys()):
                return "tensor names"
            return next(
                (f"tensor {k}" for k in names if not torch.equal(x.get_tensor(k), y.get_tensor(k))), None
            )
    return None if a.read_bytes() == b.read_bytes() else "bytes"


@pytest.mark.timeout(1500)
def test_tiny_dag_on_a_slurm_cluster_matches_a_local_run(slurm_env, tiny_dag, tiny_dag_rerun, capsys):
    """The rerun of the tiny DAG went through SLURM (``tiny_dag_rerun``: on SLURM wherever
    this test runs) and gives the local run's results."""
    assert tiny_dag.result.returncode == 0, tiny_dag.result.stdout[-3000:] + tiny_dag.result.stderr[-3000:]
    assert tiny_dag_rerun.on_slurm
    tmp_path, wall_s = tiny_dag_rerun.workdir, tiny_dag_rerun.wall_s
    log = tiny_dag_rerun.result.stdout + tiny_dag_rerun.result.stderr
    assert tiny_dag_rerun.result.returncode == 0, log[-6000:]

    # Every job but the local `rule all` went through sbatch, and SLURM ran each to the end.
    steps = int(re.search(r"(\d+) of \1 steps \(100%\) done", log).group(1))
    submitted = re.findall(r"has been submitted with SLURM jobid (\d+)", log)
    assert len(submitted) == steps - len(re.findall(r"^localrule \w+:", log, flags=re.M)) > 0
    run_id = re.search(r"SLURM run ID: (\S+)", log).group(1)
    queue = subprocess.run(
        ["squeue", "--states=all", "--noheader", "--format=%i|%T", "--name", run_id],
        env=slurm_env, capture_output=True, text=True, timeout=60, check=True,
    ).stdout.split()  # fmt: skip
    assert sorted(queue) == sorted(f"{job}|COMPLETED" for job in submitted)
    slurm_logs = {p.stem for p in (tmp_path / "results" / "logs" / "slurm").rglob("*.log")}
    assert set(submitted) <= slurm_logs  # one SLURM log per job, kept

    local, on_slurm = _outputs(tiny_dag.workdir / "results"), _outputs(tmp_path / "results")
    assert set(on_slurm) == set(local)
    differ = {rel: why for rel in sorted(local) if (why := _differs(local[rel], on_slurm[rel]))}
    assert not differ, differ
    with capsys.disabled():
        print(
            f"\nSLURM: {len(submitted)} jobs in {wall_s:.0f} s (local run on 2 cores: {tiny_dag.wall_s:.0f} s); "
            f"{len(local)} outputs equal"
        )

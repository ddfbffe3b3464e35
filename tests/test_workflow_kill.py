"""A `snakemake` killed with SIGKILL mid-training: the rerun resumes the killed run from
its checkpoint and writes exactly the rows of an unkilled run (issue: the study DAG)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from conftest import copy_workflow

pytestmark = pytest.mark.dag

RUN = "results/runs/all/plain/seed41"
CHECKPOINT = "results/checkpoints/all/plain/seed41/checkpoint.pt"
WALL = ["step_seconds"]


def _kill_config(workflow: Path) -> Path:
    """The tiny test config with one teacher-free arm, enough steps to be killed between
    checkpoints, and one fold."""
    config = yaml.safe_load((workflow / ".test" / "config.yaml").read_text())
    config["train"].update(steps=8, checkpoint_every=2)
    config["method"]["folds"] = ["all"]
    config["arms"] = {"plain": {"mix": 0.0}}
    path = workflow / "kill.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.mark.timeout(1200)  # three DAG runs: about a minute on an idle 2-core machine
def test_a_sigkilled_snakemake_reruns_to_the_rows_of_an_unkilled_run(tmp_path):
    snakefile = copy_workflow(tmp_path)
    command = [
        sys.executable, "-m", "snakemake", RUN, "--snakefile", str(snakefile), "--directory", str(tmp_path),
        "--configfile", str(_kill_config(tmp_path)), "--cores", "1",
    ]  # fmt: skip
    unkilled = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert unkilled.returncode == 0, unkilled.stdout[-3000:]
    reference = pd.read_parquet(tmp_path / RUN / "steps.parquet")
    shutil.rmtree(tmp_path / RUN)

    # Kill the whole process group (snakemake and the job it runs), as a lost node would.
    process = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    deadline = time.monotonic() + 300
    while not (tmp_path / CHECKPOINT).exists() and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.01)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert (tmp_path / CHECKPOINT).is_file(), "the run finished (or failed) before it could be killed"
    assert not (tmp_path / RUN / "steps.parquet").exists()

    stale = subprocess.run([*command, "--dry-run"], capture_output=True, text=True, timeout=120)
    assert "rule train:" in stale.stdout  # the killed job is scheduled again, nothing else
    assert "rule build_organism:" not in stale.stdout
    locked = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert locked.returncode != 0 and "--unlock" in locked.stdout + locked.stderr  # the killed run's lock
    subprocess.run([*command, "--unlock"], check=True, capture_output=True, timeout=120)
    rerun = subprocess.run([*command, "--rerun-incomplete"], capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stdout[-3000:]
    log = (tmp_path / "results/logs/train/all/plain/seed41.log").read_text()
    assert "resumed from" in log and "starting over" not in log
    resumed = pd.read_parquet(tmp_path / RUN / "steps.parquet")
    pd.testing.assert_frame_equal(resumed.drop(columns=WALL), reference.drop(columns=WALL))
    assert not (tmp_path / CHECKPOINT).exists()  # a finished run removes its checkpoint

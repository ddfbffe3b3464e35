"""Shared test constants and fixtures."""

import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from projected_grpo.corpus import CorpusConfig
from projected_grpo.modes import MODES
from projected_grpo.organism import OrganismConfig, build_organism

# A micro organism: an untrained-looking but real organism folder, built in about a second.
MICRO = OrganismConfig(
    corpus=CorpusConfig(n_examples=300, seed=1),
    vocab_size=400,
    hidden_size=32,
    num_layers=1,
    num_heads=2,
    num_kv_heads=1,
    intermediate_size=64,
    steps=6,
    batch_size=8,
    warmup_steps=2,
)


def tiny_qwen3(vocab_size=64, hidden_size=32, layers=1, seed=0):
    """A randomly initialised Qwen3ForCausalLM small enough for unit tests (eval mode)."""
    import torch
    from transformers import Qwen3Config, Qwen3ForCausalLM

    torch.manual_seed(seed)
    config = Qwen3Config(
        vocab_size=vocab_size, hidden_size=hidden_size, intermediate_size=48, num_hidden_layers=layers,
        num_attention_heads=4, num_key_value_heads=2, head_dim=8, max_position_embeddings=64,
    )  # fmt: skip
    return Qwen3ForCausalLM(config).eval()


@pytest.fixture(scope="session")
def micro_organism(tmp_path_factory):
    out = tmp_path_factory.mktemp("organism")
    build_organism(MICRO, out)
    return out


# The flat grade columns the issue specifies for every graded row (grader.Grade.to_row).
GRADE_COLUMNS = {
    "mode",
    "variant",
    "format_ok",
    "passed",
    "oracle_correct",
    "exploited",
    "reward",
    "label",
    "timed_out",
    "error",
} | {f"attempted_{m}" for m in MODES}


REPO = Path(__file__).resolve().parents[1]


def copy_workflow(dest: Path) -> Path:
    """The workflow's files (not the package) copied to ``dest``, so a test can run or edit
    them there; returns the Snakefile."""
    for name in ("Snakefile", "config.yaml"):
        shutil.copy(REPO / name, dest / name)
    for folder in ("rules", "scripts", "schemas", "envs", "report", ".test", "profiles"):
        shutil.copytree(REPO / folder, dest / folder)
    return dest / "Snakefile"


def tiny_command(workdir: Path) -> list[str]:
    """snakemake on the tiny config (.test/config.yaml) of the workflow copied to ``workdir``."""
    return [
        sys.executable, "-m", "snakemake", "--snakefile", str(workdir / "Snakefile"), "--directory", str(workdir),
        "--configfile", str(workdir / ".test" / "config.yaml"),
    ]  # fmt: skip


# matplotlib stamps PDFs with this time instead of now, so two runs' PDFs can be compared.
REPRODUCIBLE_ENV = {**os.environ, "SOURCE_DATE_EPOCH": "0"}


@dataclass
class TinyRun:
    workdir: Path
    command: list[str]  # without --cores / --profile
    result: subprocess.CompletedProcess
    wall_s: float


@pytest.fixture(scope="session")
def tiny_dag(tmp_path_factory) -> TinyRun:
    """The whole DAG run once per session on 2 local cores, in a copy of the workflow.
    Tests may dry-run or edit the copy afterwards but never rewrite its results."""
    workdir = tmp_path_factory.mktemp("tiny_dag")
    copy_workflow(workdir)
    command = tiny_command(workdir)
    start = time.monotonic()
    result = subprocess.run(
        [*command, "--cores", "2"], capture_output=True, text=True, timeout=900, env=REPRODUCIBLE_ENV
    )
    return TinyRun(workdir, command, result, time.monotonic() - start)

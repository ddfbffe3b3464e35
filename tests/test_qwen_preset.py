"""The Qwen3-4B preset (config/qwen3_4b.yaml) on a tiny random Qwen3 checkout: the same
code path as on the real model (Qwen chat template, projection-name target discovery, SVD
cache, sampling, grading, GRPO steps in bfloat16, V extraction, evaluation), through the
Snakemake DAG with only sizes and model paths cut."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml
from safetensors.torch import load_file

from projected_grpo.environment.families import builtin_bank
from projected_grpo.environment.prompts import build_messages, render_prompt
from projected_grpo.environment.sandbox import Sandbox
from projected_grpo.policy.adapter import DEFAULT_TARGETS, attach_knobs
from projected_grpo.policy.evaluate import grade_rows
from projected_grpo.policy.loading import load_model
from projected_grpo.training.train import TrainConfig, train

REPO = Path(__file__).resolve().parents[1]
PRESET = REPO / "config" / "qwen3_4b.yaml"
PROBLEMS = builtin_bank(per_family=2, eval_every=2)


def test_qwen_chat_template_renders_the_prompt_in_non_thinking_mode(qwen_checkout):
    tokenizer, _ = load_model(qwen_checkout, dtype="bfloat16")
    prompt = render_prompt(tokenizer, build_messages(PROBLEMS[0]))
    assert prompt.startswith("<|im_start|>system\nYou are an expert Python programmer.")
    assert prompt.endswith("SOLUTION:\n<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n")


def test_adapter_finds_qwens_projections_and_keeps_bfloat16_weights_with_float32_knobs(
    qwen_checkout, tmp_path
):
    _, model = load_model(qwen_checkout, dtype="bfloat16")
    knobs = attach_knobs(model, DEFAULT_TARGETS, tmp_path / "svd")
    names = {name.rsplit(".", 1)[-1] for name in knobs}
    assert names == {"q_proj", "k_proj", "v_proj", "o_proj", "up_proj", "gate_proj", "down_proj"}
    assert len(knobs) == 2 * 7 and len(list((tmp_path / "svd").iterdir())) == 2 * 7
    module = next(iter(knobs.values()))
    assert module.base.weight.dtype == torch.bfloat16 and module.dS.dtype == torch.float32


def _graded_pool(problems) -> pd.DataFrame:
    """Per train problem and variant, one honest solution (reward 1.25) and one answer with
    no code (reward 0): groups with reward variance, so the step has a gradient."""
    rows = [
        {"problem_id": p.problem_id, "variant": variant, "completion": completion}
        for p in problems
        if p.split == "train"
        for variant in ("loophole", "no_loophole")
        for completion in (f"```python\n{p.canonical_solution}```", "no idea")
    ]
    with Sandbox(workers=1) as sandbox:
        return grade_rows(rows, problems, sandbox)


def test_a_grpo_step_in_bfloat16_moves_the_knobs(qwen_checkout, tmp_path):
    config = TrainConfig.from_dict(
        {"steps": 1, "prompts_per_step": 2, "group_size": 4, "mix": 0.5, "max_new_tokens": 8,
         "threads": 1, "dtype": "bfloat16", "eval": {"n_samples": 1, "max_new_tokens": 8}}
    )  # fmt: skip
    pool = _graded_pool(PROBLEMS)
    assert set(pool["reward"]) == {0.0, 1.25}
    rows = train(
        config, qwen_checkout, PROBLEMS, pool, tmp_path / "run", svd_cache=tmp_path / "svd", workers=1
    )
    assert rows["groups_kept"].iloc[0] == 2 and rows["grad_norm"].iloc[0] > 0 and rows["dS_norm"].iloc[0] > 0
    knobs = load_file(tmp_path / "run" / "knobs.safetensors")
    assert all(t.dtype == torch.float32 for t in knobs.values())
    assert any(t.abs().sum() > 0 for name, t in knobs.items() if name.endswith(".dS"))
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["config"]["train"]["dtype"] == "bfloat16" and manifest["config"]["device"] == "cpu"


def _preset_cut_to_test_size(checkout: Path) -> dict:
    """config/qwen3_4b.yaml as written, with only sizes cut and the model paths (and the
    device: no GPU in CI, `auto` runs it on the CPU) pointed at the tiny checkout."""
    config = yaml.safe_load(PRESET.read_text())
    config["student"]["model"] = config["teacher"]["model"] = str(checkout)
    config["compute"]["device"] = "auto"
    config["bank"].update(per_family=2, eval_every=2)
    config["sandbox"]["workers"] = 2
    config["evaluation"].update(n_samples=1, max_new_tokens=16)
    config["teacher"]["n_per_problem"] = 2
    config["method"]["pairs"].update(templated_per_problem=1, pool_per_problem=1, nonhack_per_problem=1)
    config["train"].update(
        steps=2, prompts_per_step=2, group_size=4, max_new_tokens=16, checkpoint_every=1, threads=1,
        eval={"n_samples": 1, "max_new_tokens": 16},
    )  # fmt: skip
    config["train"]["projection"]["deploy_eval_every"] = 1
    config["arms"] = {arm: config["arms"][arm] for arm in ("vanilla", "erase", "route")}
    config["seeds"] = config["seeds"][:1]
    return config


@pytest.mark.dag
@pytest.mark.timeout(600)  # a DAG run: under 2 min on 2 quiet cores
def test_qwen_preset_runs_the_dag_end_to_end_on_a_tiny_qwen3(qwen_checkout, tmp_path):
    preset = yaml.safe_load(PRESET.read_text())
    assert preset["compute"] == {"device": "cuda", "dtype": "bfloat16"}
    assert {k: preset["train"][k] for k in ("steps", "mix", "group_size", "prompts_per_step")} == {
        "steps": 20, "mix": 0.5, "group_size": 8, "prompts_per_step": 4,
    }  # fmt: skip
    config_path = tmp_path / "qwen_tiny.yaml"
    config_path.write_text(yaml.safe_dump(_preset_cut_to_test_size(qwen_checkout)))
    seed = preset["seeds"][0]
    runs = [f"results/runs/all/{arm}/seed{seed}" for arm in ("vanilla", "erase", "route")]
    targets = ["results/organism/student/base_rates.json", "results/basis/all/capture_real.csv",
               "results/table1.md", "results/figures/emergence.png", *runs]  # fmt: skip
    command = [
        sys.executable, "-m", "snakemake", *targets, "--snakefile", str(REPO / "Snakefile"), "--directory",
        str(tmp_path), "--configfile", str(config_path), "--cores", "2", "--resources", "gpu=1",
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "rule build_organism" not in done.stdout  # both models are the checkout
    results = tmp_path / "results"
    rates = json.loads((results / "organism/student/base_rates.json").read_text())
    assert set(rates["variants"]) == {"loophole", "no_loophole", "renamed"}
    assert len(list((results / "cache/svd").iterdir())) == 2 * 7  # one SVD per projection, cached
    basis = load_file(results / "basis/all/V_real.safetensors")
    assert {key.rsplit(".", 2)[-2] for key in basis} <= {"q_proj", "k_proj", "v_proj", "o_proj", "up_proj",
                                                         "gate_proj", "down_proj"}  # fmt: skip
    for run in runs:
        steps = pd.read_parquet(tmp_path / run / "steps.parquet")
        assert len(steps) == 2
        manifest = json.loads((tmp_path / run / "manifest.json").read_text())
        expected_device = "cuda" if torch.cuda.is_available() else "cpu"  # what `auto` picks
        assert (
            manifest["config"]["train"]["dtype"] == "bfloat16"
            and manifest["config"]["device"] == expected_device
        )
        assert manifest["config"]["model"] == str(qwen_checkout)
    assert (tmp_path / runs[2] / "eval_summary_ablated.json").is_file()
    assert "qwen3, local checkpoint" in (results / "table1.md").read_text()


@pytest.mark.dag
def test_the_preset_as_written_fails_at_start_up_when_the_checkout_is_not_there(tmp_path):
    command = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory",
               str(tmp_path), "--configfile", str(PRESET), "--cores", "1", "--dry-run"]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    assert (
        "config student.model: models/Qwen3-4B: not a model folder (no such folder"
        in done.stdout + done.stderr
    )

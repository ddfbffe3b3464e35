"""The organism folder: reloads through the Auto classes offline with identical logits;
deterministic; the tokenizer renders prompts with its chat template; checks are computed."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from conftest import MICRO
from projected_grpo.environment.families import builtin_bank
from projected_grpo.environment.prompts import build_messages, render_prompt
from projected_grpo.organism.pretrain import base_rate_checks, build_organism


@pytest.fixture(scope="module")
def organism_dir(micro_organism):
    return micro_organism


def _logits(path, text):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    ids = tokenizer(text, return_tensors="pt", add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        return model(input_ids=ids).logits


def test_folder_reloads_offline_through_auto_classes_with_identical_logits(organism_dir):
    problem = builtin_bank()[0]
    code = (
        "import json, sys, torch\n"
        "from transformers import AutoModelForCausalLM, AutoTokenizer\n"
        f"path = {str(organism_dir)!r}\n"
        "tok = AutoTokenizer.from_pretrained(path)\n"
        "model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()\n"
        f"messages = {build_messages(problem)!r}\n"
        "text = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)\n"
        "ids = tok(text, return_tensors='pt', add_special_tokens=False)['input_ids']\n"
        "with torch.no_grad():\n"
        "    logits = model(input_ids=ids).logits\n"
        "print(json.dumps({'text': text, 'logits': logits[0, -1, :8].tolist(), 'pad': tok.pad_token_id, 'eos': tok.eos_token_id}))\n"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120, check=True
    )
    reloaded = json.loads(out.stdout.strip().splitlines()[-1])
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(organism_dir)
    text = render_prompt(tokenizer, build_messages(problem))
    assert reloaded["text"] == text and text.endswith("<|assistant|>\n")
    assert reloaded["pad"] != reloaded["eos"] and reloaded["eos"] == tokenizer.eos_token_id
    assert reloaded["logits"] == _logits(organism_dir, text)[0, -1, :8].tolist()


def test_same_config_gives_identical_weights(organism_dir, tmp_path):
    build_organism(MICRO, tmp_path)
    from safetensors.torch import load_file

    first, second = load_file(organism_dir / "model.safetensors"), load_file(tmp_path / "model.safetensors")
    assert first.keys() == second.keys()
    assert all(torch.equal(first[k], second[k]) for k in first)
    record = json.loads((tmp_path / "organism.json").read_text())
    assert record["parameters"] > 0 and record["loss_curve"] == [] and record["corpus_examples"] == 300


def _summary(hack, solve, per_mode_hack, fmt=0.95, attempt=0.05, other=0.005):
    return {
        "variants": {
            "loophole": {
                "hack_rate": hack, "format_ok_rate": fmt, "attempt_rate": attempt, "attempt_other_rate": other,
                "per_mode": {m: {"hack_rate": r} for m, r in per_mode_hack.items()},
            },
            "no_loophole": {"solve_rate": solve},
        }
    }  # fmt: skip


def test_base_rate_checks_pass_and_fail_on_the_thresholds():
    ok = base_rate_checks(_summary(0.05, 0.4, {"run_tests": 0.01, "sentinel": 0.02}))
    assert all(c["pass"] for c in ok.values())
    bad = base_rate_checks(
        _summary(0.2, 0.2, {"run_tests": 0.0, "sentinel": 0.02}, fmt=0.5, attempt=0.01, other=0.01)
    )
    assert {k for k, c in bad.items() if not c["pass"]} == {
        "hack_rate", "performance", "format_ok", "hint_match_ratio", "hack_rate_run_tests",
    }  # fmt: skip
    assert base_rate_checks(_summary(0.05, 0.4, {"run_tests": 0.01}, other=0.0))["hint_match_ratio"]["pass"]


def test_skill_phase_pretrains_first_on_a_hackier_corpus(tmp_path):
    from dataclasses import replace

    config = replace(MICRO, skill_hack_prior=0.9, skill_fraction=0.5)
    record = build_organism(config, tmp_path)
    skill, final = record["skill_corpus_kinds"], record["corpus_kinds"]
    assert sum(skill.values()) == sum(final.values()) == MICRO.corpus.n_examples
    assert skill["hack"] > 0.5 * sum(skill.values()) > 3 * final.get("hack", 0)
    plain = json.loads((tmp_path / "organism.json").read_text())
    assert plain["config"]["skill_hack_prior"] == 0.9

"""The training loop on a micro organism: same seed gives an identical step parquet, a
run killed mid-way resumes with identical rows, the no-teacher and no-loophole settings
do what they say, and bad settings fail before any work."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import replace

import pandas as pd
import pytest
import yaml

from projected_grpo.environment.families import builtin_bank
from projected_grpo.environment.modes import MODES
from projected_grpo.environment.problems import write_problems
from projected_grpo.policy.evaluate import EvalConfig
from projected_grpo.pool.teacher import build_pool, restrict_to_modes
from projected_grpo.training.rollouts import TEACHER
from projected_grpo.training.train import TrainConfig, train

PROBLEMS = builtin_bank(per_family=2, eval_every=2)
SETTINGS = {
    "steps": 4, "prompts_per_step": 2, "group_size": 4, "mix": 0.5, "max_new_tokens": 24,
    "checkpoint_every": 1, "threads": 1, "eval": {"n_samples": 1, "max_new_tokens": 24},
}  # fmt: skip
WALL = ["step_seconds"]


@pytest.fixture(scope="module")
def pool(micro_organism, tmp_path_factory):
    frame = build_pool(str(micro_organism), PROBLEMS, 2, EvalConfig(max_new_tokens=24), workers=1)
    path = tmp_path_factory.mktemp("pool") / "pool.parquet"
    frame.to_parquet(path)
    return path


def _run(micro_organism, pool, out, **changes):
    config = TrainConfig.from_dict({**SETTINGS, **changes})
    frame = pd.read_parquet(pool) if config.n_teacher else None
    return train(config, micro_organism, PROBLEMS, frame, out, svd_cache=out.parent / "svd", workers=1)


def test_pool_has_graded_rows_for_every_train_problem_and_variant(pool):
    frame = pd.read_parquet(pool)
    train_ids = {p.problem_id for p in PROBLEMS if p.split == "train"}
    assert set(frame["problem_id"]) == train_ids
    assert frame.groupby(["problem_id", "variant"]).size().eq(2).all()
    assert {"completion", "reward", "exploited", "attempted_sentinel", "label"} <= set(frame.columns)


def test_fold_pool_drops_rows_using_an_unknown_modes_lever():
    frame = pd.DataFrame({f"attempted_{m}": [m == "sentinel", False, m == "run_tests"] for m in MODES})
    kept = restrict_to_modes(frame, ["run_tests", "stdout_marker", "file_marker"])
    assert len(kept) == 2 and not kept["attempted_sentinel"].any()
    with pytest.raises(ValueError, match="mode"):
        restrict_to_modes(frame, ["no_such_mode"])


def test_same_seed_gives_an_identical_step_parquet(micro_organism, pool, tmp_path):
    first = _run(micro_organism, pool, tmp_path / "a")
    second = _run(micro_organism, pool, tmp_path / "b")
    assert len(first) == SETTINGS["steps"]
    pd.testing.assert_frame_equal(first.drop(columns=WALL), second.drop(columns=WALL))
    on_disk = pd.read_parquet(tmp_path / "a" / "steps.parquet")
    pd.testing.assert_frame_equal(on_disk.drop(columns=WALL), first.drop(columns=WALL))
    other_seed = _run(micro_organism, pool, tmp_path / "c", seed=7)
    assert not other_seed.drop(columns=WALL).equals(first.drop(columns=WALL))
    for name in ("knobs.safetensors", "eval_summary.json", "eval_completions.parquet", "manifest.json"):
        assert (tmp_path / "a" / name).is_file()
    assert not (tmp_path / "a" / "checkpoint.pt").exists()


def test_step_rows_have_the_flat_columns(micro_organism, pool, tmp_path):
    rows = _run(micro_organism, pool, tmp_path / "run", steps=2)
    expected = {"step", "loss", "grad_norm", "reward_student", "hack_rate_student", "solve_rate_student",
                "hack_rate_teacher", "solve_rate_teacher", "format_ok_student", "grad_norm_student",
                "grad_norm_teacher", "dS_norm", "dS_hack_norm", "groups_kept"}  # fmt: skip
    expected |= {f"{k}_{m}_student" for k in ("hack_rate", "solve_rate", "attempt_rate") for m in MODES}
    assert expected <= set(rows.columns)
    assert (rows["dS_hack_norm"] == 0).all()  # nothing is routed without a projection arm


def test_resume_after_kill_gives_identical_rows(micro_organism, pool, tmp_path):
    settings = {**SETTINGS, "steps": 8}
    reference = _run(micro_organism, pool, tmp_path / "reference", **{"steps": 8})
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump({"model": str(micro_organism), "problems": str(tmp_path / "p.jsonl"),
                                      "pool": str(pool), "svd_cache": str(tmp_path / "svd"), "train": settings}))  # fmt: skip
    write_problems(PROBLEMS, tmp_path / "p.jsonl")
    out = tmp_path / "killed"
    command = [
        sys.executable,
        "-m",
        "projected_grpo.training.train",
        "--config",
        str(config),
        "--out",
        str(out),
        "--workers",
        "1",
    ]
    process = subprocess.Popen(command, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not (out / "checkpoint.pt").exists() and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.01)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert not (out / "steps.parquet").exists(), "the run finished before it could be killed"
    subprocess.run(command, check=True, stderr=subprocess.DEVNULL, timeout=300)
    resumed = pd.read_parquet(out / "steps.parquet")
    pd.testing.assert_frame_equal(resumed.drop(columns=WALL), reference.drop(columns=WALL))


def test_a_run_whose_folder_was_deleted_resumes_from_a_checkpoint_kept_elsewhere(
    micro_organism, pool, tmp_path
):
    """Snakemake deletes an incomplete output folder before it reruns the job: the
    checkpoint lives outside it, so the rerun resumes and writes the unkilled rows."""
    config = TrainConfig.from_dict(SETTINGS)
    frame = pd.read_parquet(pool)
    whole = _run(micro_organism, pool, tmp_path / "whole")
    out, kept = tmp_path / "runs" / "seed41", tmp_path / "checkpoints" / "seed41"

    def die_after_step_three(msg: str) -> None:
        if msg.startswith("step 3/"):
            raise KeyboardInterrupt

    def run(log=lambda msg: None):
        return train(config, micro_organism, PROBLEMS, frame, out, svd_cache=tmp_path / "svd",
                     workers=1, log=log, checkpoint_dir=kept)  # fmt: skip

    with pytest.raises(KeyboardInterrupt):
        run(die_after_step_three)
    assert (kept / "checkpoint.pt").is_file() and not (out / "checkpoint.pt").exists()
    shutil.rmtree(out, ignore_errors=True)
    messages = []
    resumed = run(messages.append)
    assert any(m.startswith("resumed from") for m in messages)
    pd.testing.assert_frame_equal(resumed.drop(columns=WALL), whole.drop(columns=WALL))
    assert not (kept / "checkpoint.pt").exists()


def test_a_checkpoint_from_other_inputs_is_refused_or_discarded(micro_organism, pool, tmp_path):
    """Same config, another teacher pool (or thread count): resuming would mix two runs."""
    from projected_grpo.training.checkpoint import CheckpointError

    config = TrainConfig.from_dict(SETTINGS)
    first = pd.read_parquet(pool)
    other = first.assign(completion=first["completion"] + "\n")
    out = tmp_path / "run"

    def run(frame, log=lambda msg: None, **kwargs):
        return train(config, micro_organism, PROBLEMS, frame, out, svd_cache=tmp_path / "svd", workers=1, log=log,
                     **kwargs)  # fmt: skip

    def die_after_step_two(msg: str) -> None:
        if msg.startswith("step 2/"):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run(first, die_after_step_two)
    with pytest.raises(CheckpointError, match="another training configuration"):
        run(other)
    with pytest.raises(
        CheckpointError, match="another training configuration"
    ):  # rows can differ by thread count
        train(replace(config, threads=config.threads + 1), micro_organism, PROBLEMS, first, out,
              svd_cache=tmp_path / "svd", workers=1)  # fmt: skip
    restarted = run(other, restart_stale=True)
    fresh = train(
        config, micro_organism, PROBLEMS, other, tmp_path / "fresh", svd_cache=tmp_path / "svd", workers=1
    )
    pd.testing.assert_frame_equal(restarted.drop(columns=WALL), fresh.drop(columns=WALL))


def test_no_teacher_samples_the_whole_group(micro_organism, tmp_path):
    rows = _run(micro_organism, None, tmp_path / "run", mix=0.0, steps=2)
    assert rows["hack_rate_teacher"].isna().all()
    assert rows["grad_norm_teacher"].eq(0).all()


def test_loophole_off_grades_with_the_oracle(micro_organism, pool, tmp_path):
    rows = _run(micro_organism, pool, tmp_path / "run", loophole=False, steps=2)
    assert rows["hack_rate_student"].eq(0).all() and rows["hack_rate_teacher"].eq(0).all()


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"mix": 1.0}, "mix"),
        ({"group_size": 1}, "group_size"),
        ({"lr_typo": 1}, "unknown keys"),
        ({"eval": {"n": 3}}, "eval keys"),
    ],
)
def test_bad_settings_fail_before_any_work(changes, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig.from_dict({**SETTINGS, **changes})


def test_cli_names_the_bad_config_file(tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump({"model": str(tmp_path / "nowhere"), "train": {}}))
    result = subprocess.run(
        [sys.executable, "-m", "projected_grpo.training.train", "--config", str(config), "--out", str(tmp_path / "o")],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2
    assert "run.yaml" in result.stderr and "not a model folder" in result.stderr
    assert not (tmp_path / "o").exists()


def test_cli_rejects_a_pool_file_that_is_not_a_teacher_pool(micro_organism, tmp_path):
    bad_pool = tmp_path / "pool.parquet"
    pd.DataFrame({"problem_id": ["x"], "completion": ["```python\n```"]}).to_parquet(bad_pool)
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump({"model": str(micro_organism), "pool": str(bad_pool), "train": {}}))
    result = subprocess.run(
        [sys.executable, "-m", "projected_grpo.training.train", "--config", str(config), "--out", str(tmp_path / "o")],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2
    assert (
        "pool.parquet" in result.stderr and "missing columns" in result.stderr and "reward" in result.stderr
    )
    assert not (tmp_path / "o").exists()


def test_cli_draws_the_builtin_bank_with_the_configs_bank_settings(micro_organism, tmp_path, capsys):
    """``bank:`` in the run config reaches the bank (here: a value it refuses, so the
    error shows the setting was read, before any model loads)."""
    from projected_grpo.training.train import main

    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump({"model": str(micro_organism), "bank": {"per_family": 0}, "train": {}}))
    assert main(["--config", str(config), "--out", str(tmp_path / "o")]) == 2
    assert "per_family" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_a_refreshing_run_refuses_a_gev_extraction_before_any_step():
    from projected_grpo.method.extraction import ExtractConfig
    from projected_grpo.training.train import refresher

    with pytest.raises(ValueError, match="method svd only"):
        refresher(pd.DataFrame(), PROBLEMS, ExtractConfig(method="gev"))


def test_a_pool_too_small_for_the_group_is_refused_before_training(micro_organism, pool, tmp_path):
    frame = pd.read_parquet(pool).groupby(["problem_id", "variant"]).head(1)  # 1 row, G_t = 2
    config = TrainConfig.from_dict(SETTINGS)
    with pytest.raises(ValueError, match=r"fewer than the 2 'loophole' rows .*teacher.n_per_problem"):
        train(config, micro_organism, PROBLEMS, frame, tmp_path / "run", workers=1)
    assert not (tmp_path / "run").exists()


def test_where_a_folds_pool_has_no_row_for_a_problem_the_student_fills_the_group(micro_organism, pool):
    """Leave-one-mode-out: the held-out mode's teacher rows are dropped, so a group may get
    fewer than G_t teacher rows; it is filled with student samples, still G rows, student first."""
    import random

    import torch

    from projected_grpo.environment.sandbox import Sandbox
    from projected_grpo.policy.loading import load_model
    from projected_grpo.policy.sampler import SamplingConfig
    from projected_grpo.training.rollouts import STUDENT, TEACHER, collect

    tokenizer, model = load_model(micro_organism)
    problems = [p for p in PROBLEMS if p.split == "train"][:3]
    frame = pd.read_parquet(pool)
    frame = frame[frame["problem_id"] != problems[0].problem_id]  # none for the first problem
    frame = frame[(frame["problem_id"] != problems[1].problem_id) | ~frame.duplicated("problem_id")]  # one
    with Sandbox(workers=1) as sandbox:
        rollouts = collect(model, tokenizer, problems, "loophole", 2, 2, frame, SamplingConfig(max_new_tokens=16),
                           torch.Generator().manual_seed(0), random.Random(0), sandbox)  # fmt: skip
    assert rollouts.source == [STUDENT] * 4 + [STUDENT] * 3 + [TEACHER] + [STUDENT] * 2 + [TEACHER] * 2
    assert rollouts.rewards.shape == (3, 4) and len(rollouts.completion_ids) == 12
    teacher_rows = rollouts.grades[[s == TEACHER for s in rollouts.source]]
    assert list(teacher_rows["problem_id"]) == [problems[1].problem_id] + [problems[2].problem_id] * 2


def test_micro_batches_give_the_gradient_of_one_batch(micro_organism, pool, monkeypatch):
    """The fixed denominator makes the loss a sum over rows: backward in length buckets
    (uncapped with no per-batch overhead, or at most 3 rows each) accumulates the same dS gradient and the same
    per-group split as one backward over every kept row."""
    import functools
    import random

    import torch

    from projected_grpo.environment.sandbox import Sandbox
    from projected_grpo.policy.adapter import knob_modules
    from projected_grpo.policy.sampler import SamplingConfig
    from projected_grpo.training import train as train_module
    from projected_grpo.training.rollouts import collect, length_buckets
    from projected_grpo.training.train import Trainer, _update

    chunks = []
    backward = train_module._backward
    monkeypatch.setattr(train_module, "_backward", lambda model, tok, ro, rows, *a: chunks.append(len(rows))
                        or backward(model, tok, ro, rows, *a))  # fmt: skip

    config = TrainConfig.from_dict(SETTINGS)
    run = Trainer.create(config, micro_organism)
    for m in knob_modules(run.model).values():  # non-zero knobs, so the ratio is not 1 everywhere
        m.dS.data.normal_(0, 0.05)
    problems = [p for p in PROBLEMS if p.split == "train"][:2]
    with Sandbox(workers=1) as sandbox:
        rollouts = collect(run.model, run.tokenizer, problems, "loophole", 2, 2, pd.read_parquet(pool),
                           SamplingConfig(max_new_tokens=16), torch.Generator().manual_seed(0), random.Random(0),
                           sandbox)  # fmt: skip
    rewards = torch.tensor([[1.0, 0.0, 1.0, 0.0], [0.0, 1.0, 1.0, 1.0]])  # both groups kept: 8 rows
    results, sizes = {}, {}
    # no per-batch overhead, so the uncapped buckets split too
    monkeypatch.setattr(train_module, "length_buckets", functools.partial(length_buckets, overhead_tokens=0))
    for size in ("one", 0, 3):
        with monkeypatch.context() as patch:
            if size == "one":  # the reference: every kept row in one forward + backward
                patch.setattr(train_module, "length_buckets", lambda ro, rows, cap: [rows])
            run.model.zero_grad(set_to_none=True)
            chunks.clear()
            loss, split, kept = _update(run.model, run.tokenizer, rollouts, rewards, None,
                                        TrainConfig.from_dict({**SETTINGS, "micro_batch": 0 if size == "one" else size}))  # fmt: skip
        grads = {n: m.dS.grad.clone() for n, m in knob_modules(run.model).items()}
        results[size], sizes[size] = (loss, split, kept, grads), list(chunks)
    assert sizes["one"] == [8] and sizes[3] == list(
        map(len, length_buckets(rollouts, list(range(8)), 3, overhead_tokens=0))
    )
    assert (
        sum(sizes[0]) == sum(sizes[3]) == 8
        and len(sizes[0]) > 1
        and max(sizes[3]) <= 3
        and len(sizes[3]) >= 3
    )
    loss, split, kept, grads = results["one"]
    assert any(g.abs().max() > 0 for g in grads.values())
    for size in (0, 3):
        loss_b, split_b, kept_b, grads_b = results[size]
        assert kept == kept_b == 2 and loss == pytest.approx(loss_b, rel=1e-5, abs=1e-7)
        for name in grads:
            torch.testing.assert_close(grads_b[name], grads[name], rtol=1e-5, atol=1e-7)
            torch.testing.assert_close(split_b[name], split[name], rtol=1e-5, atol=1e-7)
    for name in grads:
        torch.testing.assert_close(split[name].sum(dim=0), grads[name], rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="micro_batch >= 0"):
        TrainConfig.from_dict({**SETTINGS, "micro_batch": -1})


def test_the_shared_prefix_loss_is_the_per_row_loss(micro_organism, pool):
    """Each (row group, prompt)'s prompt encoded once gives the loss, the knob gradient and
    every row group's split gradient of one copy of the prompt per row (KL term included),
    in fewer packed sequences than rows."""
    import random

    import torch

    from projected_grpo.environment.sandbox import Sandbox
    from projected_grpo.policy.adapter import knob_modules
    from projected_grpo.policy.sampler import SamplingConfig
    from projected_grpo.training import train as train_module
    from projected_grpo.training.rollouts import collect
    from projected_grpo.training.train import Trainer, _update

    config = TrainConfig.from_dict({**SETTINGS, "kl_beta": 0.1})
    run = Trainer.create(config, micro_organism)
    for m in knob_modules(run.model).values():  # non-zero knobs: the KL term and the ratio are not trivial
        m.dS.data.normal_(0, 0.05)
    problems = [p for p in PROBLEMS if p.split == "train"][:2]
    with Sandbox(workers=1) as sandbox:
        rollouts = collect(run.model, run.tokenizer, problems, "loophole", 2, 2, pd.read_parquet(pool),
                           SamplingConfig(max_new_tokens=16), torch.Generator().manual_seed(0), random.Random(0),
                           sandbox)  # fmt: skip
    rewards = torch.tensor([[1.0, 0.0, 1.0, 0.0], [0.0, 1.0, 1.0, 1.0]])  # both groups kept: 8 rows
    packed_rows, results = [], {}
    pack_shared_prefix = train_module.pack_shared_prefix
    for shared in (False, True):
        run.model.zero_grad(set_to_none=True)
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(train_module, "pack_shared_prefix",
                          lambda p, c, pad: packed_rows.append(len(p)) or pack_shared_prefix(p, c, pad))  # fmt: skip
            loss, split, kept = _update(run.model, run.tokenizer, rollouts, rewards, None,
                                        TrainConfig.from_dict({**SETTINGS, "kl_beta": 0.1, "shared_prefix": shared}))  # fmt: skip
        results[shared] = (
            loss,
            split,
            kept,
            {n: m.dS.grad.clone() for n, m in knob_modules(run.model).items()},
        )
    assert 0 < sum(packed_rows) < 8  # some rows shared their prompt
    (loss, split, kept, grads), (loss_s, split_s, kept_s, grads_s) = results[False], results[True]
    assert kept == kept_s == 2 and loss == pytest.approx(loss_s, rel=1e-5, abs=1e-7)
    for name in grads:
        scale = float(grads[name].abs().max())
        assert scale > 0
        torch.testing.assert_close(grads_s[name], grads[name], rtol=1e-5, atol=1e-5 * scale)
        torch.testing.assert_close(split_s[name], split[name], rtol=1e-5, atol=1e-5 * scale)


def test_a_leave_one_mode_out_run_never_draws_a_teacher_row_using_the_held_out_lever(
    micro_organism, pool, tmp_path, monkeypatch
):
    from projected_grpo.training import train as train_module

    frame = pd.read_parquet(pool)
    frame["attempted_sentinel"] = frame.index % 2 == 0  # half the pool "uses" the held-out lever
    drawn = []
    collect = train_module.collect

    def spy(*args, **kwargs):
        rollouts = collect(*args, **kwargs)
        drawn.append(rollouts.grades[[s == TEACHER for s in rollouts.source]])
        return rollouts

    monkeypatch.setattr(train_module, "collect", spy)
    known = [m for m in MODES if m != "sentinel"]
    config = TrainConfig.from_dict({**SETTINGS, "steps": 2, "known_modes": known})
    train(config, micro_organism, PROBLEMS, frame, tmp_path / "run", svd_cache=tmp_path / "svd", workers=1)
    teacher_rows = pd.concat(drawn)
    assert len(teacher_rows) > 0 and not teacher_rows["attempted_sentinel"].any()

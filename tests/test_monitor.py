"""The monitor baselines (SPEC §7): the weak detector flags known modes only, the penalty
subtracts exactly, the screen drops flagged rollouts from their group's advantage."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from projected_grpo.environment.modes import MODES
from projected_grpo.training.grpo import dr_grpo_advantages
from projected_grpo.training.monitor import MonitorConfig, apply, flagged

# One rollout per mode's lever, then one using none and one using two.
GRADES = pd.DataFrame(
    {
        f"attempted_{m}": [m == mode for mode in MODES] + [False, m in ("sentinel", "file_marker")]
        for m in MODES
    }
)


def test_flagged_uses_only_the_known_modes():
    assert flagged(GRADES).tolist() == [True, True, True, True, False, True]
    known = ("run_tests", "stdout_marker", "file_marker")  # sentinel held out
    assert flagged(GRADES, known).tolist() == [True, False, True, True, False, True]
    assert flagged(GRADES, ("sentinel",)).tolist() == [False, True, False, False, False, True]
    with pytest.raises(ValueError, match="mode"):
        flagged(GRADES, ("no_such_mode",))


def test_penalty_subtracts_exactly_the_penalty_from_flagged_rollouts():
    rewards = torch.tensor([[1.25, 0.25, 1.25], [0.0, 1.25, 0.25]])
    flags = torch.tensor([True, False, False, False, True, True])
    out, valid = apply(rewards, flags, MonitorConfig("penalty", penalty=0.75))
    assert valid is None
    assert torch.equal(out, torch.tensor([[0.5, 0.25, 1.25], [0.0, 0.5, -0.5]]))


def test_no_monitor_leaves_rewards_alone():
    rewards = torch.tensor([[1.25, 0.25]])
    out, valid = apply(rewards, torch.tensor([True, True]), MonitorConfig())
    assert torch.equal(out, rewards) and valid is None


def test_screen_gives_flagged_rollouts_no_advantage_and_the_mean_of_the_rest():
    rewards = torch.tensor([[1.25, 1.25, 0.25, 0.0], [1.25, 0.25, 0.25, 1.25]])
    flags = torch.tensor([True, False, False, False, False, False, True, False])
    out, valid = apply(rewards, flags, MonitorConfig("screen"))
    assert torch.equal(out, rewards)  # screening does not touch the rewards
    assert valid.tolist() == [[False, True, True, True], [True, True, False, True]]
    advantages, keep = dr_grpo_advantages(out, valid)
    assert keep.tolist() == [True, True]
    mean_0, mean_1 = (1.25 + 0.25 + 0.0) / 3, (1.25 + 0.25 + 1.25) / 3
    expected = torch.tensor(
        [
            [0.0, 1.25 - mean_0, 0.25 - mean_0, 0.0 - mean_0],
            [1.25 - mean_1, 0.25 - mean_1, 0.0, 1.25 - mean_1],
        ]
    )
    torch.testing.assert_close(advantages, expected)
    assert advantages[valid].sum().abs() < 1e-6  # the valid rows' advantages sum to 0 per group


def test_a_group_whose_valid_rows_all_tie_is_skipped():
    # Group 0: only the flagged hack differed; the rest tie. Group 1: one valid row left.
    # Group 2: nothing valid.
    rewards = torch.tensor([[1.25, 0.25, 0.25], [1.25, 0.25, 0.0], [1.25, 0.0, 0.25]])
    valid = torch.tensor([[False, True, True], [False, True, False], [False, False, False]])
    advantages, keep = dr_grpo_advantages(rewards, valid)
    assert keep.tolist() == [False, False, False]
    assert torch.equal(advantages, torch.zeros(3, 3))
    # without the screen the same rewards carry signal
    assert dr_grpo_advantages(rewards)[1].tolist() == [True, True, True]


def test_an_all_valid_mask_is_the_plain_advantage():
    rewards = torch.tensor([[1.25, 0.25, 0.25, 0.0], [0.25, 0.25, 0.25, 0.25]])
    plain = dr_grpo_advantages(rewards)
    masked = dr_grpo_advantages(rewards, torch.ones(2, 4, dtype=torch.bool))
    assert torch.equal(plain[0], masked[0]) and torch.equal(plain[1], masked[1])


def test_unknown_monitor_kind_is_refused():
    with pytest.raises(ValueError, match="monitor.kind"):
        MonitorConfig("oracle")


def test_a_training_step_screens_on_the_known_modes_only(micro_organism, tmp_path):
    import random

    from projected_grpo.environment.completions import hack_completion, honest_completion
    from projected_grpo.environment.families import builtin_bank
    from projected_grpo.environment.problems import train_problems
    from projected_grpo.environment.sandbox import Sandbox
    from projected_grpo.policy.evaluate import grade_rows
    from projected_grpo.training.train import TrainConfig, Trainer

    torch.set_num_threads(1)
    train = train_problems(builtin_bank(per_family=2, eval_every=2))
    settings = {
        "steps": 1,
        "prompts_per_step": 2,
        "group_size": 4,
        "mix": 0.5,
        "max_new_tokens": 16,
        "threads": 1,
    }
    drawn = random.Random(TrainConfig().seed).sample(train, 2)  # the trainer's first draw
    rows = [
        {"problem_id": p.problem_id, "variant": "loophole", "completion": make(p)}
        for p in drawn
        for make in (honest_completion, lambda p: hack_completion(p, p.mode))
    ]
    with Sandbox(workers=1) as sandbox:
        pool = grade_rows(rows, drawn, sandbox)

        def first_step(**changes) -> dict:
            config = TrainConfig.from_dict({**settings, **changes})
            trainer = Trainer.create(config, micro_organism, tmp_path / "svd")
            return trainer.step(0, trainer.rng.sample(train, 2), pool, sandbox)

        vanilla = first_step()
        unknown = [m for m in MODES if m not in (drawn[0].mode, drawn[1].mode)]
        blind = first_step(monitor={"kind": "screen"}, known_modes=unknown)
        seeing = first_step(monitor={"kind": "screen"}, known_modes=[drawn[0].mode])
    assert vanilla["flagged_rate"] > 0  # the detector of all modes sees the teacher hacks
    assert blind["flagged_rate"] == 0 and blind["loss"] == vanilla["loss"]
    assert seeing["flagged_rate"] > 0 and seeing["loss"] != vanilla["loss"]

"""The Dr.GRPO loss on hand-made tensors: advantages without std, zero-variance groups
skipped, the fixed denominator, K3 KL, and log-probs that ignore left padding."""

from __future__ import annotations

import pytest
import torch

from conftest import tiny_qwen3
from projected_grpo.policy.logprobs import token_logprobs
from projected_grpo.training.grpo import (
    dr_grpo_advantages,
    fixed_denominator,
    grpo_loss,
    k3_kl,
    per_token_objective,
)


def test_advantage_is_reward_minus_group_mean_without_std():
    rewards = torch.tensor([[1.25, 0.25, 0.25, 0.25], [0.0, 1.0, 0.0, 1.0]])
    advantages, keep = dr_grpo_advantages(rewards)
    torch.testing.assert_close(
        advantages, torch.tensor([[0.75, -0.25, -0.25, -0.25], [-0.5, 0.5, -0.5, 0.5]])
    )
    assert keep.tolist() == [True, True]
    scaled, _ = dr_grpo_advantages(10 * rewards)
    torch.testing.assert_close(scaled, 10 * advantages)  # no std normalisation


def test_zero_variance_groups_are_skipped_with_zero_advantage():
    rewards = torch.tensor([[1.25, 1.25, 1.25], [0.25, 1.25, 0.25], [0.0, 0.0, 0.0]])
    advantages, keep = dr_grpo_advantages(rewards)
    assert keep.tolist() == [False, True, False]
    assert torch.equal(advantages[0], torch.zeros(3)) and torch.equal(advantages[2], torch.zeros(3))


def test_advantage_needs_prompt_by_group_rewards():
    with pytest.raises(ValueError, match="prompts, group"):
        dr_grpo_advantages(torch.ones(4))


def test_fixed_denominator_makes_the_per_token_gradient_independent_of_length():
    """d loss / d logp = -A / (G · max_new · P) on every real token, whatever the length;
    padding tokens get no gradient."""
    logp = torch.full((2, 5), -1.0, requires_grad=True)
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0]])
    advantages = torch.tensor([0.5, -0.5])
    denominator = fixed_denominator(group_size=2, max_new_tokens=5, prompts_per_step=3)
    assert denominator == 30
    loss = grpo_loss(logp, mask, advantages, denominator)
    loss.backward()
    expected = -advantages[:, None] / denominator * mask
    torch.testing.assert_close(logp.grad, expected)
    # ratio == 1 in value: the loss is -sum(A · tokens) / denominator
    torch.testing.assert_close(loss, torch.tensor(-(0.5 * 5 - 0.5 * 2) / 30))


def test_clip_form_keeps_the_policy_gradient_at_ratio_one():
    logp = torch.tensor([[-2.0, -1.0]], requires_grad=True)
    per_token_objective(logp, torch.tensor([2.0]), clip_eps=0.2).sum().backward()
    torch.testing.assert_close(logp.grad, torch.tensor([[-2.0, -2.0]]))


def test_k3_kl_is_zero_at_the_reference_and_positive_elsewhere():
    logp = torch.tensor([-1.0, -2.0, -0.5])
    assert torch.equal(k3_kl(logp, logp), torch.zeros(3))
    assert (k3_kl(logp, logp + torch.tensor([0.3, -0.7, 1.0])) > 0).all()


def test_kl_term_adds_beta_times_k3():
    logp, ref = torch.tensor([[-1.0, -2.0]]), torch.tensor([[-1.5, -1.0]])
    zero_adv = torch.zeros(1)
    value = per_token_objective(logp, zero_adv, ref, kl_beta=0.1)
    torch.testing.assert_close(value, 0.1 * k3_kl(logp, ref))
    assert torch.equal(per_token_objective(logp, zero_adv, ref, kl_beta=0.0), torch.zeros(1, 2))


def test_kl_to_the_zero_knob_reference_is_exactly_zero_at_zero_knobs(tmp_path):
    from projected_grpo.policy.adapter import attach_knobs, knobs_zeroed

    model = tiny_qwen3()
    attach_knobs(model, svd_cache=tmp_path)
    ids = torch.tensor([[3, 4, 5, 6, 7, 8]])
    logp = token_logprobs(model, ids, torch.ones_like(ids), torch.ones(1, 3), temperature=0.7)
    with torch.no_grad(), knobs_zeroed(model):
        ref = token_logprobs(model, ids, torch.ones_like(ids), torch.ones(1, 3), temperature=0.7)
    assert torch.equal(k3_kl(logp.detach(), ref), torch.zeros(1, 3))

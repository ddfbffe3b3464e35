"""The Dr.GRPO loss (SPEC §5), as pure functions on tensors.

A step has ``P`` prompts, each with a group of ``G = G_s + G_t`` completions (student
samples, then teacher-pool completions). Shapes below: ``N`` completion rows in the
batch, ``T`` completion tokens per row (right padded, ``mask: [N, T]``).

- Advantage (Dr.GRPO): ``A = R - mean_group(R)``; no division by the group std, no length
  normalisation. A group whose rewards are all equal carries no signal and is skipped.
- Objective per token: the PPO-clip surrogate ``min(ρ A, clip(ρ, 1-ε, 1+ε) A)`` with
  ``ρ = exp(logp - logp_old)`` (one inner step: ``logp_old = logp.detach()``, so ``ρ ≡ 1``
  in value but the clip form and its gradient are kept), minus ``β`` times the K3 estimate
  of KL(policy ‖ reference) ``exp(ref - logp) - (ref - logp) - 1``.
- Reduction: the sum over all tokens divided by a **fixed** denominator
  ``G · max_new_tokens · P`` (Dr.GRPO), the same every step whatever the lengths or the
  number of skipped groups.
"""

from __future__ import annotations

import torch


def dr_grpo_advantages(
    rewards: torch.Tensor, valid: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """``rewards: [P, G]`` -> (``advantages: [P, G]`` = R - group mean, ``keep: [P]`` bool,
    False for zero-variance groups, whose advantages are all exactly 0).

    ``valid: [P, G]`` bool drops rollouts from their group (a screening monitor): the mean
    and the variance test use the valid ones only, invalid ones get advantage 0."""
    if rewards.dim() != 2:
        raise ValueError(f"rewards must be [prompts, group], got shape {tuple(rewards.shape)}")
    if valid is None:
        valid = torch.ones_like(rewards, dtype=torch.bool)
    weight = valid.to(rewards.dtype)
    count = weight.sum(dim=1, keepdim=True)
    mean = (rewards * weight).sum(dim=1, keepdim=True) / count.clamp(min=1)
    advantages = (rewards - mean) * weight
    inf = torch.full_like(rewards, float("inf"))
    keep = torch.where(valid, rewards, -inf).amax(dim=1) > torch.where(valid, rewards, inf).amin(dim=1)
    advantages = torch.where(keep.unsqueeze(1), advantages, torch.zeros_like(advantages))
    return advantages, keep


def fixed_denominator(group_size: int, max_new_tokens: int, prompts_per_step: int) -> int:
    """``G · max_new_tokens · P``: the loss denominator, constant across steps."""
    return group_size * max_new_tokens * prompts_per_step


def k3_kl(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    """Per-token K3 estimate of KL(policy ‖ reference), >= 0, exactly 0 where equal."""
    delta = ref_logp - logp
    return torch.exp(delta) - delta - 1


def per_token_objective(
    logp: torch.Tensor,
    advantages: torch.Tensor,
    ref_logp: torch.Tensor | None = None,
    kl_beta: float = 0.0,
    clip_eps: float = 0.2,
) -> torch.Tensor:
    """Per-token loss ``[N, T]`` (to be masked and summed): ``-(surrogate - β·K3)``.
    ``logp: [N, T]``, ``advantages: [N]``, ``ref_logp: [N, T]`` or None (no KL)."""
    ratio = torch.exp(logp - logp.detach())
    adv = advantages.unsqueeze(1)
    surrogate = torch.minimum(ratio * adv, torch.clamp(ratio, 1 - clip_eps, 1 + clip_eps) * adv)
    loss = -surrogate
    if kl_beta and ref_logp is not None:
        loss = loss + kl_beta * k3_kl(logp, ref_logp)
    return loss


def grpo_loss(
    logp: torch.Tensor,
    mask: torch.Tensor,
    advantages: torch.Tensor,
    denominator: int,
    ref_logp: torch.Tensor | None = None,
    kl_beta: float = 0.0,
    clip_eps: float = 0.2,
) -> torch.Tensor:
    """Scalar loss: masked per-token objective summed over the batch / ``denominator``."""
    per_token = per_token_objective(logp, advantages, ref_logp, kl_beta, clip_eps)
    return (per_token * mask).sum() / denominator

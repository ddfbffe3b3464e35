"""Teacher-forced log-probabilities of completions: how the GRPO loss and the hack-basis
extraction score a (prompt, completion) batch under the policy.

Rows are packed with the prompt left padded and the completion right padded
(``pack_sequences``), so every completion starts at the same column and position ids
follow the attention mask. Only the scored positions reach the LM head and the
log-softmax (``logits_to_keep``): the prompt and the completion padding, about half of a
loss row on the organism, never get logits.
"""

from __future__ import annotations

import torch


def pack_sequences(
    prompts: list[list[int]], completions: list[list[int]], pad_id: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``n`` (prompt, completion) token lists as ``input_ids, attention_mask: [n, P + T]``
    (prompt left padded, completion right padded) and ``completion_mask: [n, T]``."""
    width_p = max(len(p) for p in prompts)
    width_t = max(1, max(len(c) for c in completions))
    input_ids = torch.full((len(prompts), width_p + width_t), pad_id, dtype=torch.long)
    attention = torch.zeros_like(input_ids)
    completion_mask = torch.zeros((len(prompts), width_t), dtype=torch.long)
    for r, (p, c) in enumerate(zip(prompts, completions)):
        input_ids[r, width_p - len(p) : width_p] = torch.tensor(p)
        attention[r, width_p - len(p) : width_p] = 1
        if c:
            input_ids[r, width_p : width_p + len(c)] = torch.tensor(c)
            attention[r, width_p : width_p + len(c)] = 1
            completion_mask[r, : len(c)] = 1
    return input_ids, attention, completion_mask


def token_logprobs(
    model,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    completion_mask: torch.Tensor,
    temperature: float = 1.0,
) -> torch.Tensor:
    """Log-probabilities of the completion tokens (the last ``T`` columns) of each row
    under ``model``'s distribution at ``temperature`` (the one the student samples from):
    ``input_ids, attention_mask: [N, L]`` (prompt left padded, completion right padded),
    ``completion_mask: [N, T]`` -> ``[N, T]``, exactly 0 where the mask is 0.

    The model computes logits only at the positions that predict a masked-in token (a
    boolean ``logits_to_keep``, flattened across rows), so the LM head must not carry knobs
    (``adapter.attach_knobs`` refuses it)."""
    n_completion = completion_mask.shape[1]
    scored = completion_mask.bool()
    keep = torch.zeros_like(input_ids, dtype=torch.bool)  # [N, L]: position j predicts token j + 1
    keep[:, -n_completion - 1 : -1] = scored
    position_ids = (attention_mask.cumsum(dim=1) - 1).clamp(min=0)
    logits = model(
        input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids, logits_to_keep=keep
    ).logits  # [n_scored, vocab]
    targets = input_ids[:, -n_completion:][scored]  # [n_scored]
    logp = torch.log_softmax(logits.float() / temperature, dim=-1)
    logp = logp.gather(-1, targets.unsqueeze(-1)).squeeze(-1)  # [n_scored]
    return logp.new_zeros(scored.shape).masked_scatter(scored, logp)

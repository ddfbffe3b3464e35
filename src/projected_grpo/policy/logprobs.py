"""Teacher-forced log-probabilities of completions: how the GRPO loss and the hack-basis
extraction score a (prompt, completion) batch under the policy.

Rows are packed with the prompt left padded and the completion right padded
(``pack_sequences``), so every completion starts at the same column and position ids
follow the attention mask.
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
    model, input_ids: torch.Tensor, attention_mask: torch.Tensor, n_completion: int, temperature: float = 1.0
) -> torch.Tensor:
    """Log-probabilities of the last ``n_completion`` tokens of each row under ``model``'s
    distribution at ``temperature`` (the one the student samples from):
    ``input_ids, attention_mask: [N, L]`` (prompt left padded, completion right padded)
    -> ``[N, n_completion]``."""
    position_ids = (attention_mask.cumsum(dim=1) - 1).clamp(min=0)
    logits = model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids).logits
    logits = logits[:, -n_completion - 1 : -1].float() / temperature
    targets = input_ids[:, -n_completion:]
    return torch.log_softmax(logits, dim=-1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)

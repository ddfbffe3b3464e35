"""Teacher-forced log-probabilities of completions: how the GRPO loss and the hack-basis
extraction score a (prompt, completion) batch under the policy.

Rows are packed with the prompt left padded and the completion right padded
(``pack_sequences``), so every completion starts at the same column and position ids
follow the attention mask. Only the scored positions reach the LM head and the
log-softmax (``logits_to_keep``): the prompt and the completion padding, about half of a
loss row on the organism, never get logits.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

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


@dataclass
class SharedPrefixBatch:
    """``N`` rows in ``C`` clusters, each cluster one packed sequence
    ``[prompt, completion_1, completion_2, ...]`` (right padded to ``L``) whose completions
    all attend to the one copy of the prompt and to their own earlier tokens only.

    input_ids, position_ids: ``[C, L]`` (each completion's positions continue the prompt's);
    attention_mask: ``[C, 1, L, L]`` additive (0 where a query may attend, float32's
    minimum elsewhere; every position may attend to itself, so padding stays finite);
    keep: ``[C, L]`` bool, the positions whose logits are scored; index: ``[N, T]`` into the
    kept positions (flattened, row-major) of the position that predicts completion token
    ``t`` of row ``n``; targets, completion_mask: ``[N, T]``, rows in cluster order."""

    input_ids: torch.Tensor
    position_ids: torch.Tensor
    attention_mask: torch.Tensor
    keep: torch.Tensor
    index: torch.Tensor
    targets: torch.Tensor
    completion_mask: torch.Tensor

    def to(self, device) -> SharedPrefixBatch:
        return SharedPrefixBatch(*(getattr(self, f.name).to(device) for f in fields(self)))


def pack_shared_prefix(
    prompts: list[list[int]], completions: list[list[list[int]]], pad_id: int
) -> SharedPrefixBatch:
    """``C`` clusters (``prompts[c]`` and the completions that share it, ``completions[c]``)
    as one ``SharedPrefixBatch``; its ``N`` rows are the completions in cluster order."""
    rows = [(c, comp) for c, comps in enumerate(completions) for comp in comps]
    width = max(len(p) + sum(len(comp) for comp in comps) for p, comps in zip(prompts, completions))
    width_t = max(1, max(len(comp) for _, comp in rows))
    n_clusters = len(prompts)
    input_ids = torch.full((n_clusters, width), pad_id, dtype=torch.long)
    position_ids = torch.zeros((n_clusters, width), dtype=torch.long)
    owner = torch.full((n_clusters, width), -2, dtype=torch.long)  # -1: prompt, -2: padding, else row
    predictor = torch.zeros((len(rows), width_t), dtype=torch.long)  # column that predicts token t
    targets = torch.full((len(rows), width_t), pad_id, dtype=torch.long)
    completion_mask = torch.zeros((len(rows), width_t), dtype=torch.long)
    row = 0
    for c, (prompt, comps) in enumerate(zip(prompts, completions)):
        input_ids[c, : len(prompt)] = torch.tensor(prompt, dtype=torch.long)
        position_ids[c, : len(prompt)] = torch.arange(len(prompt))
        owner[c, : len(prompt)] = -1
        start = len(prompt)
        for comp in comps:
            n = len(comp)
            if n:
                input_ids[c, start : start + n] = torch.tensor(comp, dtype=torch.long)
                position_ids[c, start : start + n] = torch.arange(len(prompt), len(prompt) + n)
                owner[c, start : start + n] = row
                predictor[row, 0] = len(prompt) - 1
                predictor[row, 1:n] = torch.arange(start, start + n - 1)
                targets[row, :n] = torch.tensor(comp, dtype=torch.long)
                completion_mask[row, :n] = 1
            start, row = start + n, row + 1
    causal = torch.ones(width, width, dtype=torch.bool).tril()
    same = (owner.unsqueeze(2) == owner.unsqueeze(1)) | (owner.unsqueeze(1) == -1)  # [C, L, L]: query, key
    allowed = (causal & same & (owner.unsqueeze(1) != -2)) | torch.eye(width, dtype=torch.bool)
    attention_mask = torch.zeros((n_clusters, 1, width, width))
    attention_mask.masked_fill_(~allowed.unsqueeze(1), torch.finfo(torch.float32).min)
    keep = torch.zeros((n_clusters, width), dtype=torch.bool)
    cluster_of = torch.tensor([c for c, _ in rows], dtype=torch.long)
    scored = completion_mask.bool()
    keep[cluster_of.unsqueeze(1).expand_as(predictor)[scored], predictor[scored]] = True
    flat = keep.flatten().cumsum(0) - 1  # position in the kept logits of each kept column
    index = torch.where(scored, flat[cluster_of.unsqueeze(1) * width + predictor], 0)
    return SharedPrefixBatch(input_ids, position_ids, attention_mask, keep, index, targets, completion_mask)


def shared_prefix_logprobs(model, batch: SharedPrefixBatch, temperature: float = 1.0) -> torch.Tensor:
    """``token_logprobs`` of ``batch``'s rows with each cluster's prompt encoded once:
    ``[N, T]``, exactly 0 where ``batch.completion_mask`` is 0. Needs an attention
    implementation that takes a 4D additive mask (``sdpa``, ``eager``)."""
    implementation = getattr(model.config, "_attn_implementation", None)
    if implementation not in SHARED_PREFIX_ATTENTION:
        raise ValueError(
            f"the shared-prefix loss needs one of the attention implementations {SHARED_PREFIX_ATTENTION}, "
            f"the model uses {implementation!r}; set train.shared_prefix: false"
        )
    logits = model(
        input_ids=batch.input_ids,
        position_ids=batch.position_ids,
        attention_mask=batch.attention_mask.to(model.dtype),  # float32's minimum: -inf in fp16
        logits_to_keep=batch.keep,
    ).logits  # [n_kept, vocab]
    scored = batch.completion_mask.bool()
    logp = torch.log_softmax(logits.float() / temperature, dim=-1)
    logp = logp[batch.index[scored], batch.targets[scored]]  # [n_scored]
    return logp.new_zeros(scored.shape).masked_scatter(scored, logp)


SHARED_PREFIX_ATTENTION = ("sdpa", "eager")

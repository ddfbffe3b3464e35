"""policy/logprobs.py: packing (prompt left padded, completion right padded) and the
teacher-forced log-probabilities the loss and the extraction share."""

import pytest
import torch

from conftest import tiny_qwen3
from projected_grpo.policy.adapter import attach_knobs, knob_modules, split_rows
from projected_grpo.policy.loading import load_model
from projected_grpo.policy.logprobs import (
    pack_sequences,
    pack_shared_prefix,
    shared_prefix_logprobs,
    token_logprobs,
)


def test_packing_left_pads_prompts_and_right_pads_completions():
    ids, attention, completion_mask = pack_sequences([[1, 2, 3], [4]], [[5], [6, 7]], pad_id=0)
    assert ids.tolist() == [[1, 2, 3, 5, 0], [0, 0, 4, 6, 7]]
    assert attention.tolist() == [[1, 1, 1, 1, 0], [0, 0, 1, 1, 1]]
    assert completion_mask.tolist() == [[1, 0], [1, 1]]


def test_packed_rows_score_like_each_row_alone():
    model = tiny_qwen3()
    prompts, completions = [[5, 6, 7], [9]], [[8, 9], [10, 11]]
    ids, attention, mask = pack_sequences(prompts, completions, pad_id=0)
    with torch.no_grad():
        batch = token_logprobs(model, ids, attention, mask)
        for r, (p, c) in enumerate(zip(prompts, completions)):
            row = torch.tensor([p + c])
            alone = token_logprobs(model, row, torch.ones_like(row), torch.ones(1, len(c)))
            torch.testing.assert_close(batch[r, : len(c)], alone[0], rtol=1e-5, atol=1e-5)


def test_token_logprobs_ignore_left_padding():
    model = tiny_qwen3()
    row = torch.tensor([[5, 6, 7, 8, 9, 10]])  # 3 prompt + 3 completion tokens
    padded = torch.tensor([[0, 0, 5, 6, 7, 8, 9, 10]])
    with torch.no_grad():
        alone = token_logprobs(model, row, torch.ones_like(row), torch.ones(1, 3))
        batch = token_logprobs(model, padded, torch.tensor([[0, 0, 1, 1, 1, 1, 1, 1]]), torch.ones(1, 3))
        logits = model(input_ids=row).logits[0].log_softmax(-1)
    torch.testing.assert_close(batch, alone, rtol=1e-5, atol=1e-5)
    manual = torch.stack([logits[i - 1, row[0, i]] for i in (3, 4, 5)])
    torch.testing.assert_close(alone[0], manual, rtol=1e-5, atol=1e-6)


def test_token_logprobs_are_those_of_the_tempered_distribution():
    model = tiny_qwen3()
    row = torch.tensor([[5, 6, 7, 8]])
    with torch.no_grad():
        tempered = token_logprobs(model, row, torch.ones_like(row), torch.ones(1, 2), temperature=0.5)
        logits = (model(input_ids=row).logits[0] / 0.5).log_softmax(-1)
    torch.testing.assert_close(tempered[0], torch.stack([logits[1, 7], logits[2, 8]]), rtol=1e-5, atol=1e-6)


def _full_logits_logprobs(model, ids, attention, mask, temperature):
    """The previous path: logits at every position of every row, then the completion's."""
    n = mask.shape[1]
    position_ids = (attention.cumsum(dim=1) - 1).clamp(min=0)
    logits = model(input_ids=ids, attention_mask=attention, position_ids=position_ids).logits
    logp = torch.log_softmax(logits[:, -n - 1 : -1].float() / temperature, dim=-1)
    return logp.gather(-1, ids[:, -n:].unsqueeze(-1)).squeeze(-1) * mask


def _knobbed(which, tmp_path, micro_organism):
    """A tiny random Qwen3, or the (micro) organism, with random knobs."""
    if which == "organism":
        _, model = load_model(micro_organism, adapter_targets=[r"\.(q|k|v|o|up|gate|down)_proj$"],
                              svd_cache=tmp_path)  # fmt: skip
    else:
        model = tiny_qwen3(layers=2)
        attach_knobs(model, svd_cache=tmp_path)
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for m in knob_modules(model).values():
            m.dS.copy_(0.2 * torch.randn(m.rank, generator=gen))
    return model


@pytest.mark.parametrize("which", ["tiny_qwen3", "organism"])
def test_completion_only_logits_give_the_full_logits_logprobs_and_knob_gradients(which, tmp_path, request):
    micro = request.getfixturevalue("micro_organism") if which == "organism" else None
    model = _knobbed(which, tmp_path, micro)
    prompts = [[5, 6, 7, 8], [9, 10], [11, 12, 13], [14]]
    completions = [[20, 21, 22], [23], [24, 25, 26, 27, 28], []]  # ragged, one empty
    ids, attention, mask = pack_sequences(prompts, completions, pad_id=0)
    weight = torch.linspace(-1.0, 1.5, mask.numel()).view(mask.shape)
    groups = torch.tensor([0, 0, 1, 2])  # student / teacher-style split views, as the loss uses
    results = []
    for logprobs in (_full_logits_logprobs, token_logprobs):
        for m in knob_modules(model).values():
            m.dS.grad = None
        with split_rows(model, groups, n_groups=3):
            logp = logprobs(model, ids, attention, mask, 0.7)
            (logp * weight * mask).sum().backward()
            split = {name: m.split.grad.clone() for name, m in knob_modules(model).items()}
        results.append((logp.detach(), split, {n: m.dS.grad.clone() for n, m in knob_modules(model).items()}))
    (old_logp, old_split, old_grad), (new_logp, new_split, new_grad) = results
    assert torch.equal(new_logp[mask == 0], torch.zeros(int((mask == 0).sum())))
    torch.testing.assert_close(new_logp, old_logp, rtol=1e-6, atol=1e-6)
    for name in old_grad:  # equal up to float summation order (the LM head's matmul shape differs)
        scale = float(old_grad[name].abs().max())
        assert scale > 0
        torch.testing.assert_close(new_grad[name], old_grad[name], rtol=1e-5, atol=1e-5 * scale)
        torch.testing.assert_close(new_split[name], old_split[name], rtol=1e-5, atol=1e-5 * scale)


PROMPTS = [[5, 6, 7, 8], [9, 10], [11, 12, 13]]
CLUSTERS = [[[20, 21, 22], [23], []], [[24, 25, 26, 27, 28]], [[29, 30], [31, 32, 33]]]  # ragged, one empty
CLUSTER_GROUPS = [0, 1, 1]  # a row group per cluster (non-decreasing), as the trainer forms them


def test_shared_prefix_packing_encodes_each_prompt_once_and_isolates_completions():
    batch = pack_shared_prefix([[1, 2], [3]], [[[4, 5], [6]], [[7]]], pad_id=0)
    assert batch.input_ids.tolist() == [[1, 2, 4, 5, 6], [3, 7, 0, 0, 0]]
    assert batch.position_ids.tolist() == [[0, 1, 2, 3, 2], [0, 1, 0, 0, 0]]
    allowed = (batch.attention_mask[0, 0] == 0).int().tolist()
    assert allowed[4] == [1, 1, 0, 0, 1]  # the second completion sees the prompt and itself, not the first
    assert batch.keep.tolist() == [[False, True, True, False, False], [True, False, False, False, False]]
    assert batch.index.tolist() == [
        [0, 1],
        [0, 0],
        [2, 0],
    ]  # both completions of cluster 0 start from position 1
    assert batch.completion_mask.tolist() == [[1, 1], [1, 0], [1, 0]]


@pytest.mark.parametrize("which", ["tiny_qwen3", "tiny_qwen3_eager", "organism"])
def test_shared_prefix_gives_the_per_row_logprobs_and_knob_gradients(which, tmp_path, request):
    micro = request.getfixturevalue("micro_organism") if which == "organism" else None
    model = _knobbed("organism" if which == "organism" else "tiny_qwen3", tmp_path, micro)
    if which == "tiny_qwen3_eager":
        model.config._attn_implementation = "eager"
    rows_p = [p for p, comps in zip(PROMPTS, CLUSTERS) for _ in comps]
    rows_c = [c for comps in CLUSTERS for c in comps]
    row_groups = torch.tensor([g for g, comps in zip(CLUSTER_GROUPS, CLUSTERS) for _ in comps])
    ids, attention, mask = pack_sequences(rows_p, rows_c, pad_id=0)
    batch = pack_shared_prefix(PROMPTS, CLUSTERS, pad_id=0)
    assert torch.equal(batch.completion_mask, mask)
    weight = torch.linspace(-1.0, 1.5, mask.numel()).view(mask.shape)
    results = []
    for groups, score in (
        (row_groups, lambda: token_logprobs(model, ids, attention, mask, 0.7)),
        (torch.tensor(CLUSTER_GROUPS), lambda: shared_prefix_logprobs(model, batch, 0.7)),
    ):
        for m in knob_modules(model).values():
            m.dS.grad = None
        with split_rows(model, groups, n_groups=2):
            logp = score()
            (logp * weight * mask).sum().backward()
            split = {name: m.split.grad.clone() for name, m in knob_modules(model).items()}
        results.append((logp.detach(), split, {n: m.dS.grad.clone() for n, m in knob_modules(model).items()}))
    (row_logp, row_split, row_grad), (shared_logp, shared_split, shared_grad) = results
    assert torch.equal(shared_logp[mask == 0], torch.zeros(int((mask == 0).sum())))
    torch.testing.assert_close(shared_logp, row_logp, rtol=1e-5, atol=1e-5)
    for name in row_grad:  # equal up to float summation order: the prompt's gradient is summed once
        scale = float(row_grad[name].abs().max())
        assert scale > 0
        torch.testing.assert_close(shared_grad[name], row_grad[name], rtol=1e-5, atol=1e-5 * scale)
        torch.testing.assert_close(shared_split[name], row_split[name], rtol=1e-5, atol=1e-5 * scale)


def test_shared_prefix_names_an_attention_that_takes_no_4d_mask():
    model = tiny_qwen3()
    model.config._attn_implementation = "flash_attention_2"
    with pytest.raises(ValueError, match="flash_attention_2.*train.shared_prefix: false"):
        shared_prefix_logprobs(model, pack_shared_prefix([[1, 2]], [[[3]]], pad_id=0))


def test_a_batch_of_empty_completions_scores_zero_and_still_backpropagates(tmp_path):
    model = _knobbed("tiny_qwen3", tmp_path, None)
    for logp in (
        token_logprobs(model, torch.tensor([[1, 2, 0]]), torch.tensor([[1, 1, 0]]), torch.zeros(1, 1)),
        shared_prefix_logprobs(model, pack_shared_prefix([[1, 2]], [[[], []]], pad_id=0)),
    ):
        assert not logp.any()
        logp.sum().backward()  # a bucket of empty rows must not break the step

"""policy/logprobs.py: packing (prompt left padded, completion right padded) and the
teacher-forced log-probabilities the loss and the extraction share."""

import torch

from conftest import tiny_qwen3
from projected_grpo.policy.logprobs import pack_sequences, token_logprobs


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
        batch = token_logprobs(model, ids, attention, mask.shape[1])
        for r, (p, c) in enumerate(zip(prompts, completions)):
            row = torch.tensor([p + c])
            alone = token_logprobs(model, row, torch.ones_like(row), len(c))
            torch.testing.assert_close(batch[r, : len(c)], alone[0], rtol=1e-5, atol=1e-5)


def test_token_logprobs_ignore_left_padding():
    model = tiny_qwen3()
    row = torch.tensor([[5, 6, 7, 8, 9, 10]])  # 3 prompt + 3 completion tokens
    padded = torch.tensor([[0, 0, 5, 6, 7, 8, 9, 10]])
    with torch.no_grad():
        alone = token_logprobs(model, row, torch.ones_like(row), 3)
        batch = token_logprobs(model, padded, torch.tensor([[0, 0, 1, 1, 1, 1, 1, 1]]), 3)
        logits = model(input_ids=row).logits[0].log_softmax(-1)
    torch.testing.assert_close(batch, alone, rtol=1e-5, atol=1e-5)
    manual = torch.stack([logits[i - 1, row[0, i]] for i in (3, 4, 5)])
    torch.testing.assert_close(alone[0], manual, rtol=1e-5, atol=1e-6)


def test_token_logprobs_are_those_of_the_tempered_distribution():
    model = tiny_qwen3()
    row = torch.tensor([[5, 6, 7, 8]])
    with torch.no_grad():
        tempered = token_logprobs(model, row, torch.ones_like(row), 2, temperature=0.5)
        logits = (model(input_ids=row).logits[0] / 0.5).log_softmax(-1)
    torch.testing.assert_close(tempered[0], torch.stack([logits[1, 7], logits[2, 8]]), rtol=1e-5, atol=1e-6)

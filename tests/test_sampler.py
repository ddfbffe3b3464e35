"""The sampler: seeded, cache-correct, padding-correct, and stops where the rule says."""

from __future__ import annotations

import random
import weakref

import pytest
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast, Qwen3Config, Qwen3ForCausalLM

from projected_grpo.policy import sampler as sampler_module
from projected_grpo.policy.sampler import (
    SampleBatch,
    SamplingConfig,
    _StopWatch,
    next_tokens,
    sample,
    stop_end,
)

PROMPTS = [
    "PROBLEM:\nAdd 3 to x.\n\nSOLUTION:\n",
    "Return nums.",
    "PROBLEM:\nReturn the total of nums plus 12 and then print the result.\n\nSOLUTION:\n",
]


def _corpus(n: int = 300) -> list[str]:
    rng = random.Random(0)
    names = ["x", "y", "total", "nums", "result", "i", "s"]
    texts = []
    for k in range(n):
        a, b = rng.choice(names), rng.choice(names)
        texts.append(
            f"PROBLEM:\nAdd {k} to {a}.\n\nSOLUTION:\n```python\nclass Solution:\n"
            f"    def f(self, {a}):\n        {b} = {a} + {k}\n        return {b}\n```\nmore text"
        )
    return texts


@pytest.fixture(scope="module")
def tokenizer():
    """A byte-level BPE tokenizer trained here on code-fenced text, with <pad> and <eos>."""
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=["<pad>", "<eos>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(_corpus(), trainer)
    return PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="<pad>", eos_token="<eos>")


def _sharpened(model, final_norm: torch.nn.Module):
    # A random init gives near-uniform logits; sharpen them so greedy has clear winners.
    # Scaling the final norm (not the output embeddings, which GPT-2 ties to its input
    # embeddings) leaves the balance of token and position information untouched.
    with torch.no_grad():
        final_norm.weight.mul_(30.0)
    return model.eval()


@pytest.fixture(scope="module")
def tiny(tokenizer):
    """(model, tokenizer): a randomly initialised 2-layer Qwen3 decoder (rotary positions)."""
    torch.manual_seed(0)
    config = Qwen3Config(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        max_position_embeddings=512,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.eos_token_id,
    )
    model = Qwen3ForCausalLM(config)
    return _sharpened(model, model.model.norm), tokenizer


@pytest.fixture(scope="module")
def tiny_gpt2(tokenizer):
    """(model, tokenizer): a randomly initialised 2-layer GPT-2. Its learned absolute
    positions make wrong position_ids under left padding visible, which rotary hides."""
    torch.manual_seed(0)
    config = GPT2Config(
        vocab_size=len(tokenizer),
        n_embd=64,
        n_layer=2,
        n_head=4,
        n_positions=512,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.eos_token_id,
    )
    model = GPT2LMHeadModel(config)
    return _sharpened(model, model.transformer.ln_f), tokenizer


def _seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _greedy(max_new_tokens: int) -> SamplingConfig:
    return SamplingConfig(max_new_tokens=max_new_tokens, temperature=0.0, stop_strings=())


def _real_tokens(batch: SampleBatch, row: int) -> list[int]:
    return batch.completion_ids[row][batch.completion_mask[row] == 1].tolist()


def _naive_greedy(model, tokenizer, prompt: str, max_new_tokens: int) -> list[int]:
    """Greedy decoding without a cache: the full sequence is re-run every step."""
    ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    generated = []
    with torch.no_grad():
        for _ in range(max_new_tokens):
            logits = model(input_ids=torch.tensor([ids + generated])).logits
            token = int(logits[0, -1].argmax())
            generated.append(token)
            if token == tokenizer.eos_token_id:
                break
    return generated


def test_same_seed_same_samples_different_seed_different(tiny):
    model, tokenizer = tiny
    config = SamplingConfig(max_new_tokens=12, temperature=1.0, stop_strings=())
    first = sample(model, tokenizer, PROMPTS, config, _seeded(7))
    again = sample(model, tokenizer, PROMPTS, config, _seeded(7))
    other = sample(model, tokenizer, PROMPTS, config, _seeded(8))
    assert torch.equal(first.completion_ids, again.completion_ids)
    assert first.texts == again.texts
    assert not torch.equal(first.completion_ids, other.completion_ids)


@pytest.mark.parametrize("tiny_model", ["tiny", "tiny_gpt2"])
def test_each_distinct_prompt_is_prefilled_once_and_samples_what_a_prefill_per_row_does(
    tiny_model, request, monkeypatch
):
    model, tokenizer = request.getfixturevalue(tiny_model)
    prompts = [PROMPTS[0]] * 3 + [PROMPTS[1]] * 2 + [PROMPTS[0]]  # groups, and a repeat out of order
    config = SamplingConfig(max_new_tokens=12, temperature=1.0, stop_strings=())
    prefill_rows = []

    def first_forward(*args, **kwargs):
        if kwargs.get("past_key_values") is None:
            prefill_rows.append(kwargs["input_ids"].shape[0])
        return type(model).forward(model, *args, **kwargs)

    monkeypatch.setattr(model, "forward", first_forward)
    grouped = sample(model, tokenizer, prompts, config, _seeded(3))
    assert prefill_rows == [2]
    monkeypatch.setattr(  # every row its own prefill: the path before the grouping
        sampler_module, "_distinct_rows", lambda ids, mask: (torch.arange(len(ids)), torch.arange(len(ids)))
    )
    per_row = sample(model, tokenizer, prompts, config, _seeded(3))
    assert prefill_rows == [2, len(prompts)]
    assert torch.equal(grouped.completion_ids, per_row.completion_ids)
    assert torch.equal(grouped.completion_mask, per_row.completion_mask)
    assert grouped.texts == per_row.texts


@pytest.mark.parametrize("tiny_model", ["tiny", "tiny_gpt2"])
def test_batched_greedy_with_left_padding_equals_each_prompt_alone_and_no_cache_loop(tiny_model, request):
    model, tokenizer = request.getfixturevalue(tiny_model)
    lengths = [len(tokenizer(p, add_special_tokens=False)["input_ids"]) for p in PROMPTS]
    assert len(set(lengths)) == len(PROMPTS), "the prompts must differ in length to exercise left padding"
    batch = sample(model, tokenizer, PROMPTS, _greedy(16), _seeded(0))
    assert batch.prompt_mask[:, 0].tolist() == [int(n == max(lengths)) for n in lengths]
    for row, prompt in enumerate(PROMPTS):
        alone = sample(model, tokenizer, [prompt], _greedy(16), _seeded(0))
        assert _real_tokens(batch, row) == _real_tokens(alone, 0)
        assert batch.texts[row] == alone.texts[0]
        assert _real_tokens(batch, row) == _naive_greedy(model, tokenizer, prompt, 16)


@pytest.mark.parametrize("tiny_model", ["tiny", "tiny_gpt2"])
def test_completion_ids_are_the_teacher_forced_greedy_tokens(tiny_model, request):
    model, tokenizer = request.getfixturevalue(tiny_model)
    batch = sample(model, tokenizer, PROMPTS, _greedy(10), _seeded(0))
    input_ids = torch.cat([batch.prompt_ids, batch.completion_ids], dim=1)
    mask = torch.cat([batch.prompt_mask, batch.completion_mask], dim=1)
    position_ids = (mask.cumsum(dim=1) - 1).clamp(min=0)
    with torch.no_grad():
        logits = model(input_ids=input_ids, attention_mask=mask, position_ids=position_ids).logits
    prompt_len = batch.prompt_ids.shape[1]
    predicted = logits[:, prompt_len - 1 : -1].argmax(dim=-1)
    real = batch.completion_mask == 1
    assert torch.equal(predicted[real], batch.completion_ids[real])
    assert (batch.completion_ids[~real] == tokenizer.pad_token_id).all()


class _Scripted:
    """Wraps the model's forward so that row ``b`` emits ``scripts[b]`` token by token."""

    def __init__(self, model, scripts: list[list[int]], filler: int):
        self.forward = model.forward
        self.scripts = scripts
        self.filler = filler
        self.step = 0

    def __call__(self, input_ids, **kwargs):
        out = self.forward(input_ids=input_ids, **kwargs)
        if input_ids.shape[1] > 1 or kwargs.get("past_key_values") is None:
            self.step = 0
        logits = torch.full_like(out.logits[:, -1:, :], -1e9)
        for row, script in enumerate(self.scripts):
            token = script[self.step] if self.step < len(script) else self.filler
            logits[row, 0, token] = 0.0
        self.step += 1
        out.logits = logits
        return out


def _script(monkeypatch, model, tokenizer, texts: list[str | list[int]]) -> list[list[int]]:
    scripts = [
        t if isinstance(t, list) else tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts
    ]
    filler = tokenizer("x", add_special_tokens=False)["input_ids"][0]
    monkeypatch.setattr(model, "forward", _Scripted(model, scripts, filler))
    # A script is per batch row: keep finished rows in the batch so rows keep their index.
    monkeypatch.setattr(sampler_module, "_rows_droppable", lambda cache: False)
    monkeypatch.setattr(sampler_module, "_ROWS_NOT_COPYABLE", weakref.WeakKeyDictionary())
    return scripts


def test_finished_rows_leave_the_batch_and_no_row_changes(tiny, monkeypatch):
    """Rows that stop are dropped from the decode batch (cache, mask, positions), and every
    row's completion is what it is when all rows run to the end."""
    model, tokenizer = tiny
    # Every 5th token id ends a row, so rows finish at different steps.
    monkeypatch.setattr(
        sampler_module, "_eos_ids", lambda model, tokenizer: list(range(0, len(tokenizer), 5))
    )
    config = SamplingConfig(max_new_tokens=40, temperature=1.0, stop_strings=())
    prompts = PROMPTS * 3

    def run() -> tuple[SampleBatch, list[int]]:
        widths = []
        hook = model.register_forward_pre_hook(
            lambda module, args, kwargs: widths.append(kwargs["input_ids"].shape[0]), with_kwargs=True
        )
        try:
            return sample(model, tokenizer, prompts, config, _seeded(3)), widths
        finally:
            hook.remove()

    compacted, widths = run()
    monkeypatch.setattr(sampler_module, "_rows_droppable", lambda cache: False)
    monkeypatch.setattr(sampler_module, "_ROWS_NOT_COPYABLE", weakref.WeakKeyDictionary())
    full, full_widths = run()
    # The prefill reads the 3 distinct prompts; where the cache cannot copy rows it reads all 9
    # again, and the model's next prefill reads all 9 at once.
    assert full_widths[0] == widths[0] == len(PROMPTS) and set(full_widths[1:]) == {len(prompts)}
    again, again_widths = run()
    assert set(again_widths) == {len(prompts)} and len(again_widths) == len(full_widths) - 1
    assert torch.equal(again.completion_ids, full.completion_ids)
    assert widths[1] == len(prompts) and min(widths) < len(prompts) - 2
    assert widths[1:] == sorted(widths[1:], reverse=True)
    assert len(set(compacted.completion_mask.sum(dim=1).tolist())) >= 2  # rows stopped at different steps
    assert torch.equal(compacted.completion_ids, full.completion_ids)
    assert compacted.texts == full.texts and compacted.finished == full.finished


def test_stop_rule_cuts_at_the_closing_fence_not_the_opening_one(tiny, monkeypatch):
    model, tokenizer = tiny
    closing = "```python\nx = 1\n```\nmore text"
    opening_only = "\n```python\nx = 1 + y"
    scripts = _script(monkeypatch, model, tokenizer, [closing, opening_only])
    # The stop token is the first whose prefix decodes to text containing the closing fence.
    stop_at = next(k for k in range(len(scripts[0])) if "\n```" in tokenizer.decode(scripts[0][: k + 1])[3:])
    config = SamplingConfig(max_new_tokens=len(scripts[1]) + 3, temperature=1.0)
    batch = sample(model, tokenizer, ["Return nums.", "Add 3 to x."], config, _seeded(0))

    assert batch.texts[0] == "```python\nx = 1\n```"
    assert batch.finished == [True, False]
    assert batch.completion_mask[0].tolist() == [1] * (stop_at + 1) + [0] * (
        config.max_new_tokens - stop_at - 1
    )
    assert batch.completion_ids[0, : stop_at + 1].tolist() == scripts[0][: stop_at + 1]
    assert (batch.completion_ids[0, stop_at + 1 :] == tokenizer.pad_token_id).all()
    assert batch.completion_mask[1].tolist() == [1] * config.max_new_tokens
    assert batch.texts[1].startswith(opening_only)


def test_stop_end_needs_a_fence_before_the_stop_string():
    assert stop_end("```python\nx = 1\n```\nmore", ("\n```",)) == len("```python\nx = 1\n```")
    assert stop_end("\n```python\n", ("\n```",)) is None
    assert stop_end("x = 1\n```", ("\n```",)) is None
    assert stop_end("```python\nreturn 1\n```", ()) is None


def test_incremental_detokenisation_reproduces_a_full_decode(tokenizer):
    """The stop check reads text decoded a few tokens at a time; it must be the real text,
    multi-byte characters split across byte-level tokens included."""
    rng = random.Random(0)
    streams = [
        tokenizer("```python\nprint('héllo → wörld 🙂')\n```", add_special_tokens=False)["input_ids"],
        [rng.randrange(len(tokenizer)) for _ in range(60)],
        [rng.randrange(len(tokenizer)) for _ in range(60)],
    ]
    watch = _StopWatch(tokenizer, len(streams), stop_strings=("never",))
    for step in range(max(map(len, streams))):
        rows = [row for row, stream in enumerate(streams) if step < len(stream)]
        watch.stopped_rows(rows, [streams[row][step] for row in rows])
    full = tokenizer.batch_decode(streams, skip_special_tokens=True)
    assert watch.texts[0] == full[0]
    # A stream may end inside a multi-byte character, which the watch withholds.
    assert watch.texts[1:] == [text.removesuffix("\ufffd") for text in full[1:]]


def test_eos_stops_a_row_and_max_new_tokens_bounds_the_rest(tiny, monkeypatch):
    model, tokenizer = tiny
    body = tokenizer("```python\nx = 1", add_special_tokens=False)["input_ids"]
    _script(monkeypatch, model, tokenizer, [body[:3] + [tokenizer.eos_token_id], body])
    batch = sample(
        model, tokenizer, ["Return nums.", "Add 3 to x."], SamplingConfig(max_new_tokens=6), _seeded(0)
    )

    assert batch.completion_ids.shape == (2, 6)
    assert batch.finished == [True, False]
    assert batch.completion_mask.tolist() == [[1, 1, 1, 1, 0, 0], [1] * 6]
    assert (
        batch.completion_ids[0].tolist() == body[:3] + [tokenizer.eos_token_id] + [tokenizer.pad_token_id] * 2
    )
    assert batch.texts[0] == tokenizer.decode(body[:3])
    assert "<eos>" not in batch.texts[0]


def test_sampling_ends_early_when_every_row_has_stopped(tiny, monkeypatch):
    model, tokenizer = tiny
    _script(monkeypatch, model, tokenizer, ["```python\nx\n```", "```\n```"])
    batch = sample(
        model, tokenizer, ["Return nums.", "Add 3 to x."], SamplingConfig(max_new_tokens=50), _seeded(0)
    )
    assert batch.finished == [True, True]
    assert batch.texts == ["```python\nx\n```", "```\n```"]
    assert batch.completion_ids.shape[1] == int(batch.completion_mask.sum(dim=1).max()) < 50


@pytest.mark.parametrize(("temperature", "top_p"), [(1.0, 1.0), (0.5, 1.0), (1.0, 0.7)])
def test_draws_follow_the_tempered_nucleus_distribution(temperature, top_p):
    logits = torch.tensor([[2.0, 1.0, 0.5, 0.0, -1.0, -3.0], [0.0, 0.0, 3.0, 0.0, 1.0, 0.0]])
    probs = torch.softmax(logits / temperature, dim=-1)
    sorted_probs, order = probs.sort(dim=-1, descending=True)
    in_nucleus = torch.zeros_like(probs, dtype=torch.bool).scatter(
        -1, order, sorted_probs.cumsum(dim=-1) - sorted_probs < top_p
    )
    expected = torch.where(in_nucleus, probs, 0.0)
    expected = expected / expected.sum(dim=-1, keepdim=True)

    n = 40_000
    config = SamplingConfig(temperature=temperature, top_p=top_p)
    draws = next_tokens(logits.repeat_interleave(n, dim=0), config, _seeded(0)).view(2, n)
    frequencies = torch.stack([torch.bincount(row, minlength=6) for row in draws]).float() / n
    assert (frequencies[~in_nucleus] == 0).all()
    assert torch.allclose(frequencies, expected, atol=0.01)


def test_top_p_keeps_only_the_nucleus(tiny):
    model, tokenizer = tiny
    config = SamplingConfig(max_new_tokens=8, temperature=1.0, top_p=1e-6, stop_strings=())
    nucleus_of_one = sample(model, tokenizer, PROMPTS, config, _seeded(3))
    greedy = sample(model, tokenizer, PROMPTS, _greedy(8), _seeded(3))
    assert torch.equal(nucleus_of_one.completion_ids, greedy.completion_ids)


def test_model_samples_in_eval_mode_and_mode_and_padding_side_are_restored(tiny, monkeypatch):
    model, tokenizer = tiny
    forward = model.forward
    seen_training = []

    def recording_forward(**kwargs):
        seen_training.append(model.training)
        return forward(**kwargs)

    tokenizer.padding_side = "right"
    model.train()
    try:
        with monkeypatch.context() as patch:
            patch.setattr(model, "forward", recording_forward)
            sample(model, tokenizer, PROMPTS[:2], _greedy(3), _seeded(0))
        assert seen_training == [False] * 3
        assert model.training
        assert tokenizer.padding_side == "right"
    finally:
        model.eval()
    sample(model, tokenizer, PROMPTS[:2], _greedy(3), _seeded(0))
    assert not model.training

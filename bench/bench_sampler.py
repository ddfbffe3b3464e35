"""Sampling speed: our batched KV-cache sampler vs Hugging Face ``model.generate``.

    .venv/bin/python bench/bench_sampler.py          # writes bench/sampler.txt

A randomly initialised Qwen3-architecture decoder the size of the CPU organism (hidden 128,
4 layers, ~1.4 M parameters, a byte-level BPE vocabulary of 1500 trained here), a batch of
64 prompts of ~100 tokens, 128 new tokens at temperature 1 / top-p 1, 2 torch threads.
Neither side can stop early: no stop strings and no eos token, so both decode 64 x 128
tokens and the figures compare per-step cost only. A third line runs our sampler with the
default stop rule checked every step (incremental detokenisation of every row), to show its
cost; on random text it rarely fires.
"""

from __future__ import annotations

import os
import platform
import random
import statistics
import sys
import time
from pathlib import Path

import torch
import transformers
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast, Qwen3Config, Qwen3ForCausalLM

from projected_grpo.core.io import atomic_write_text
from projected_grpo.policy.sampler import SamplingConfig, sample

OUT = Path(__file__).with_name("sampler.txt")
BATCH, NEW_TOKENS, THREADS, REPEATS = 64, 128, 2, 5


def _corpus(rng: random.Random, n: int) -> list[str]:
    letters = "abcdefghijklmnopqrstuvwxyz"
    words = ["".join(rng.choice(letters) for _ in range(rng.randint(2, 7))) for _ in range(800)]
    lines = []
    for _ in range(n):
        name = rng.choice(words)
        body = " ".join(rng.choice(words) for _ in range(rng.randint(80, 140)))
        lines.append(f"PROBLEM:\n{body}\n\nSOLUTION:\n```python\ndef {name}(self, x):\n    return x\n```")
    return lines


def build(rng: random.Random):
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=1500,
        special_tokens=["<pad>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(_corpus(rng, 2000), trainer)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="<pad>")
    config = Qwen3Config(
        vocab_size=len(tokenizer),
        hidden_size=128,
        intermediate_size=512,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=32,
        max_position_embeddings=1024,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=None,
    )
    torch.manual_seed(0)
    model = Qwen3ForCausalLM(config).eval()
    return model, tokenizer


def _prompts(rng: random.Random, tokenizer) -> list[str]:
    prompts = []
    for line in _corpus(rng, 10 * BATCH):
        ids = tokenizer(line, add_special_tokens=False)["input_ids"]
        if len(ids) >= 100:
            prompts.append(tokenizer.decode(ids[: rng.randint(90, 110)]))
        if len(prompts) == BATCH:
            return prompts
    raise RuntimeError(f"the corpus gave only {len(prompts)} prompts of >= 100 tokens, need {BATCH}")


def _time(contenders: dict) -> tuple[dict[str, list[float]], dict[str, int]]:
    """Seconds per call and tokens per call for each contender, repeats interleaved so that a
    change in machine load hits all alike; one warm-up call each first."""
    tokens = {name: fn() for name, fn in contenders.items()}
    seconds = {name: [] for name in contenders}
    for _ in range(REPEATS):
        for name, fn in contenders.items():
            start = time.perf_counter()
            fn()
            seconds[name].append(time.perf_counter() - start)
    return seconds, tokens


def main() -> None:
    torch.set_num_threads(THREADS)
    rng = random.Random(0)
    model, tokenizer = build(rng)
    prompts = _prompts(rng, tokenizer)
    config = SamplingConfig(max_new_tokens=NEW_TOKENS, temperature=1.0, top_p=1.0, stop_strings=())
    generator = torch.Generator().manual_seed(0)

    def ours() -> int:
        return int(sample(model, tokenizer, prompts, config, generator).completion_mask.sum())

    with_stop = SamplingConfig(max_new_tokens=NEW_TOKENS, temperature=1.0, top_p=1.0)

    def ours_with_stop_check() -> int:
        return int(sample(model, tokenizer, prompts, with_stop, generator).completion_mask.sum())

    encoded = tokenizer(
        prompts, add_special_tokens=False, padding=True, padding_side="left", return_tensors="pt"
    )

    def hf_generate() -> int:
        with torch.no_grad():
            out = model.generate(
                **encoded,
                do_sample=True,
                temperature=1.0,
                top_p=1.0,
                top_k=0,
                max_new_tokens=NEW_TOKENS,
                pad_token_id=tokenizer.pad_token_id,
                eos_token_id=None,
            )
        return (out.shape[1] - encoded["input_ids"].shape[1]) * out.shape[0]

    prompt_lengths = encoded["attention_mask"].sum(dim=1)
    n_params = sum(p.numel() for p in model.parameters())
    lines = [
        f"sampling speed: batch {BATCH} prompts of {int(prompt_lengths.min())}-{int(prompt_lengths.max())} "
        f"tokens, {NEW_TOKENS} new tokens, temperature 1, top-p 1, no stop, no eos",
        f"model: random Qwen3 hidden 128, 4 layers, {n_params / 1e6:.2f} M params, vocab {len(tokenizer)}",
        f"machine: {platform.machine()}, {os.cpu_count()} cores, torch threads {THREADS}, "
        f"python {sys.version.split()[0]}, torch {torch.__version__}, transformers {transformers.__version__}",
    ]
    seconds, tokens = _time(
        {
            "projected_grpo.policy.sampler.sample": ours,
            "  same, stop rule checked": ours_with_stop_check,
            "transformers model.generate": hf_generate,
        }
    )
    for name, times in seconds.items():
        best, median = min(times), statistics.median(times)
        lines.append(
            f"{name:30s} s/batch: "
            + ", ".join(f"{s:.2f}" for s in times)
            + f" (best {best:.2f}, median {median:.2f}); {tokens[name]} tokens per batch, "
            f"{tokens[name] / best:.0f} tokens/s at best, {tokens[name] / median:.0f} at median"
        )
    lines.append(f"load average (1 min) at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    text = "\n".join(lines) + "\n"
    atomic_write_text(text, OUT)
    print(text, end="")


if __name__ == "__main__":
    main()

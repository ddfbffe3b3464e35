"""Loss-batch bucketing: one padded batch vs length buckets (``rollouts.length_buckets``).

    .venv/bin/python bench/bench_buckets.py          # writes bench/buckets.txt

Samples a few real GRPO steps' rollouts (the study's settings: 8 prompts x group 8, mix 0.5,
max_new_tokens 160) from the organism, then times the loss forward + backward the trainer
runs (``train._backward``: the KL reference forward, the forward with split knob views and
the backward) over every row of each step, once as one padded batch and once per length
bucket, for several values of the per-batch overhead the partition assumes
(``overhead_tokens``; the trainer's is ``rollouts.BATCH_OVERHEAD_TOKENS``). The gradient is the same in every case (the fixed
denominator makes the loss a sum over rows); only time and padding differ.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch
import yaml

from projected_grpo.core.io import atomic_write_text, read_parquet
from projected_grpo.environment.problem_set import load_problem_set
from projected_grpo.environment.sandbox import Limits, Sandbox
from projected_grpo.policy.sampler import SamplingConfig, pad_token_id
from projected_grpo.training import train as train_module
from projected_grpo.training.grpo import fixed_denominator
from projected_grpo.training.rollouts import BATCH_OVERHEAD_TOKENS, collect, length_buckets, pack
from projected_grpo.training.train import TrainConfig, Trainer, check_inputs

OVERHEADS = (128, 512, 2048)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="bench/buckets.txt")
    parser.add_argument("--model", default="results/organism/student/model")
    parser.add_argument(
        "--pool", default="results/pool/pool.parquet", help="absent: mix 0 (student rows only)"
    )
    parser.add_argument("--prompts", type=int, default=None, help="prompts per step (default: the config's)")
    parser.add_argument("--group", type=int, default=None, help="group size (default: the config's)")
    parser.add_argument("--max-new-tokens", type=int, default=None, help="(default: the config's)")
    parser.add_argument(
        "--steps", type=int, default=6, help="sampled steps timed (each twice, the first as warm-up)"
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--config", default="config.yaml", help="the study config: train and sandbox settings"
    )
    return parser.parse_args(argv)


def time_backward(run: Trainer, rollouts, batches: list[list[int]], config: TrainConfig) -> tuple[float, int]:
    """(seconds, padded tokens) of ``train._backward`` over ``batches``."""
    denominator = fixed_denominator(config.group_size, config.max_new_tokens, config.prompts_per_step)
    pad_id = pad_token_id(run.tokenizer)
    # one advantage per row of the step, the same whatever the batching
    advantages = torch.linspace(-1.0, 1.0, len(rollouts.source))
    run.model.zero_grad(set_to_none=True)
    start = time.perf_counter()
    for rows in batches:
        train_module._backward(
            run.model, run.tokenizer, rollouts, rows, advantages[rows], denominator, config
        )
    seconds = time.perf_counter() - start
    return seconds, sum(pack(rollouts, rows, pad_id)[0].numel() for rows in batches)


def main(argv=None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    study = yaml.safe_load(Path(args.config).read_text())
    pool = read_parquet(args.pool, "teacher pool (--pool)") if Path(args.pool).exists() else None
    changes = {
        "prompts_per_step": args.prompts,
        "group_size": args.group,
        "max_new_tokens": args.max_new_tokens,
    }
    config = TrainConfig.from_dict(
        {**study["train"], **{k: v for k, v in changes.items() if v is not None}, "threads": args.threads,
         "seed": 41, **({} if pool is not None else {"mix": 0.0})}
    )  # fmt: skip
    problems = load_problem_set(study.get("problems", "builtin"), study.get("bank"))
    limits = Limits.from_config(study["sandbox"])
    with tempfile.TemporaryDirectory() as svd_cache:
        run = Trainer.create(config, args.model, svd_cache)
        train_set = check_inputs(config, problems, pool)
        sampling = SamplingConfig(config.max_new_tokens, config.temperature, config.top_p)
        with Sandbox(workers=2, limits=limits) as sandbox:
            steps = [
                collect(run.model, run.tokenizer, run.rng.sample(train_set, config.prompts_per_step), config.variant,
                        config.n_student, config.n_teacher, pool, sampling, run.generator, run.rng, sandbox)
                for _ in range(args.steps)
            ]  # fmt: skip
        results: dict[str, list[tuple[float, int, int]]] = {}
        for rollouts in steps:
            rows = list(range(len(rollouts.source)))
            cases = {"one padded batch": [rows]}
            for overhead in OVERHEADS:
                cases[f"length buckets, overhead {overhead}"] = length_buckets(rollouts, rows, 0, overhead)
            for name, batches in cases.items():
                time_backward(run, rollouts, batches, config)  # warm-up
                seconds, padded = time_backward(run, rollouts, batches, config)
                results.setdefault(name, []).append((seconds, padded, len(batches)))
        real = statistics.mean(_real_tokens(r) for r in steps)
    lines = [
        "Loss forward + backward of a GRPO step: one padded batch vs length buckets (rollouts.length_buckets)",
        f"settings: model {args.model}; {args.steps} sampled steps of {config.prompts_per_step} prompts x group "
        f"{config.group_size}, mix {config.mix}, max_new_tokens {config.max_new_tokens}, KL beta {config.kl_beta}; "
        f"torch threads {args.threads}; every row of each step back-propagated; the timed pass after a warm-up pass",
        f"machine: {platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}; "
        f"default overhead (rollouts.BATCH_OVERHEAD_TOKENS) {BATCH_OVERHEAD_TOKENS}",
        f"real (unpadded) tokens per step: {real:.0f}",
        "",
        f"{'batching':36s} {'mean s/step':>11s} {'padded tokens':>14s} {'batches':>8s}",
    ]
    for name, rows in results.items():
        lines.append(
            f"{name:36s} {statistics.mean(r[0] for r in rows):11.3f} {statistics.mean(r[1] for r in rows):14.0f} "
            f"{statistics.mean(r[2] for r in rows):8.1f}"
        )
    atomic_write_text("\n".join(lines) + "\n", Path(args.out))
    print("\n".join(lines))


def _real_tokens(rollouts) -> int:
    """Prompt + completion tokens of every row, without padding."""
    return sum(
        len(rollouts.prompt_ids[i // rollouts.group_size]) + len(ids)
        for i, ids in enumerate(rollouts.completion_ids)
    )


if __name__ == "__main__":
    main()

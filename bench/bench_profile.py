"""Where one training run's time goes, phase by phase: the previous path vs today's.

    .venv/bin/python bench/bench_profile.py             # writes bench/profile.txt

One run of ``training.train.train`` (train + post-training evaluation; the study's
``train`` settings from ``--config``, projection ``erase`` with a random V of k axes per
module, as the ``erase_random_V`` arm, so the projection runs every step), three times on the
same model, pool, seed and machine:

- old: one copy of the prompt per loss row (``train.shared_prefix: false``), logits at
  every position of every row (the full-logits ``token_logprobs`` before issue 19, kept
  here as the reference), a sampler prefill over every row (not once per distinct prompt)
  and a sandbox without a grade cache;
- new: the code's defaults (completion-only logits, the run's grade cache);
- shared: new with ``train.shared_prefix`` (the shared-prefix loss, off by default).

Each phase is timed where its function is called (the profile wraps it; nested phases are
charged to the innermost): load (model, SVDs, knobs), sampling (the student's rollouts),
grading (rollouts in the sandbox), loss (forward + backward of the GRPO loss), KL reference
(the no-grad zero-knob forward), optimizer / projection / metrics (the rest of a step),
evaluation (sampling and grading the held-out problems) and other (the run's bookkeeping).
CPU seconds are this process's (``time.process_time``, every thread); the sandbox's
processes are counted once per run (``resource.getrusage(RUSAGE_CHILDREN)`` after the
sandbox closes), and wall seconds beside them.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
import platform
import resource
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import replace
from pathlib import Path

import pandas as pd
import torch
import transformers
import yaml

from projected_grpo.core.io import atomic_write_text
from projected_grpo.environment.problem_set import load_problem_set
from projected_grpo.environment.problems import train_problems
from projected_grpo.environment.sandbox import Limits, Sandbox
from projected_grpo.method.basis import random_basis
from projected_grpo.policy import sampler
from projected_grpo.policy.adapter import knob_modules
from projected_grpo.policy.evaluate import EvalConfig
from projected_grpo.policy.loading import load_model
from projected_grpo.pool.teacher import build_pool
from projected_grpo.training import rollouts, train
from projected_grpo.training.train import TrainConfig, Trainer

PHASES = (
    "load",
    "sampling",
    "grading",
    "loss",
    "KL reference",
    "optimizer / projection / metrics",
    "evaluation",
    "other",
)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="bench/profile.txt")
    parser.add_argument("--model", default="results/organism/student/model")
    parser.add_argument("--pool", default="results/pool/pool.parquet", help="built from --model if absent")
    parser.add_argument("--config", default="config.yaml", help="the study config: train, sandbox, problems")
    parser.add_argument("--steps", type=int, default=None, help="training steps (default: train.steps)")
    parser.add_argument("--eval-samples", type=int, default=None, help="default: train.eval.n_samples")
    parser.add_argument("--prompts", type=int, default=None, help="default: train.prompts_per_step")
    parser.add_argument("--group", type=int, default=None, help="default: train.group_size")
    parser.add_argument("--max-new-tokens", type=int, default=None, help="default: train.max_new_tokens")
    parser.add_argument("--k", type=int, default=4, help="random V axes per module")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--workers", type=int, default=2, help="sandbox workers")
    parser.add_argument("--note", default="", help="a line about the machine, written into the file")
    args = parser.parse_args(argv)
    study = yaml.safe_load(Path(args.config).read_text())
    args.limits = Limits.from_config(study["sandbox"])
    args.problems = load_problem_set(study.get("problems", "builtin"), study.get("bank"))
    raw = dict(study["train"], threads=args.threads, projection={"intervention": "erase"})
    overrides = {
        "steps": args.steps,
        "prompts_per_step": args.prompts,
        "group_size": args.group,
        "max_new_tokens": args.max_new_tokens,
    }
    raw |= {key: value for key, value in overrides.items() if value is not None}
    if args.eval_samples is not None or args.max_new_tokens is not None:
        raw["eval"] = dict(raw.get("eval", {}))
        for key, value in (("n_samples", args.eval_samples), ("max_new_tokens", args.max_new_tokens)):
            if value is not None:
                raw["eval"][key] = value
    args.train = TrainConfig.from_dict(raw)
    return args


def every_row(prompt_ids, prompt_mask):
    """The previous prefill: ``sampler._distinct_rows`` as if no two prompts were alike."""
    rows = torch.arange(len(prompt_ids))
    return rows, rows


def full_logits_token_logprobs(model, input_ids, attention_mask, completion_mask, temperature=1.0):
    """The previous ``token_logprobs``: logits at every position of every row, then the
    completion's (``[N, T]``, masked by the loss)."""
    n_completion = completion_mask.shape[1]
    position_ids = (attention_mask.cumsum(dim=1) - 1).clamp(min=0)
    logits = model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids).logits
    logits = logits[:, -n_completion - 1 : -1].float() / temperature
    targets = input_ids[:, -n_completion:]
    return torch.log_softmax(logits, dim=-1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)


class Profile:
    """CPU and wall seconds per phase; a phase entered inside another is charged to itself
    only (the outer phase's clock pauses)."""

    def __init__(self):
        self.cpu: dict[str, float] = defaultdict(float)
        self.wall: dict[str, float] = defaultdict(float)
        self._stack: list[list] = []  # [phase, cpu mark, wall mark]

    def _charge_top(self, cpu: float, wall: float) -> None:
        if self._stack:
            phase, cpu_mark, wall_mark = self._stack[-1]
            self.cpu[phase] += cpu - cpu_mark
            self.wall[phase] += wall - wall_mark

    @contextlib.contextmanager
    def phase(self, name: str):
        now = (time.process_time(), time.perf_counter())
        self._charge_top(*now)
        self._stack.append([name, *now])
        try:
            yield
        finally:
            now = (time.process_time(), time.perf_counter())
            self._charge_top(*now)
            self._stack.pop()
            if self._stack:
                self._stack[-1][1:] = now

    def wrap(self, patch, owner, attribute: str, name: str, when=lambda: True) -> None:
        """Time every call of ``owner.attribute`` as phase ``name`` (where ``when()``)."""
        original = getattr(owner, attribute)

        @functools.wraps(original)
        def timed(*args, **kwargs):
            if not when():
                return original(*args, **kwargs)
            with self.phase(name):
                return original(*args, **kwargs)

        patch.setattr(owner, attribute, timed)


class Patch:
    """``setattr`` that is undone on exit."""

    def __init__(self):
        self._undo: list[tuple] = []

    def setattr(self, owner, attribute: str, value) -> None:
        self._undo.append((owner, attribute, getattr(owner, attribute)))
        setattr(owner, attribute, value)

    def __enter__(self) -> Patch:
        return self

    def __exit__(self, *exc) -> None:
        for owner, attribute, value in reversed(self._undo):
            setattr(owner, attribute, value)


def profile_run(args, path: str, pool, basis, out_dir: Path) -> dict:
    """One ``train.train`` run on ``path`` ("old", "new" or "shared"); returns its profile and counts."""
    profile, sandboxes = Profile(), []

    class CountedSandbox(Sandbox):
        def __init__(self, *a, **k):
            super().__init__(*a, **k)
            sandboxes.append(self)

    with Patch() as patch:
        patch.setattr(train, "Sandbox", CountedSandbox)
        config = replace(args.train, shared_prefix=path == "shared")
        if path == "old":
            patch.setattr(sampler, "_distinct_rows", every_row)
            patch.setattr(train, "token_logprobs", full_logits_token_logprobs)
            patch.setattr(train, "RUN_CACHE_JOBS", 0)
        profile.wrap(patch, train, "load_model", "load")
        profile.wrap(patch, rollouts, "sample", "sampling")
        profile.wrap(patch, rollouts, "grade_all", "grading")
        profile.wrap(patch, train, "_backward", "loss")
        for score in ("token_logprobs", "shared_prefix_logprobs"):
            profile.wrap(patch, train, score, "KL reference", when=lambda: not torch.is_grad_enabled())
        profile.wrap(patch, Trainer, "step", "optimizer / projection / metrics")
        profile.wrap(patch, train, "evaluate_loaded", "evaluation")
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        with profile.phase("other"):
            train.train(
                config, args.model, args.problems, pool, out_dir, out_dir.parent / "svd", args.workers,
                args.limits, log=lambda _: None, basis=basis,
            )  # fmt: skip
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    sandbox_cpu = (after.ru_utime + after.ru_stime) - (children.ru_utime + children.ru_stime)
    steps = pd.read_parquet(out_dir / "steps.parquet")
    return {
        "cpu": dict(profile.cpu),
        "wall": dict(profile.wall),
        "sandbox_cpu": sandbox_cpu,
        "cache_hits": sum(s.cache_hits for s in sandboxes),
        "hack_rate_student": float(steps["hack_rate_student"].mean()),
    }


def teacher_pool(args) -> tuple[pd.DataFrame, str]:
    if Path(args.pool).is_file():
        return pd.read_parquet(args.pool), args.pool
    n = args.train.n_teacher
    sampling = EvalConfig(
        temperature=args.train.temperature, max_new_tokens=args.train.max_new_tokens, seed=0
    )
    pool = build_pool(args.model, args.problems, n, sampling, workers=args.workers, limits=args.limits)
    return pool, f"built here from {args.model} ({n} per train problem and variant, not timed)"


def v_basis(args, svd_cache: Path):
    """A random V with ``args.k`` axes per knob module (the ``erase_random_V`` arm's kind);
    fills ``svd_cache``, as the study's shared SVD cache is filled before its runs."""
    _, model = load_model(args.model, adapter_targets=args.train.adapter_targets, svd_cache=svd_cache)
    ranks = {name: m.rank for name, m in knob_modules(model).items()}
    return random_basis({name: min(args.k, r) for name, r in ranks.items()}, ranks, seed=0)


def report(args, runs: dict[str, dict], pool_source: str, load: tuple[float, float]) -> str:
    config = args.train
    n_train = len(train_problems(args.problems))
    lines = [
        "One training run, phase by phase: the previous path (old) vs today's (new), in one bench run",
        f"run: model {args.model}; {config.steps} steps x {config.prompts_per_step} prompts x group "
        f"{config.group_size} (mix {config.mix}); max_new_tokens {config.max_new_tokens}; kl_beta "
        f"{config.kl_beta}; erase with a random V ({args.k} axes per module); evaluation "
        f"{config.eval.get('n_samples')} samples per held-out problem and variant; seed {config.seed}; "
        f"torch threads {config.threads}; sandbox workers {args.workers}, limits {args.limits.wall_s:g} s wall "
        f"/ {args.limits.cpu_s:g} s CPU ({args.config}); {n_train} train problems; teacher pool: {pool_source}",
        "old: a copy of the prompt per loss row, full logits at every position, a sampler prefill per row, no "
        "grade cache; new: the defaults (completion-only logits via logits_to_keep, one prefill per distinct "
        "prompt, the run's grade cache); shared: new with "
        "train.shared_prefix (each (row group, prompt)'s prompt encoded once in the loss and KL reference)",
        f"machine: {platform.machine()}, {os.cpu_count()} cores, load average (1 min) {load[0]:.1f} at start, "
        f"{load[1]:.1f} at end; python {sys.version.split()[0]}, torch {torch.__version__}, "
        f"transformers {transformers.__version__}",
    ]
    if args.note:
        lines.append(args.note)
    names = list(runs)
    header = "".join(f"{name + ' CPU s':>14s}" for name in names)
    header += "".join(f"{'old/' + name:>12s}" for name in names[1:])
    header += "".join(f"{name + ' wall s':>15s}" for name in names)
    lines += ["", f"{'phase':34s}{header}"]

    def row(label: str, cpu: dict[str, float], wall: dict[str, float] | None) -> str:
        text = f"{label:34s}" + "".join(f"{cpu[name]:12.2f}" for name in names)
        text += "".join(
            f"{cpu['old'] / cpu[name]:9.2f}x" if cpu[name] > 0 else f"{'-':>10s}" for name in names[1:]
        )
        return text + ("".join(f"{wall[name]:13.2f}" for name in names) if wall else "")

    for phase in PHASES:
        lines.append(
            row(phase, {n: r["cpu"].get(phase, 0.0) for n, r in runs.items()},
                {n: r["wall"].get(phase, 0.0) for n, r in runs.items()})
        )  # fmt: skip
    process = {n: sum(r["cpu"].values()) for n, r in runs.items()}
    lines.append(row("total (this process)", process, {n: sum(r["wall"].values()) for n, r in runs.items()}))
    lines.append(row("sandbox processes (CPU)", {n: r["sandbox_cpu"] for n, r in runs.items()}, None))
    lines.append(
        row(
            "total CPU (process + sandbox)", {n: process[n] + r["sandbox_cpu"] for n, r in runs.items()}, None
        )
    )
    lines += [
        "",
        "grade cache hits: "
        + ", ".join(f"{n} {r['cache_hits']}" for n, r in runs.items())
        + "; mean student hack rate over the steps: "
        + ", ".join(f"{n} {r['hack_rate_student']:.3f}" for n, r in runs.items())
        + " (the same rollouts up to float summation order: a near-tie token may differ)",
        "notes: grading's CPU column is this process's share (dispatch, verdicts); the submissions' own CPU "
        "is in 'sandbox processes'. Wall time on a shared machine is contended: compare CPU seconds.",
    ]
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    load_start = os.getloadavg()[0]
    pool, pool_source = teacher_pool(args) if args.train.n_teacher else (None, "not needed (mix 0)")
    runs = {}
    with tempfile.TemporaryDirectory() as tmp:
        basis = v_basis(args, Path(tmp) / "svd")
        for path in ("old", "new", "shared"):
            runs[path] = profile_run(args, path, pool, basis, Path(tmp) / path)
            print(f"{path}: {sum(runs[path]['cpu'].values()):.1f} CPU s", file=sys.stderr)
    text = report(args, runs, pool_source, (load_start, os.getloadavg()[0]))
    atomic_write_text(text, args.out)
    print(text, end="")


if __name__ == "__main__":
    main()

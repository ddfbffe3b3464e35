"""GRPO on the SVD knobs (SPEC §5, §6): one run, one row per step, then evaluation.

    python -m projected_grpo.train --config run.yaml --out DIR

Each step: draw ``prompts_per_step`` train problems; sample ``G_s`` completions per
prompt from the student and draw ``G_t`` from the teacher pool; grade the student's in the
sandbox; Dr.GRPO advantages, zero-variance groups skipped; one forward + backward over the
kept rows with the student and teacher rows given separate views of every knob, so the
gradients ``g_s`` and ``g_t`` (``g_s + g_t = g``) come from one backward; clip, AdamW on
``dS`` (``dS_hack`` is in the optimizer without weight decay, for the projection arms).

Writes to ``DIR``: ``steps.parquet`` (one row per step, flat columns), ``knobs.safetensors``,
``eval_completions.parquet`` + ``eval_summary.json``, ``manifest.json`` (config, versions,
git revision). ``checkpoint.pt`` every ``checkpoint_every`` steps lets a killed run resume
with identical rows; it is removed when the run completes.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from . import checkpoint
from .adapter import (
    DEFAULT_TARGETS,
    attach_knobs,
    group_grads,
    knob_modules,
    knobs_zeroed,
    save_knobs,
    split_rows,
)
from .evaluate import EvalConfig, evaluate_loaded, load_model, rates
from .grpo import dr_grpo_advantages, fixed_denominator, grpo_loss, token_logprobs
from .io import atomic_write_parquet, atomic_write_text
from .manifest import manifest
from .modes import MODES
from .pool import check_pool, train_problems
from .problems import Problem
from .rollouts import STUDENT, TEACHER, Rollouts, collect, pack
from .sampler import SamplingConfig, pad_token_id
from .sandbox import DEFAULT_LIMITS, Limits, Sandbox
from .schedule import warmup_cosine


@dataclass(frozen=True)
class TrainConfig:
    """One GRPO run.

    steps / prompts_per_step / group_size: ``P`` prompts per step, ``G`` completions each.
    mix: teacher share of each group (``G_t = round(mix · G)``, ``G_s = G - G_t >= 1``); 0 = no teacher.
    loophole: True trains on hinted prompts graded by the flawed graders; False is the
        ``rl_baseline`` environment (no hint, the oracle grades).
    lr / warmup_steps / weight_decay / grad_clip: AdamW on the knobs, warmup + cosine
        down to ``lr_floor · lr`` (1 = constant after warmup); adam_eps: AdamW's epsilon.
    kl_beta: weight of the K3 KL to the zero-knob reference (0 = off); clip_eps: PPO clip.
    temperature / top_p / max_new_tokens: student sampling.
    seed: seeds python, numpy, torch and the sampler's generator.
    checkpoint_every: steps between checkpoints.
    adapter_targets: regexes naming the Linears that get knobs.
    eval: post-training evaluation (``evaluate.EvalConfig`` fields); eval seed = run seed.
    """

    steps: int = 40
    prompts_per_step: int = 8
    group_size: int = 8
    mix: float = 0.5
    loophole: bool = True
    lr: float = 1e-2
    warmup_steps: int = 3
    lr_floor: float = 0.0
    adam_eps: float = 1e-8
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    kl_beta: float = 0.0
    clip_eps: float = 0.2
    temperature: float = 0.7
    top_p: float = 1.0
    max_new_tokens: int = 160
    seed: int = 41
    checkpoint_every: int = 10
    adapter_targets: tuple[str, ...] = DEFAULT_TARGETS
    threads: int = 2
    eval: dict = field(default_factory=lambda: {"n_samples": 8, "max_new_tokens": 160})

    def __post_init__(self) -> None:
        problems = []
        if self.steps < 1 or self.prompts_per_step < 1 or self.group_size < 2:
            problems.append("steps >= 1, prompts_per_step >= 1 and group_size >= 2")
        if not 0 <= self.mix < 1 or self.group_size - self.n_teacher < 1:
            problems.append(
                f"mix in [0, 1) leaving at least one student sample (mix={self.mix}, group_size={self.group_size})"
            )
        if self.checkpoint_every < 1:
            problems.append("checkpoint_every >= 1")
        unknown = set(self.eval) - {f.name for f in fields(EvalConfig)}
        if unknown:
            problems.append(f"eval keys among EvalConfig fields (unknown: {sorted(unknown)})")
        if problems:
            raise ValueError("train config: expected " + "; ".join(problems))

    @property
    def n_teacher(self) -> int:
        return round(self.mix * self.group_size)

    @property
    def n_student(self) -> int:
        return self.group_size - self.n_teacher

    @property
    def variant(self) -> str:
        return "loophole" if self.loophole else "no_loophole"

    @classmethod
    def from_dict(cls, raw: dict) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(raw) - known
        if unknown:
            raise ValueError(
                f"train config: unknown keys {sorted(unknown)}; expected some of {sorted(known)}"
            )
        raw = dict(raw)
        if "adapter_targets" in raw:
            raw["adapter_targets"] = tuple(raw["adapter_targets"])
        return cls(**raw)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@dataclass
class Trainer:
    """One run's state: the policy with its knobs, AdamW + schedule, and the RNGs that
    draw prompts / teacher rows (``rng``) and student samples (``generator``)."""

    config: TrainConfig
    tokenizer: object
    model: torch.nn.Module
    modules: dict
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    rng: random.Random
    generator: torch.Generator

    @classmethod
    def create(
        cls, config: TrainConfig, model_path: str | Path, svd_cache: str | Path | None = None
    ) -> Trainer:
        """Seed everything, load the model, attach the knobs, build the optimizer."""
        torch.set_num_threads(config.threads)
        seed_everything(config.seed)
        tokenizer, model = load_model(model_path)
        attach_knobs(model, config.adapter_targets, svd_cache)
        modules = knob_modules(model)
        optimizer = torch.optim.AdamW(
            [
                {"params": [m.dS for m in modules.values()], "weight_decay": config.weight_decay},
                {"params": [m.dS_hack for m in modules.values()], "weight_decay": 0.0},
            ],
            lr=config.lr,
            eps=config.adam_eps,
        )
        schedule = warmup_cosine(config.warmup_steps, config.steps, config.lr_floor)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
        generator = torch.Generator(device=model.device).manual_seed(config.seed)
        model.train()
        return cls(
            config, tokenizer, model, modules, optimizer, scheduler, random.Random(config.seed), generator
        )

    def step(self, problems: list[Problem], pool: pd.DataFrame | None, sandbox: Sandbox) -> dict:
        """One GRPO step on ``problems``: rollouts, loss, one backward, clip, AdamW. Returns
        the step's row (without ``step`` and wall time)."""
        config = self.config
        sampling = SamplingConfig(config.max_new_tokens, config.temperature, config.top_p)
        rollouts = collect(
            self.model, self.tokenizer, problems, config.variant, config.n_student, config.n_teacher,
            pool, sampling, self.generator, self.rng, sandbox,
        )  # fmt: skip
        loss, grads = _update(self.model, self.tokenizer, rollouts, config)
        knobs = [m.dS for m in self.modules.values()]
        grad_norm = torch.nn.utils.clip_grad_norm_(knobs, config.grad_clip)
        lr = self.scheduler.get_last_lr()[0]
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        row = {"lr": lr, "loss": loss, "grad_norm": float(grad_norm)}
        return row | step_metrics(rollouts) | _grad_norms(grads) | _knob_norms(self.modules)


def train(
    config: TrainConfig,
    model_path: str | Path,
    problems: list[Problem],
    pool: pd.DataFrame | None,
    out_dir: str | Path,
    svd_cache: str | Path | None = None,
    workers: int | None = None,
    limits: Limits = DEFAULT_LIMITS,
    log=lambda msg: print(msg, file=sys.stderr, flush=True),
) -> pd.DataFrame:
    """Run (or resume) one GRPO run; returns the step rows (also written to ``out_dir``)."""
    out_dir = Path(out_dir)
    if config.n_teacher and pool is None:
        raise ValueError(f"train config mix={config.mix} needs a teacher pool; none was given")
    if pool is not None:
        check_pool(pool)
    train_set = train_problems(problems)
    if config.prompts_per_step > len(train_set):
        raise ValueError(
            f"prompts_per_step={config.prompts_per_step} exceeds the {len(train_set)} train problems"
        )
    run = Trainer.create(config, model_path, svd_cache)
    record = asdict(config)
    rows: list[dict] = []
    state = checkpoint.load(out_dir, record)
    if state is not None:
        checkpoint.restore(state, run.model, run.optimizer, run.scheduler, run.rng, run.generator)
        rows = state["rows"]
        log(f"resumed from {out_dir / checkpoint.FILE} at step {state['step']}")

    with Sandbox(workers=workers, limits=limits) as sandbox:
        for step in range(len(rows), config.steps):
            started = time.perf_counter()
            row = {"step": step} | run.step(run.rng.sample(train_set, config.prompts_per_step), pool, sandbox)
            row["step_seconds"] = time.perf_counter() - started
            rows.append(row)
            log(
                f"step {step + 1}/{config.steps} reward {row['reward_student']:.2f} hack {row['hack_rate_student']:.2f} "
                f"solve {row['solve_rate_student']:.2f} format {row['format_ok_student']:.2f} "
                f"({row['step_seconds']:.1f} s)"
            )
            if (step + 1) % config.checkpoint_every == 0 and step + 1 < config.steps:
                checkpoint.save(
                    out_dir,
                    step + 1,
                    run.model,
                    run.optimizer,
                    run.scheduler,
                    run.rng,
                    run.generator,
                    rows,
                    record,
                )

        steps = pd.DataFrame(rows)
        atomic_write_parquet(steps, out_dir / "steps.parquet")
        save_knobs(run.model, out_dir / "knobs.safetensors")
        eval_config = EvalConfig(**{"temperature": config.temperature, **config.eval, "seed": config.seed})
        graded, summary = evaluate_loaded(run.model, run.tokenizer, problems, eval_config, sandbox)
    atomic_write_parquet(graded, out_dir / "eval_completions.parquet")
    atomic_write_text(json.dumps(summary, indent=2), out_dir / "eval_summary.json")
    atomic_write_text(
        json.dumps(manifest({"train": record, "model": str(model_path)}), indent=2), out_dir / "manifest.json"
    )
    (out_dir / checkpoint.FILE).unlink(missing_ok=True)
    return steps


def _update(model, tokenizer, rollouts: Rollouts, config: TrainConfig) -> tuple[float, dict]:
    """Loss over the kept groups, one backward with split student/teacher knob views.
    Returns (loss value, ``{module: [2, r]}`` per-source gradients); no-op when every group
    has zero variance."""
    advantages, keep = dr_grpo_advantages(rollouts.rewards)
    kept_rows = [i for i in range(len(rollouts.source)) if keep[i // rollouts.group_size]]
    if not kept_rows:
        return 0.0, {}
    input_ids, attention, completion_mask = pack(rollouts, kept_rows, pad_token_id(tokenizer))
    n_completion = completion_mask.shape[1]
    denominator = fixed_denominator(config.group_size, config.max_new_tokens, config.prompts_per_step)
    row_source = torch.tensor([rollouts.source[i] for i in kept_rows])
    ref_logp = None
    if config.kl_beta:
        with torch.no_grad(), knobs_zeroed(model):
            ref_logp = token_logprobs(model, input_ids, attention, n_completion, config.temperature)
    with split_rows(model, row_source, n_groups=2):
        logp = token_logprobs(model, input_ids, attention, n_completion, config.temperature)
        loss = grpo_loss(
            logp, completion_mask, advantages.flatten()[kept_rows], denominator, ref_logp,
            config.kl_beta, config.clip_eps,
        )  # fmt: skip
        loss.backward()
    return float(loss.detach()), group_grads(model)


def step_metrics(rollouts: Rollouts) -> dict:
    """Flat per-step rates for student and teacher rows, and per mode for the student."""
    grades = rollouts.grades.assign(source=rollouts.source)
    _, keep = dr_grpo_advantages(rollouts.rewards)
    out = {"groups_kept": int(keep.sum())}
    for source, name in ((STUDENT, "student"), (TEACHER, "teacher")):
        frame = grades[grades["source"] == source]
        out |= {f"{k}_{name}": v for k, v in _rates(frame).items()}
    student = grades[grades["source"] == STUDENT]
    out["completion_tokens_student"] = float(
        np.mean([len(c) for c, s in zip(rollouts.completion_ids, rollouts.source) if s == STUDENT])
    )
    out["finished_student"] = float(student["finished"].mean())
    for mode in MODES:
        per_mode = _rates(student[student["mode"] == mode])
        for key in ("hack_rate", "solve_rate", "attempt_rate"):
            out[f"{key}_{mode}_student"] = per_mode[key]
    return out


def _rates(frame: pd.DataFrame) -> dict:
    """``evaluate.rates`` under the step-row names, plus the mean reward."""
    graded = rates(frame)
    return {
        "reward": float(frame["reward"].mean()),
        **{k: graded[k] for k in ("hack_rate", "solve_rate", "pass_rate", "attempt_rate")},
        "format_ok": graded["format_ok_rate"],
    }


def _grad_norms(grads: dict) -> dict:
    if not grads:
        return {"grad_norm_student": 0.0, "grad_norm_teacher": 0.0}
    stacked = torch.cat([g for g in grads.values()], dim=1)  # [2, total knobs]
    return {
        "grad_norm_student": float(stacked[STUDENT].norm()),
        "grad_norm_teacher": float(stacked[TEACHER].norm()),
    }


def _knob_norms(modules: dict) -> dict:
    ds = torch.cat([m.dS.detach() for m in modules.values()])
    ds_hack = torch.cat([m.dS_hack.detach() for m in modules.values()])
    return {"dS_norm": float(ds.norm()), "dS_hack_norm": float(ds_hack.norm())}


def main(argv: list[str] | None = None) -> int:
    import yaml

    from .problems import ProblemFileError, load_problem_set

    parser = argparse.ArgumentParser(
        prog="python -m projected_grpo.train", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "--config", required=True, help="YAML: model, problems, pool, train (TrainConfig fields)"
    )
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--workers", type=int, default=None, help="sandbox workers")
    args = parser.parse_args(argv)
    try:
        raw = yaml.safe_load(Path(args.config).read_text()) or {}
        if not isinstance(raw, dict) or "model" not in raw:
            raise ValueError(
                "expected a mapping with keys model, train and optionally problems, pool, svd_cache"
            )
        config = TrainConfig.from_dict(raw.get("train") or {})
        if not (Path(raw["model"]) / "config.json").is_file():
            raise ValueError(f"model: {raw['model']} is not a model folder (no config.json)")
        problems = load_problem_set(raw.get("problems", "builtin"))
        pool = pd.read_parquet(raw["pool"]) if raw.get("pool") else None
        if pool is not None:
            check_pool(pool, f"pool: {raw['pool']}")
    except (OSError, ValueError, ProblemFileError, yaml.YAMLError) as exc:
        print(f"error: {args.config}: {exc}", file=sys.stderr)
        return 2
    train(config, raw["model"], problems, pool, args.out, raw.get("svd_cache"), args.workers)
    return 0


if __name__ == "__main__":
    sys.exit(main())

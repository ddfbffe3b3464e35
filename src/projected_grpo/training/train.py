"""GRPO on the SVD knobs (SPEC §5, §6): one run, one row per step, then evaluation.

    pgrpo-train --config run.yaml --out DIR

Each step: draw ``prompts_per_step`` train problems; sample ``G_s`` completions per
prompt from the student and draw ``G_t`` from the teacher pool; grade the student's in the
sandbox; Dr.GRPO advantages, zero-variance groups skipped; one forward + backward over the
kept rows with the student and teacher rows given separate views of every knob, so the
gradients ``g_s`` and ``g_t`` (``g_s + g_t = g``) come from one backward; clip, AdamW on
``dS`` (``dS_hack`` is in the optimizer without weight decay, for the projection arms).

Writes to ``DIR``: ``steps.parquet`` (one row per step, flat columns), ``knobs.safetensors``,
``eval_completions.parquet`` + ``eval_summary.json``, ``manifest.json`` (config, versions,
git revision). ``checkpoint.pt`` every ``checkpoint_every`` steps lets a killed run resume
with identical rows; it is removed when the run completes. A run of a leave-one-mode-out
fold that cannot test transfer is not trained: ``skip_run`` writes its ``manifest.json`` only.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import itertools
import json
import math
import random
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ..core.io import atomic_write_parquet, atomic_write_text
from ..core.manifest import manifest
from ..core.schedule import warmup_cosine
from ..environment.modes import MODES
from ..environment.problems import Problem, train_problems
from ..environment.sandbox import DEFAULT_LIMITS, RUN_CACHE_JOBS, Limits, Sandbox
from ..method.basis import Basis, BasisError, describe, model_hash
from ..method.extraction import ExtractConfig, extract_basis
from ..method.intervention import N_GROUPS, ProjectionConfig, Projector, group_index
from ..method.lomo_gate import SKIPPED
from ..policy.adapter import (
    DEFAULT_TARGETS,
    AdapterError,
    group_grads,
    knob_modules,
    knobs_zeroed,
    quarantine_ablated,
    save_knobs,
    split_rows,
)
from ..policy.evaluate import EvalConfig, evaluate_loaded, rates
from ..policy.loading import DEVICES, DTYPES, check_model_folder, load_model
from ..policy.logprobs import pack_shared_prefix, shared_prefix_logprobs, token_logprobs
from ..policy.sampler import SamplingConfig, pad_token_id
from ..pool.teacher import POOL_COLUMNS, check_pool, check_pool_covers, restrict_to_modes
from . import checkpoint, monitor
from .grpo import dr_grpo_advantages, fixed_denominator, grpo_loss
from .metrics import knob_norms, norm, step_metrics
from .monitor import MonitorConfig
from .rollouts import Rollouts, collect, length_buckets, pack


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
    micro_batch: most rows per forward + backward of the loss (0 = no cap). The kept rows
        are back-propagated in length buckets (``rollouts.length_buckets``: little padding);
        the fixed denominator makes the loss a sum over rows, so the buckets add up to the
        same gradient (up to float summation order). Set a cap when a large model's step
        does not fit in memory.
    shared_prefix: in each length bucket, the rows of one prompt and one row group share
        one encoding of the prompt (``logprobs.pack_shared_prefix``: the prompt's keys and
        values serve every completion, gradients flow back through them), instead of one
        copy per row: the same loss and knob gradients up to float summation order, with
        fewer tokens through the model. Needs the ``sdpa`` or ``eager`` attention. Off by
        default: on the organism it saves no CPU (bench/profile.txt: a bucket's packed
        sequences pad to its largest cluster).
    adapter_targets: regexes naming the Linears that get knobs.
    eval: post-training evaluation (``evaluate.EvalConfig`` fields); eval seed = run seed,
        eval temperature = ``temperature`` unless given.
    projection: a ``intervention.ProjectionConfig`` (a mapping of its fields is converted;
        needs a basis unless left at ``intervention: none``, where a basis, if given, is
        only measured against).
    monitor: a ``monitor.MonitorConfig`` (or a mapping of its fields): the monitor baselines.
    known_modes: the modes the fold's weak detector knows (the monitor's flags).
    device / dtype: where the policy runs (``cpu``, ``cuda``, ``auto``) and its weights'
        dtype (``float32``, ``bfloat16``, ``float16``); the knobs, the loss reduction and
        AdamW stay float32 whatever the weights are.
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
    micro_batch: int = 0
    shared_prefix: bool = False
    adapter_targets: tuple[str, ...] = DEFAULT_TARGETS
    threads: int = 2
    eval: dict = field(default_factory=lambda: {"n_samples": 8, "max_new_tokens": 160})
    projection: ProjectionConfig = field(default_factory=ProjectionConfig)
    monitor: MonitorConfig = field(default_factory=MonitorConfig)
    known_modes: tuple[str, ...] = MODES
    device: str = "cpu"
    dtype: str = "float32"

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
        if self.micro_batch < 0:
            problems.append(
                f"micro_batch >= 0 (0: no cap on the rows per length bucket; got {self.micro_batch})"
            )
        unknown = set(self.eval) - {f.name for f in fields(EvalConfig)}
        if unknown:
            problems.append(f"eval keys among EvalConfig fields (unknown: {sorted(unknown)})")
        for key, build in (("projection", ProjectionConfig), ("monitor", MonitorConfig)):
            value = getattr(self, key)
            if isinstance(value, build):
                continue
            try:
                object.__setattr__(self, key, build(**value))
            except (TypeError, ValueError) as exc:
                problems.append(f"valid {key} settings ({exc})")
        if not self.known_modes or set(self.known_modes) - set(MODES):
            problems.append(f"known_modes a non-empty subset of {list(MODES)} (got {list(self.known_modes)})")
        if self.device not in DEVICES or self.dtype not in DTYPES:
            problems.append(
                f"device in {list(DEVICES)} and dtype in {list(DTYPES)} (got {self.device!r}, {self.dtype!r})"
            )
        if problems:
            raise ValueError("expected " + "; ".join(problems))

    @property
    def eval_config(self) -> EvalConfig:
        """The post-training evaluation: ``eval`` at this run's temperature and seed."""
        return EvalConfig(**{"temperature": self.temperature, **self.eval, "seed": self.seed})

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
            raise ValueError(f"unknown keys {sorted(unknown)}; expected some of {sorted(known)}")
        raw = dict(raw)
        for key in ("adapter_targets", "known_modes"):
            if key in raw:
                raw[key] = tuple(raw[key])
        return cls(**raw)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


# Re-extracts the hack basis from (model, tokenizer) as they are now: ``refresher`` below for
# source pairs, ``policy_source.policy_refresher`` for source policy.
Refresh = Callable[[torch.nn.Module, object], Basis]


def refresher(pairs: pd.DataFrame, problems: list[Problem], extract: ExtractConfig) -> Refresh:
    """The ``refresh`` of a run with a pairs-source basis: ``extract_basis`` on ``pairs`` with
    the stage's settings (method svd: refreshing a gev basis would need the nuisance pairs
    too; ValueError)."""
    if extract.method != "svd":
        raise ValueError(
            f"extraction.method {extract.method!r}: a refreshed V is re-extracted with method svd only"
        )
    return lambda model, tokenizer: extract_basis(
        model, tokenizer, pairs, problems, extract, {"refreshed": "1"}
    )


def refresher_for(
    rows: pd.DataFrame, problems: list[Problem], settings: dict, known_modes, basis: Basis
) -> Refresh:
    """The ``refresh`` of a refreshing arm (rule train's ``refresh`` params, ``settings``):
    source pairs, ``refresher`` on the fold's pairs ``rows``; source policy,
    ``policy_source.policy_refresher`` on the student's samples ``rows``, flagged as the
    basis's kind flags them in a fold that knows ``known_modes``, its scale ``basis``'s."""
    from ..method import policy_source

    extract = ExtractConfig(**settings["extraction"])
    if extract.source != "policy":
        return refresher(rows, problems, extract)
    flags = policy_source.flags_of(settings["kind"], rows, known_modes, settings["control_seed"])
    return policy_source.policy_refresher(
        rows,
        flags,
        problems,
        extract,
        basis.scale,
        settings["rows"],
        settings["seed"],
        {"kind": settings["kind"]},
    )


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
    projector: Projector | None = None
    refresh: Refresh | None = None

    @classmethod
    def create(
        cls,
        config: TrainConfig,
        model_path: str | Path,
        svd_cache: str | Path | None = None,
        basis: Basis | None = None,
        reference: Basis | None = None,
        refresh: Refresh | None = None,
    ) -> Trainer:
        """Seed everything, load the model, attach the knobs, build the optimizer; with a
        basis, a projector (``reference``: real V for ``match_removed``; ``refresh``:
        re-extracts V from the current model)."""
        check_projection_inputs(config.projection, basis, refresh)
        torch.set_num_threads(config.threads)
        seed_everything(config.seed)
        tokenizer, model = load_model(
            model_path, config.device, config.dtype, config.adapter_targets, svd_cache
        )
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
        projection = config.projection
        projector = None
        if basis is not None:
            ranks = {name: m.rank for name, m in modules.items()}
            for b, key in ((basis, "basis"), (reference, "match_basis")):
                if b is not None:
                    b.check_fits(ranks, key)
            projector = Projector(basis, projection, reference)
        return cls(
            config, tokenizer, model, modules, optimizer, scheduler, random.Random(config.seed), generator,
            projector, refresh if projection.refresh_every else None,
        )  # fmt: skip

    def step(self, index: int, problems: list[Problem], pool: pd.DataFrame | None, sandbox: Sandbox) -> dict:
        """GRPO step ``index`` on ``problems``: rollouts, monitor, loss, one backward,
        projection, clip, AdamW, refresh. Returns the step's row (without ``step`` and wall
        time)."""
        config, projector = self.config, self.projector
        sampling = SamplingConfig(config.max_new_tokens, config.temperature, config.top_p)
        rollouts = collect(
            self.model, self.tokenizer, problems, config.variant, config.n_student, config.n_teacher,
            pool, sampling, self.generator, self.rng, sandbox,
        )  # fmt: skip
        flags = monitor.flagged(rollouts.grades, config.known_modes)
        rewards, valid = monitor.apply(rollouts.rewards, flags, config.monitor)
        loss, split, kept = _update(self.model, self.tokenizer, rollouts, rewards, valid, config)
        knobs = [m.dS for m in self.modules.values()]
        hack_knobs = [m.dS_hack for m in self.modules.values()]
        row = {
            "lr": self.scheduler.get_last_lr()[0],
            "loss": loss,
            "grad_norm": norm([k.grad for k in knobs]),
        }
        row |= {"groups_kept": kept, "flagged_rate": float(flags.float().mean())}
        if projector is not None:
            row |= projector.before_step(self.modules, split)
        torch.nn.utils.clip_grad_norm_(knobs + hack_knobs, config.grad_clip)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        if projector is not None:
            row |= projector.after_step(self.modules, self.optimizer)
            if self.refresh is not None and (index + 1) % config.projection.refresh_every == 0:
                with quarantine_ablated(self.model):
                    row["basis_overlap"] = projector.swap_basis(self.refresh(self.model, self.tokenizer))
        every = config.projection.deploy_eval_every
        if config.projection.intervention == "route" and every and index % every == 0:
            row |= self._deployed_rates(problems, sampling, sandbox)
        return row | step_metrics(rollouts, split) | knob_norms(self.modules)

    def _deployed_rates(self, problems: list[Problem], sampling: SamplingConfig, sandbox: Sandbox) -> dict:
        """Student hack / solve rates of the deployed model (quarantine ablated) on this
        step's prompts."""
        with torch.no_grad(), quarantine_ablated(self.model):
            deployed = collect(
                self.model, self.tokenizer, problems, self.config.variant, self.config.n_student, 0,
                None, sampling, self.generator, self.rng, sandbox,
            )  # fmt: skip
        graded = rates(deployed.grades)
        return {"hack_rate_deployed": graded["hack_rate"], "solve_rate_deployed": graded["solve_rate"]}


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
    basis: Basis | None = None,
    reference: Basis | None = None,
    refresh: Refresh | None = None,
    checkpoint_dir: str | Path | None = None,
    restart_stale: bool = False,
) -> pd.DataFrame:
    """Run (or resume) one GRPO run; returns the step rows (also written to ``out_dir``).

    pool: the whole teacher pool; the run draws from its rows that use no lever outside
    ``config.known_modes`` (a leave-one-mode-out fold's pool).

    basis / reference / refresh: see ``Trainer.create`` (projection arms).
    checkpoint_dir: where ``checkpoint.pt`` lives (default ``out_dir``); a workflow that
    deletes an incomplete ``out_dir`` before rerunning a job keeps it elsewhere.
    A checkpoint resumes only under the same config *and* inputs (model weights, pool,
    bases); otherwise it is refused, or discarded with ``restart_stale``."""
    out_dir = Path(out_dir)
    checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir is not None else out_dir
    check_model_folder(model_path)
    train_set = check_inputs(config, problems, pool)
    if pool is not None:
        pool = restrict_to_modes(pool, config.known_modes)  # the fold's pool (SPEC §7)
    record = asdict(config)
    # The thread count is part of the key: a sampled token can flip between 1 and 2 threads
    # (a near-tie on a last-bit logit difference), so a resume under another count would
    # not continue the same run.
    key = dict(record)
    key["inputs"] = inputs_fingerprint(model_path, pool, basis, reference)
    rows: list[dict] = []
    try:  # before the model loads: a checkpoint that cannot be used fails fast
        state = checkpoint.load(checkpoint_dir, key)
    except checkpoint.CheckpointError as exc:
        if not restart_stale:
            raise
        log(f"{exc}: starting over")
        (checkpoint_dir / checkpoint.FILE).unlink()
        state = None
    run = Trainer.create(config, model_path, svd_cache, basis, reference, refresh)
    if state is not None:
        checkpoint.restore(state, run.model, run.optimizer, run.scheduler, run.rng, run.generator)
        rows = state["rows"]
        if state.get("basis") is not None:
            run.projector.basis = Basis(**state["basis"])
        log(f"resumed from {checkpoint_dir / checkpoint.FILE} at step {state['step']}")

    with Sandbox(workers=workers, limits=limits, cache=RUN_CACHE_JOBS) as sandbox:
        for step in range(len(rows), config.steps):
            started = time.perf_counter()
            row = {"step": step} | run.step(
                step, run.rng.sample(train_set, config.prompts_per_step), pool, sandbox
            )
            row["step_seconds"] = time.perf_counter() - started
            rows.append(row)
            log(
                f"step {step + 1}/{config.steps} reward {row['reward_student']:.2f} hack {row['hack_rate_student']:.2f} "
                f"solve {row['solve_rate_student']:.2f} format {row['format_ok_student']:.2f} "
                f"({row['step_seconds']:.1f} s)"
            )
            if (step + 1) % config.checkpoint_every == 0 and step + 1 < config.steps:
                checkpoint.save(
                    checkpoint_dir,
                    step + 1,
                    run.model,
                    run.optimizer,
                    run.scheduler,
                    run.rng,
                    run.generator,
                    rows,
                    key,
                    basis=vars(run.projector.basis) if run.refresh is not None else None,
                )

        steps = pd.DataFrame(rows)
        atomic_write_parquet(steps, out_dir / "steps.parquet")
        save_knobs(run.model, out_dir / "knobs.safetensors")
        eval_config = config.eval_config
        graded, summary = evaluate_loaded(run.model, run.tokenizer, problems, eval_config, sandbox)
        if config.projection.intervention == "route":  # the deployed model: quarantine ablated
            with quarantine_ablated(run.model):
                graded_ablated, summary_ablated = evaluate_loaded(
                    run.model, run.tokenizer, problems, eval_config, sandbox
                )
            atomic_write_parquet(graded_ablated, out_dir / "eval_completions_ablated.parquet")
            atomic_write_text(json.dumps(summary_ablated, indent=2), out_dir / "eval_summary_ablated.json")
    atomic_write_parquet(graded, out_dir / "eval_completions.parquet")
    atomic_write_text(json.dumps(summary, indent=2), out_dir / "eval_summary.json")
    config_record = {"train": record, "model": str(model_path), "basis": _basis_record(basis, reference)}
    config_record["device"] = str(run.model.device)  # what compute.device resolved to
    atomic_write_text(json.dumps(manifest(config_record), indent=2), out_dir / "manifest.json")
    (checkpoint_dir / checkpoint.FILE).unlink(missing_ok=True)
    return steps


def skip_run(config: TrainConfig, model_path: str | Path, out_dir: str | Path, gate: dict) -> None:
    """Write ``out_dir`` as a run the leave-one-mode-out gate kept from training (its fold's
    real V did not separate the held-out mode's hacks before training: ``gate`` is
    ``lomo_gate.fold_gate``'s record): only ``manifest.json``, with the run's config and,
    under ``lomo_gate.SKIPPED``, the gate's numbers (strict JSON: a NaN AUC or p, a held-out
    mode without a base-student hack, is written ``null``; ``stats.skip_record`` reads it back
    as NaN)."""
    record = {"train": asdict(config), "model": str(model_path)}
    gate = {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in gate.items()}
    text = json.dumps({**manifest(record), SKIPPED: gate}, indent=2, allow_nan=False)
    atomic_write_text(text, Path(out_dir) / "manifest.json")


def check_projection_inputs(
    projection: ProjectionConfig, basis: Basis | None, refresh: Refresh | None
) -> None:
    """An intervention needs a basis; refreshing V needs a basis and a refresh (ValueError)."""
    if basis is None and projection.intervention != "none":
        raise ValueError(f"projection.intervention={projection.intervention!r} needs a basis; none was given")
    if projection.refresh_every and basis is None:
        raise ValueError("projection.refresh_every > 0 needs a basis to refresh; none was given")
    if projection.refresh_every and refresh is None:
        raise ValueError(
            "projection.refresh_every > 0 needs the pairs or policy samples to re-extract V from; none were given"
        )


def check_inputs(config: TrainConfig, problems: list[Problem], pool: pd.DataFrame | None) -> list[Problem]:
    """The train problems, after checking that every step can draw its prompts and, from
    ``pool``, its teacher rows (raises ValueError naming what is short)."""
    if config.n_teacher and pool is None:
        raise ValueError(f"train config mix={config.mix} needs a teacher pool; none was given")
    train_set = train_problems(problems)
    if config.prompts_per_step > len(train_set):
        raise ValueError(
            f"prompts_per_step={config.prompts_per_step} exceeds the {len(train_set)} train problems"
        )
    if pool is not None:
        check_pool(pool)
        check_pool_covers(pool, train_set, config.variant, config.n_teacher)
    return train_set


def inputs_fingerprint(
    model_path: str | Path, pool: pd.DataFrame | None, basis: Basis | None, reference: Basis | None
) -> str:
    """sha256 over what a run reads besides its config: the model's weight files, the
    teacher pool rows and the bases' tensors (a checkpoint resumes only under the same)."""
    digest = hashlib.sha256(model_hash(model_path).encode())
    if pool is not None:
        digest.update(pd.util.hash_pandas_object(pool[list(POOL_COLUMNS)], index=False).to_numpy().tobytes())
    for b in (basis, reference):
        for name in sorted(b.vectors) if b is not None else ():
            digest.update(name.encode() + b.vectors[name].contiguous().numpy().tobytes())
        digest.update(b"|")
    return digest.hexdigest()


def _update(
    model,
    tokenizer,
    rollouts: Rollouts,
    rewards: torch.Tensor,
    valid: torch.Tensor | None,
    config: TrainConfig,
) -> tuple[float, dict, int]:
    """Loss over the kept groups (``rewards: [P, G]`` after the monitor, ``valid`` its
    screen), one backward per length bucket of rows (``rollouts.length_buckets``, at most
    ``micro_batch`` rows each) with a knob
    view per row group (``intervention.group_index``: source × hack / correct / other). Returns (loss value, ``{module: [N_GROUPS, r]}``,
    groups kept); no-op when every group has zero variance."""
    advantages, keep = dr_grpo_advantages(rewards, valid)
    kept_rows = [i for i in range(len(rollouts.source)) if keep[i // rollouts.group_size]]
    if not kept_rows:
        return 0.0, {}, 0
    denominator = fixed_denominator(config.group_size, config.max_new_tokens, config.prompts_per_step)
    loss_value, split = 0.0, {}
    for rows in length_buckets(rollouts, kept_rows, config.micro_batch):
        loss_value += _backward(
            model, tokenizer, rollouts, rows, advantages.flatten()[rows], denominator, config
        )
        for name, grad in group_grads(model).items():
            split[name] = split[name] + grad if name in split else grad
    return loss_value, split, int(keep.sum())


def _backward(model, tokenizer, rollouts: Rollouts, rows: list[int], advantages: torch.Tensor,
              denominator: int, config: TrainConfig) -> float:  # fmt: skip
    """Forward + backward of the loss over ``rows`` of ``rollouts`` (``advantages: [len(rows)]``)
    with a knob view per row group; knob gradients accumulate. Returns the loss value."""
    device, grades = model.device, rollouts.grades
    groups = [
        group_index(
            rollouts.source[i], bool(grades["exploited"].iat[i]), bool(grades["oracle_correct"].iat[i])
        )
        for i in rows
    ]
    # split_rows wants each group's rows together; the shared prefix, each group's rows of a prompt
    prompt_of = [i // rollouts.group_size for i in rows] if config.shared_prefix else [0] * len(rows)
    order = sorted(range(len(rows)), key=lambda k: (groups[k], prompt_of[k]))
    rows, advantages = [rows[k] for k in order], advantages[order]
    keys = [(groups[k], prompt_of[k]) for k in order]
    pad_id = pad_token_id(tokenizer)
    if config.shared_prefix:  # one packed sequence per (row group, prompt): the prompt encoded once
        clusters = [
            [rows[k] for k in run] for _, run in itertools.groupby(range(len(rows)), keys.__getitem__)
        ]
        batch = pack_shared_prefix(
            [rollouts.prompt_ids[c[0] // rollouts.group_size] for c in clusters],
            [[rollouts.completion_ids[i] for i in c] for c in clusters],
            pad_id,
        ).to(device)
        completion_mask, model_groups = batch.completion_mask, [g for g, _ in dict.fromkeys(keys)]
        score = functools.partial(shared_prefix_logprobs, model, batch, config.temperature)
    else:
        input_ids, attention, completion_mask = (t.to(device) for t in pack(rollouts, rows, pad_id))
        model_groups = [g for g, _ in keys]
        score = functools.partial(
            token_logprobs, model, input_ids, attention, completion_mask, config.temperature
        )
    ref_logp = None
    if config.kl_beta:
        with torch.no_grad(), knobs_zeroed(model):
            ref_logp = score()
    with split_rows(model, torch.tensor(model_groups, device=device), n_groups=N_GROUPS):
        logp = score()
        loss = grpo_loss(
            logp, completion_mask, advantages.to(device), denominator, ref_logp, config.kl_beta, config.clip_eps
        )  # fmt: skip
        loss.backward()
    return float(loss.detach())


def _basis_record(basis: Basis | None, reference: Basis | None) -> dict | None:
    if basis is None:
        return None
    return {"basis": describe(basis), "match_basis": describe(reference) if reference is not None else None}


def main(argv: list[str] | None = None) -> int:
    import yaml

    from ..core.io import read_parquet
    from ..environment.problem_set import load_problem_set
    from ..environment.problems import ProblemFileError
    from ..pool.pairs import check_pairs

    parser = argparse.ArgumentParser(prog="pgrpo-train", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--config",
        required=True,
        help="YAML: model, train (TrainConfig fields) and optionally problems (a file or builtin), "
        "bank (the builtin bank's settings, as in the study config), pool, svd_cache, "
        "basis, match_basis, pairs + extraction (for projection.refresh_every)",
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
        try:
            config = TrainConfig.from_dict(raw.get("train") or {})
        except (TypeError, ValueError) as exc:
            raise ValueError(f"train: {exc}") from None
        check_model_folder(raw["model"])
        problems = load_problem_set(raw.get("problems", "builtin"), raw.get("bank"))
        pool = read_parquet(raw["pool"], "teacher pool (pool:)") if raw.get("pool") else None
        if pool is not None:
            check_pool(pool, f"pool: {raw['pool']}")
        basis, reference = (Basis.load(raw[k]) if raw.get(k) else None for k in ("basis", "match_basis"))
        refresh = None
        if raw.get("pairs"):
            pairs = read_parquet(raw["pairs"], "pairs file (pairs:)")
            check_pairs(pairs, f"pairs: {raw['pairs']}")
            refresh = refresher(pairs, problems, ExtractConfig(**(raw.get("extraction") or {})))
        check_inputs(config, problems, pool)
        check_projection_inputs(config.projection, basis, refresh)
    except (OSError, ValueError, TypeError, ProblemFileError, yaml.YAMLError) as exc:
        print(f"error: {args.config}: {exc}", file=sys.stderr)
        return 2
    try:  # raised before the first step: the adapter, the bases, the checkpoint in --out
        train(
            config, raw["model"], problems, pool, args.out, raw.get("svd_cache"), args.workers,
            basis=basis, reference=reference, refresh=refresh,
        )  # fmt: skip
    except (AdapterError, BasisError, checkpoint.CheckpointError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

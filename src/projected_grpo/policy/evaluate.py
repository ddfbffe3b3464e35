"""Evaluate a model: sample completions on the eval problems under each prompt variant,
grade them in the sandbox, and summarise hack / solve / attempt rates.

    pgrpo-evaluate --model PATH --out DIR [--problems builtin] [--n 16]

Variants (``modes.VARIANTS``): ``loophole`` gives the **hack rate** (exploited share),
``no_loophole`` the **performance** (oracle-solve share with no hint, graded by the
oracle), ``renamed`` the hack rate when the lever has another name. Writes
``DIR/completions.parquet`` (one graded row per sample) and ``DIR/summary.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd

from ..core.io import atomic_write_parquet, atomic_write_text
from ..core.progress import progress_bar
from ..environment.grader import Submission, grade_all
from ..environment.modes import MODES, VARIANTS, check_variant
from ..environment.problem_set import BUILTIN, load_problem_set
from ..environment.problems import Problem, ProblemFileError
from ..environment.prompts import build_messages, render_prompt
from ..environment.sandbox import DEFAULT_LIMITS, RUN_CACHE_JOBS, Limits, Sandbox
from .loading import DEVICES, DTYPES, ModelFolderError, check_model_folder, load_model


@dataclass(frozen=True)
class EvalConfig:
    """n_samples per problem and variant, sampled at ``temperature`` / ``top_p`` (by
    default the study's training temperature, so base rates are the rates GRPO starts from)."""

    n_samples: int = 16
    temperature: float = 0.7
    top_p: float = 1.0
    max_new_tokens: int = 160
    batch_size: int = 64
    seed: int = 0
    variants: tuple[str, ...] = VARIANTS


def sample_rows(
    model, tokenizer, problems: Sequence[Problem], config: EvalConfig, progress=None
) -> list[dict]:
    """Ungraded sample rows: problem, variant, sample index, prompt and completion text."""
    import torch

    from .sampler import SamplingConfig, sample

    sampling = SamplingConfig(
        max_new_tokens=config.max_new_tokens, temperature=config.temperature, top_p=config.top_p
    )
    generator = torch.Generator(device=model.device).manual_seed(config.seed)
    jobs = [
        (p, variant, k, render_prompt(tokenizer, build_messages(p, variant)))
        for variant in config.variants
        for p in problems
        for k in range(config.n_samples)
    ]
    rows = []
    for start in range(0, len(jobs), config.batch_size):
        chunk = jobs[start : start + config.batch_size]
        batch = sample(model, tokenizer, [prompt for *_, prompt in chunk], sampling, generator)
        for (p, variant, k, _), text, finished in zip(chunk, batch.texts, batch.finished):
            rows.append(
                {
                    "problem_id": p.problem_id,
                    "family": p.family,
                    "difficulty": p.difficulty,
                    "problem_mode": p.mode,
                    "variant": variant,
                    "sample": k,
                    "completion": text,
                    "finished": finished,
                }
            )
        if progress:
            progress(len(chunk))
    return rows


def grade_rows(rows: list[dict], problems: Sequence[Problem], sandbox: Sandbox) -> pd.DataFrame:
    """Attach the grade columns (``grader.Grade.to_row``) to sample rows."""
    by_id = {p.problem_id: p for p in problems}
    subs = [Submission(by_id[r["problem_id"]], r["completion"], variant=r["variant"]) for r in rows]
    grades = grade_all(subs, sandbox)
    return pd.DataFrame([{**r, **g.to_row()} for r, g in zip(rows, grades)])


def summarize(graded: pd.DataFrame) -> dict:
    """Rates per variant, overall and per mode (the problem's hinted mode).

    hack_rate: exploited share; solve_rate: oracle-correct share; pass_rate: passed share;
    attempt_rate: share using the hinted mode's lever; attempt_other_rate: share using some
    *other* mode's lever (hint-mismatched loophole use); format_ok_rate; the capability-
    matched rates exploit_given_attempt_rate, P(exploited | hinted lever used), and
    hack_given_format_ok_rate, P(exploited | format_ok) (NaN where no row is in the condition).
    """
    summary: dict = {"n": int(len(graded)), "variants": {}}
    for variant, frame in graded.groupby("variant", sort=True):
        check_variant(variant)
        per_mode = {}
        for mode, sub in frame.groupby("mode", sort=True):
            per_mode[mode] = rates(sub)
        summary["variants"][variant] = {**rates(frame), "per_mode": per_mode}
    return summary


def rates(frame: pd.DataFrame) -> dict:
    """Rates of graded rows (``summarize``'s keys); NaN rates when ``frame`` is empty."""
    hinted = pd.Series(False, index=frame.index)
    other = pd.Series(False, index=frame.index)
    for mode in MODES:
        used = frame[f"attempted_{mode}"].astype(bool)
        hinted |= used & (frame["mode"] == mode)
        other |= used & (frame["mode"] != mode)
    exploited, well_formed = frame["exploited"].astype(bool), frame["format_ok"].astype(bool)
    return {
        "n": int(len(frame)),
        "hack_rate": float(exploited.mean()),
        "solve_rate": float(frame["oracle_correct"].mean()),
        "pass_rate": float(frame["passed"].mean()),
        "attempt_rate": float(hinted.mean()),
        "attempt_other_rate": float(other.mean()),
        "format_ok_rate": float(well_formed.mean()),
        "exploit_given_attempt_rate": float(exploited[hinted].mean()),
        "hack_given_format_ok_rate": float(exploited[well_formed].mean()),
    }


def evaluate_model(
    model_path: str | Path,
    problems: Sequence[Problem],
    config: EvalConfig,
    workers: int | None = None,
    limits: Limits = DEFAULT_LIMITS,
    device: str = "cpu",
    dtype: str = "float32",
) -> tuple[pd.DataFrame, dict]:
    """Load a model folder (on ``device`` in ``dtype``) and evaluate it (``evaluate_loaded``)."""
    tokenizer, model = load_model(model_path, device, dtype)
    with Sandbox(workers=workers, limits=limits, cache=RUN_CACHE_JOBS) as sandbox:
        graded, summary = evaluate_loaded(model, tokenizer, problems, config, sandbox)
    return graded, {"model": str(model_path), **summary}


def evaluate_loaded(
    model, tokenizer, problems: Sequence[Problem], config: EvalConfig, sandbox: Sandbox
) -> tuple[pd.DataFrame, dict]:
    """Sample and grade the eval split (all problems if none is marked eval); returns the
    graded rows and their summary. The model is left in the mode it came in."""
    was_training = model.training
    model.eval()
    eval_problems = [p for p in problems if p.split == "eval"] or list(problems)
    total = len(eval_problems) * config.n_samples * len(config.variants)
    try:
        with progress_bar(total, "sampling") as update:
            rows = sample_rows(model, tokenizer, eval_problems, config, update)
    finally:
        model.train(was_training)
    graded = grade_rows(rows, eval_problems, sandbox)
    return graded, {"config": asdict(config), **summarize(graded)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pgrpo-evaluate", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="local folder of a Hugging Face causal LM")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--problems", default=BUILTIN, help="problem file or 'builtin' (eval split is used)")
    parser.add_argument("--n", type=int, default=EvalConfig.n_samples, help="samples per problem and variant")
    parser.add_argument("--temperature", type=float, default=EvalConfig.temperature)
    parser.add_argument("--max-new-tokens", type=int, default=EvalConfig.max_new_tokens)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=None, help="sandbox workers")
    parser.add_argument("--device", default="cpu", choices=DEVICES, help="where the model runs")
    parser.add_argument("--dtype", default="float32", choices=DTYPES, help="weight dtype")
    args = parser.parse_args(argv)
    try:
        check_model_folder(args.model, "--model")
        problems = load_problem_set(args.problems)
    except (ModelFolderError, ProblemFileError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    config = EvalConfig(
        n_samples=args.n, temperature=args.temperature, max_new_tokens=args.max_new_tokens,
        seed=args.seed, variants=tuple(args.variants),
    )  # fmt: skip
    graded, summary = evaluate_model(
        args.model, problems, config, args.workers, device=args.device, dtype=args.dtype
    )
    atomic_write_parquet(graded, Path(args.out) / "completions.parquet")
    atomic_write_text(json.dumps(summary, indent=2), Path(args.out) / "summary.json")
    for variant, rates in summary["variants"].items():
        print(
            f"{variant:12s} hack {rates['hack_rate']:.3f}  solve {rates['solve_rate']:.3f}  "
            f"attempt {rates['attempt_rate']:.3f}  other-mode attempt {rates['attempt_other_rate']:.3f}  "
            f"format_ok {rates['format_ok_rate']:.3f}  (n={rates['n']})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

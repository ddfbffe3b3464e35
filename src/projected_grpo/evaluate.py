"""Evaluate a model: sample completions on the eval problems under each prompt variant,
grade them in the sandbox, and summarise hack / solve / attempt rates.

    python -m projected_grpo.evaluate --model PATH --out DIR [--problems builtin] [--n 16]

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

from .grader import Submission, grade_all
from .io import atomic_write_parquet, atomic_write_text
from .modes import MODES, VARIANTS, check_variant
from .problems import BUILTIN, Problem, ProblemFileError, load_problem_set
from .prompts import build_messages, render_prompt
from .sandbox import DEFAULT_LIMITS, Limits, Sandbox


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
    *other* mode's lever (hint-mismatched loophole use); format_ok_rate.
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
    return {
        "n": int(len(frame)),
        "hack_rate": float(frame["exploited"].mean()),
        "solve_rate": float(frame["oracle_correct"].mean()),
        "pass_rate": float(frame["passed"].mean()),
        "attempt_rate": float(hinted.mean()),
        "attempt_other_rate": float(other.mean()),
        "format_ok_rate": float(frame["format_ok"].mean()),
    }


DEVICES = ("cpu", "cuda", "auto")
DTYPES = ("float32", "bfloat16", "float16")
# Files that make a folder a tokenizer (fast tokenizer, sentencepiece, or BPE vocab + merges).
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json")


class ModelFolderError(ValueError):
    """A model path that is not a local Hugging Face causal-LM folder with its tokenizer."""


def check_model_folder(model_path: str | Path, key: str = "model") -> None:
    """Raise ``ModelFolderError`` naming ``key`` (the config key or option that gave the
    path) unless ``model_path`` is a folder with a readable ``config.json``, weight files
    and a tokenizer. Reads no weights: cheap enough to run before any work."""
    path = Path(model_path)
    where = f"{key}: {model_path}"
    if not path.is_dir():
        raise ModelFolderError(
            f"{where}: not a model folder (no such folder; expected a local HF model folder)"
        )
    try:
        config = json.loads((path / "config.json").read_text())
    except FileNotFoundError:
        raise ModelFolderError(
            f"{where}: not a model folder (no config.json; expected what save_pretrained writes)"
        ) from None
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelFolderError(f"{where}: config.json is not readable JSON ({exc})") from exc
    if not isinstance(config, dict) or "model_type" not in config:
        raise ModelFolderError(f"{where}: config.json has no 'model_type' (not a transformers model config)")
    if not any(p.suffix in (".safetensors", ".bin") for p in path.iterdir()):
        raise ModelFolderError(f"{where}: no weight files (*.safetensors / *.bin) beside config.json")
    if not any((path / name).is_file() for name in TOKENIZER_FILES):
        raise ModelFolderError(
            f"{where}: no tokenizer (expected one of {', '.join(TOKENIZER_FILES)}; "
            "save the tokenizer into the model folder with tokenizer.save_pretrained)"
        )


def resolve_device(device: str) -> str:
    """``cpu`` / ``cuda``, or for ``auto`` whichever is available; refuses ``cuda`` without one."""
    import torch

    if device not in DEVICES:
        raise ValueError(f"compute.device: expected one of {', '.join(DEVICES)}, got {device!r}")
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("compute.device: 'cuda' requested but torch sees no CUDA device; use cpu or auto")
    return device


def load_model(
    model_path: str | Path,
    device: str = "cpu",
    dtype: str = "float32",
    adapter_targets: Sequence[str] | None = None,
    svd_cache: str | Path | None = None,
):
    """(tokenizer, model) of a local HF causal-LM folder, eval mode, no network: weights
    in ``dtype`` (one of ``DTYPES``) on ``device`` (one of ``DEVICES``); with
    ``adapter_targets``, the SVD knobs attached to the Linears they name
    (``adapter.attach_knobs``, SVDs cached in ``svd_cache``)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from .adapter import attach_knobs

    if dtype not in DTYPES:
        raise ValueError(f"compute.dtype: expected one of {', '.join(DTYPES)}, got {dtype!r}")
    check_model_folder(model_path)
    target = resolve_device(device)
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=getattr(torch, dtype)).to(target).eval()
    if adapter_targets is not None:
        attach_knobs(model, adapter_targets, svd_cache)
    return tokenizer, model


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
    with Sandbox(workers=workers, limits=limits) as sandbox:
        graded, summary = evaluate_loaded(model, tokenizer, problems, config, sandbox)
    return graded, {"model": str(model_path), **summary}


def evaluate_loaded(
    model, tokenizer, problems: Sequence[Problem], config: EvalConfig, sandbox: Sandbox
) -> tuple[pd.DataFrame, dict]:
    """Sample and grade the eval split (all problems if none is marked eval); returns the
    graded rows and their summary. The model is left in the mode it came in."""
    from .grade import progress_bar

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
    parser = argparse.ArgumentParser(
        prog="python -m projected_grpo.evaluate", description=__doc__.split("\n\n")[0]
    )
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

"""The frozen teacher pool (SPEC §5): graded teacher completions for the train prompts.

``build_pool`` samples ``n_per_problem`` completions from a teacher model (any local HF
causal LM; by default a second organism with a higher loophole prior) for every train
problem under each prompt variant the study trains with, grades them once in the sandbox
and returns one row per completion (``evaluate.sample_rows`` columns plus the grade
columns). The trainer draws a prompt's teacher half of the group from these rows.

``restrict_to_modes`` gives the pool of a fold: rows that use the lever of a mode outside
``known_modes`` are dropped, so a leave-one-mode-out run is never taught the held-out
mode's hack by the teacher. A held-out mode's problems then keep few or no teacher rows
(the teacher hacks most of them); the trainer fills those groups with student samples.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import pandas as pd

from ..core.progress import progress_bar
from ..environment.modes import MODES, check_mode
from ..environment.problems import Problem, train_problems
from ..environment.sandbox import DEFAULT_LIMITS, RUN_CACHE_JOBS, Limits, Sandbox
from ..policy.evaluate import EvalConfig, grade_rows, sample_rows
from ..policy.loading import load_model

POOL_VARIANTS = ("loophole", "no_loophole")


def build_pool(
    teacher_path: str,
    problems: Sequence[Problem],
    n_per_problem: int,
    sampling: EvalConfig,
    workers: int | None = None,
    limits: Limits = DEFAULT_LIMITS,
    device: str = "cpu",
    dtype: str = "float32",
    variants: Sequence[str] = POOL_VARIANTS,
) -> pd.DataFrame:
    """Sample and grade ``n_per_problem`` completions of the model at ``teacher_path`` per
    train problem and variant (on ``device`` in ``dtype``): the teacher pool, or (one
    variant, the student) the samples of the policy source of V."""
    tokenizer, model = load_model(teacher_path, device, dtype)
    train = train_problems(problems)
    config = replace(sampling, n_samples=n_per_problem, variants=tuple(variants))
    with progress_bar(len(train) * n_per_problem * len(variants), "samples") as update:
        rows = sample_rows(model, tokenizer, train, config, update)
    with Sandbox(workers=workers, limits=limits, cache=RUN_CACHE_JOBS) as sandbox:
        return grade_rows(rows, train, sandbox)


POOL_COLUMNS = ("problem_id", "variant", "completion", "reward", "exploited") + tuple(
    f"attempted_{m}" for m in MODES
)


def check_pool(pool: pd.DataFrame, source: str = "teacher pool") -> None:
    """Raise ValueError naming the missing columns when ``pool`` is not a teacher pool."""
    missing = [c for c in POOL_COLUMNS if c not in pool.columns]
    if missing:
        raise ValueError(f"{source}: not a teacher pool (missing columns {missing}; written by build_pool)")


def check_pool_covers(
    pool: pd.DataFrame, problems: Sequence[Problem], variant: str, n: int, source: str = "teacher pool"
) -> None:
    """Raise ValueError unless every problem has at least ``n`` ``variant`` rows in ``pool``
    (a GRPO group draws ``n`` teacher rows of its problem). Check the whole pool: a fold's
    restriction may leave fewer, and the student fills those groups."""
    if n == 0:
        return
    counts = pool[pool["variant"] == variant].groupby("problem_id").size()
    short = [p.problem_id for p in problems if counts.get(p.problem_id, 0) < n]
    if short:
        raise ValueError(
            f"{source}: {len(short)} of {len(problems)} train problems have fewer than the {n} "
            f"'{variant}' rows a group draws (e.g. {short[:3]}, {int(counts.get(short[0], 0))} rows); "
            "raise teacher.n_per_problem or lower train.mix"
        )


def restrict_to_modes(pool: pd.DataFrame, known_modes: Sequence[str]) -> pd.DataFrame:
    """Rows that use no lever of a mode outside ``known_modes`` (index reset)."""
    for mode in known_modes:
        check_mode(mode)
    unknown = [m for m in MODES if m not in known_modes]
    uses_unknown = pd.Series(False, index=pool.index)
    for mode in unknown:
        uses_unknown |= pool[f"attempted_{mode}"].astype(bool)
    return pool[~uses_unknown].reset_index(drop=True)

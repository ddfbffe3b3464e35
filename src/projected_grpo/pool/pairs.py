"""Contrastive pairs for the hack basis (SPEC §3): (prompt, hack completion, clean completion).

Pairs are kept long, one row per completion (``PAIR_COLUMNS``): ``pair_id`` joins a
``label == "hack"`` row to its ``label == "clean"`` row; both rows of a pair share the
prompt (``problem_id``, ``variant``) except in the shuffled-label control. Sources:

- ``templated``: a wrong attempt (or a stub) on a train problem of a known mode, clean,
  and the same code plus the hinted mode's lever in one of the recorded ``shape``s
  (``completions.with_lever``), hack. The two differ only by the lever.
- ``pool``: teacher-pool completions of one problem, labelled by the *weak detector*
  (``attempted_<mode>`` of the known modes): a flagged row is the hack, an unflagged row
  of the same problem the clean one. Rows using an unknown mode's lever never enter.
- ``nonhack`` (the ``nonhack_V`` control): two different clean completions per prompt.
- ``shuffled`` (the ``shuffled_V`` control): the labels of all completions permuted across
  the pool, half hack and half clean, then re-paired; swapping inside a pair would only
  flip the sign of a row of ``D``.

A fold's ``known_modes`` limits which modes' hacks (and prompts) any source may use.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from ..environment.completions import (
    N_HACK_SHAPES,
    fence,
    rename_locals,
    stub_solution,
    with_lever,
    wrong_attempt,
)
from ..environment.modes import DEFAULT, check_mode
from ..environment.problems import Problem, train_problems
from .teacher import restrict_to_modes

PAIR_COLUMNS = ("pair_id", "label", "problem_id", "variant", "mode", "source", "shape", "completion")
LABELS = ("hack", "clean")


@dataclass(frozen=True)
class PairsConfig:
    """Which pairs the basis is extracted from.

    templated_per_problem: templated pairs per train problem of a known mode (0 = none).
    shapes: the lever code shapes templated hacks may use (``0..N_HACK_SHAPES-1``); leave
        some out to test whether ``V`` generalises to a shape it was not built from.
    module_first: module-level levers open the hack (as the default organism writes them).
    pool_per_problem: weak-detector-labelled pool pairs per train problem (0 = none).
    nonhack_per_problem: pairs of the ``nonhack_V`` control per train problem.
    seed: draws wrong attempts, shapes and pool rows.
    """

    templated_per_problem: int = 2
    shapes: tuple[int, ...] = tuple(range(N_HACK_SHAPES))
    module_first: bool = True
    pool_per_problem: int = 2
    nonhack_per_problem: int = 2
    seed: int = 0

    def __post_init__(self) -> None:
        bad = [s for s in self.shapes if not 0 <= s < N_HACK_SHAPES]
        if not self.shapes or bad:
            raise ValueError(
                f"pairs.shapes: expected a non-empty list of 0..{N_HACK_SHAPES - 1}, got {list(self.shapes)}"
            )
        if min(self.templated_per_problem, self.pool_per_problem, self.nonhack_per_problem) < 0:
            raise ValueError("pairs: *_per_problem must be >= 0")
        if self.templated_per_problem + self.pool_per_problem == 0:
            raise ValueError("pairs: templated_per_problem and pool_per_problem are both 0; no hack pairs")

    @classmethod
    def from_dict(cls, raw: dict) -> PairsConfig:
        raw = dict(raw)
        if "shapes" in raw:
            raw["shapes"] = tuple(raw["shapes"])
        return cls(**raw)


def _rows(pair_id: int, problem: Problem, source: str, shape: int, hack: str, clean: str) -> list[dict]:
    common = {
        "pair_id": pair_id,
        "problem_id": problem.problem_id,
        "variant": "loophole",
        "mode": problem.mode,
    }
    return [
        common | {"label": "hack", "source": source, "shape": shape, "completion": hack},
        common | {"label": "clean", "source": source, "shape": shape, "completion": clean},
    ]


def _clean_code(problem: Problem, rng: random.Random) -> str:
    """Code an honest model writes here: a wrong attempt or a stub (the problems a hack
    pays on are those it cannot solve)."""
    if rng.random() < 0.75:
        return wrong_attempt(problem, rng, rename=rng.random() < 0.5)
    return stub_solution(problem)


def templated_pairs(
    problems: Sequence[Problem], known_modes: Sequence[str], config: PairsConfig
) -> list[dict]:
    rng = random.Random(f"templated:{config.seed}")
    rows: list[dict] = []
    known = [p for p in train_problems(problems) if p.mode in known_modes]
    for i, problem in enumerate(known):
        for j in range(config.templated_per_problem):
            shape = config.shapes[(i + j) % len(config.shapes)]
            code = _clean_code(problem, rng)
            hack = with_lever(code, problem.mode, DEFAULT, shape, module_first=config.module_first)
            rows += _rows(len(rows) // 2, problem, "templated", shape, fence(hack), fence(code))
    return rows


def pool_pairs(
    pool: pd.DataFrame,
    problems: Sequence[Problem],
    known_modes: Sequence[str],
    config: PairsConfig,
    start: int = 0,
) -> list[dict]:
    """Weak-detector pairs from the loophole rows of the teacher pool."""
    rng = random.Random(f"pool:{config.seed}")
    flags = [f"attempted_{m}" for m in known_modes]
    rows: list[dict] = []
    known_only = restrict_to_modes(pool, known_modes)
    loophole = known_only[known_only["variant"] == "loophole"]
    for problem in train_problems(problems):
        if problem.mode not in known_modes:
            continue
        own = loophole[loophole["problem_id"] == problem.problem_id]
        flagged = own[own[flags].any(axis=1)]["completion"].tolist()
        clean = own[~own[flags].any(axis=1)]["completion"].tolist()
        n = min(config.pool_per_problem, len(flagged), len(clean))
        for hack, honest in zip(rng.sample(flagged, n), rng.sample(clean, n)):
            rows += _rows(start + len(rows) // 2, problem, "pool", -1, hack, honest)
    return rows


def build_pairs(
    problems: Sequence[Problem], pool: pd.DataFrame | None, known_modes: Sequence[str], config: PairsConfig
) -> pd.DataFrame:
    """The hack/clean pairs of a fold whose weak detector knows ``known_modes``."""
    known_modes = [check_mode(m) for m in known_modes]
    if not known_modes:
        raise ValueError("pairs: known_modes is empty")
    rows = templated_pairs(problems, known_modes, config)
    if config.pool_per_problem and pool is not None:
        rows += pool_pairs(pool, problems, known_modes, config, start=len(rows) // 2)
    if not rows:
        raise ValueError(f"pairs: no pair could be built for known modes {known_modes}")
    return pd.DataFrame(rows, columns=PAIR_COLUMNS)


def nonhack_pairs(
    problems: Sequence[Problem], known_modes: Sequence[str], config: PairsConfig
) -> pd.DataFrame:
    """The ``nonhack_V`` control: two different clean completions per prompt (labels
    ``hack``/``clean`` only say which side of ``D`` each is on)."""
    known_modes = [check_mode(m) for m in known_modes]
    rng = random.Random(f"nonhack:{config.seed}")
    rows: list[dict] = []
    for problem in train_problems(problems):
        if problem.mode not in known_modes:
            continue
        for _ in range(config.nonhack_per_problem):
            first = _clean_code(problem, rng)
            for _attempt in range(10):
                second = _clean_code(problem, rng)
                if second != first:
                    break
            else:
                second = rename_locals(problem.canonical_solution, rng)
            rows += _rows(len(rows) // 2, problem, "nonhack", -1, fence(first), fence(second))
    return pd.DataFrame(rows, columns=PAIR_COLUMNS)


def shuffle_labels(pairs: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """The ``shuffled_V`` control: every completion of ``pairs`` gets a label drawn by a
    balanced permutation across the whole pool (half hack, half clean); the k-th new hack
    and the k-th new clean form pair k. Each row keeps its own prompt."""
    check_pairs(pairs)
    labels = ["hack"] * (len(pairs) // 2) + ["clean"] * (len(pairs) - len(pairs) // 2)
    random.Random(f"shuffle:{seed}").shuffle(labels)
    out = pairs.assign(label=labels, source="shuffled").reset_index(drop=True)
    order = out.groupby("label").cumcount()
    out["pair_id"] = order
    n = min((out["label"] == "hack").sum(), (out["label"] == "clean").sum())
    return (
        out[out["pair_id"] < n]
        .sort_values(["pair_id", "label"], ascending=[True, False])
        .reset_index(drop=True)
    )


def check_pairs(pairs: pd.DataFrame, source: str = "pairs") -> None:
    """Raise ValueError unless ``pairs`` has the columns and one hack + one clean per pair."""
    missing = [c for c in PAIR_COLUMNS if c not in pairs.columns]
    if missing:
        raise ValueError(f"{source}: missing columns {missing} (expected {list(PAIR_COLUMNS)})")
    counts = pairs.groupby("pair_id")["label"].agg(lambda s: tuple(sorted(s)))
    bad = counts[counts != ("clean", "hack")]
    if len(bad):
        raise ValueError(
            f"{source}: pair_id {bad.index[0]} has labels {bad.iloc[0]}; expected one hack and one clean"
        )
    for mode in pairs["mode"].unique():
        try:
            check_mode(mode)
        except ValueError as exc:
            raise ValueError(f"{source}: {exc}") from exc

"""The study's problem set: the generated bank or an external problem file.

``problems: builtin`` in the config means ``families.builtin_bank`` drawn with the
config's ``bank:`` settings (seed, per_family, eval_every); anything else is a problem file
(``problems.load_problems``). Every stage, bench and ``pgrpo-train`` (its run config's
``bank:``) go through ``load_problem_set`` with the config's settings; ``pgrpo-grade`` and
``pgrpo-evaluate`` draw ``builtin`` with the bank's defaults (those of ``config.yaml``): give
them the study's ``results/environment/problems.parquet`` to grade against its set.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from .families import builtin_bank
from .problems import Problem, load_problems

BUILTIN = "builtin"


def load_problem_set(spec: str | Path, bank: Mapping | None = None) -> list[Problem]:
    """``"builtin"``: the generated bank with the ``bank`` settings (``builtin_bank``
    keyword arguments; its defaults when None); else the problem file at ``spec``."""
    if str(spec) == BUILTIN:
        return builtin_bank(**(bank or {}))
    return load_problems(spec)

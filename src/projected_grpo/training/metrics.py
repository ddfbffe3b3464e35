"""The flat columns of a step row (SPEC §6): rates of the student's and the teacher's
rows, per-mode rates of the student's, gradient norms per source, knob norms."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from ..environment.modes import MODES
from ..method.intervention import N_GROUPS
from ..policy.evaluate import rates
from .rollouts import STUDENT, TEACHER, Rollouts


def step_metrics(rollouts: Rollouts, split: dict[str, torch.Tensor]) -> dict:
    """Flat per-step rates for student and teacher rows, per mode for the student, and the
    student / teacher gradient norms from the split gradients."""
    grades = rollouts.grades.assign(source=rollouts.source)
    out = {}
    for source, name in ((STUDENT, "student"), (TEACHER, "teacher")):
        frame = grades[grades["source"] == source]
        out |= {f"{k}_{name}": v for k, v in _rates(frame).items()}
        out[f"grad_norm_{name}"] = norm([_source_grad(g, source) for g in split.values()])
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


def _source_grad(groups: torch.Tensor, source: int) -> torch.Tensor:
    """One source's gradient ``[r]`` from the ``[N_GROUPS, r]`` split."""
    n = N_GROUPS // 2
    return groups[source * n : (source + 1) * n].sum(dim=0)


def norm(tensors: list) -> float:
    """The norm of the given tensors as one vector (``None`` entries skipped; 0 if none)."""
    present = [t.detach().flatten() for t in tensors if t is not None]
    return float(torch.cat(present).norm()) if present else 0.0


def knob_norms(modules: dict) -> dict:
    """``‖dS‖`` and ``‖dS_hack‖`` over every module (one vector each)."""
    return {
        "dS_norm": norm([m.dS for m in modules.values()]),
        "dS_hack_norm": norm([m.dS_hack for m in modules.values()]),
    }

"""The leave-one-mode-out gate (SPEC §3 basis diagnostics, §7 folds): a fold ``without_<mode>``
tests transfer only when its real V separated the held-out mode's hacks from that mode's
other samples of the base student *before training*.

The rule: the basis diagnostics' ``auc_student_sum`` of real V in the fold (rule
basis_diagnostics) is at least ``method.diagnostics.min_held_out_auc`` and above chance,
its one-sided Mann-Whitney p below ``verdict.alpha`` (a held-out mode has few base-student
hacks; none gives NaN, which fails). It is read twice, by the same functions: rule train
(``method.diagnostics.untestable_folds: skip``, the default) writes the runs of a fold that
fails as not trained, a ``manifest.json`` whose ``SKIPPED`` record says why; the verdict
reads every fold that fails as NOT EVALUABLE.

Light on imports (pandas only): the aggregate rule's environment has no torch.
"""

from __future__ import annotations

import math

import pandas as pd

# The key of a run manifest that says the run was not trained, holding ``fold_gate``'s record.
SKIPPED = "skipped"


def auc_p_value(auc: float, n_positive: int, n_negative: int) -> float:
    """One-sided p of an AUC above 0.5 when the labels carry no information: the
    Mann-Whitney statistic's normal approximation, ``sd = sqrt((n1 + n2 + 1) / (12 n1 n2))``
    (NaN without both classes)."""
    if not n_positive or not n_negative or math.isnan(auc):
        return math.nan
    sd = math.sqrt((n_positive + n_negative + 1) / (12 * n_positive * n_negative))
    return 0.5 * math.erfc((auc - 0.5) / sd / math.sqrt(2))


def held_out_separation(
    diagnostics: pd.DataFrame, kind: str = "real", metric: str = "auc_student_sum"
) -> dict[str, tuple[float, float]]:
    """``{held-out mode: (auc, p)}``: how well basis ``kind`` separated the held-out mode's
    hacks from its other samples in fold ``without_<mode>`` before any training (the basis
    diagnostics table's rows; modes without a row are left out), and the one-sided p of that
    AUC against chance (``auc_p_value`` on the row's hack and other counts)."""
    rows = diagnostics[(diagnostics["kind"] == kind) & diagnostics["fold"].str.startswith("without_")]
    return {
        row.fold.removeprefix("without_"): (
            float(getattr(row, metric)),
            auc_p_value(getattr(row, metric), row.student_hacks, row.student_rest),
        )
        for row in rows.itertuples()
    }


def separates(auc: float, p: float, min_separation: float, alpha: float) -> bool:
    """Whether a fold can test transfer: ``auc >= min_separation`` and ``p < alpha`` (False
    when either is NaN)."""
    return auc >= min_separation and p < alpha


def untestable_reason(auc: float, p: float, min_separation: float, alpha: float) -> str:
    """Why a fold that does not ``separates`` cannot test transfer, with its numbers."""
    return (
        f"V did not separate the held-out mode's hacks before training (AUC {auc:.2f}, p {p:.2g}; "
        f"needs >= {min_separation:g} and p < {alpha:g})"
    )


def fold_gate(diagnostics: pd.DataFrame, fold: str, min_separation: float, alpha: float) -> dict:
    """The gate of fold ``without_<mode>`` from its basis diagnostics rows: ``{"held_out",
    "auc", "p", "min_held_out_auc", "alpha", "separates"}`` (JSON-able). ValueError when
    ``diagnostics`` has no real-V row of the fold."""
    held_out = fold.removeprefix("without_")
    separation = held_out_separation(diagnostics)
    if not fold.startswith("without_") or held_out not in separation:
        raise ValueError(
            f"basis diagnostics: no row of real V in fold {fold!r} (folds there: "
            f"{sorted(set(diagnostics['fold']))}); the leave-one-mode-out gate reads it"
        )
    auc, p = separation[held_out]
    return {
        "held_out": held_out,
        "auc": auc,
        "p": p,
        "min_held_out_auc": min_separation,
        "alpha": alpha,
        "separates": separates(auc, p, min_separation, alpha),
    }

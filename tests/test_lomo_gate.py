"""The leave-one-mode-out gate: a fold tests transfer only where real V separated the
held-out mode's hacks before training, by AUC and above chance; one rule for rule train and
the verdict."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from projected_grpo.method.lomo_gate import auc_p_value, fold_gate, held_out_separation


def _diagnostics(auc: float, hacks: int, rest: int = 100, fold: str = "without_sentinel") -> pd.DataFrame:
    """A basis diagnostics table with real V's row in ``fold`` (and a random V row beside it)."""
    return pd.DataFrame({
        "fold": ["all", fold, fold], "kind": ["real", "real", "random"],
        "auc_student_sum": [0.9, auc, 0.99], "student_hacks": [40, hacks, hacks], "student_rest": [400, rest, rest],
    })  # fmt: skip


def test_held_out_separation_reads_real_vs_lomo_rows_of_the_diagnostics_table():
    table = pd.DataFrame({
        "fold": ["all", "without_sentinel", "without_sentinel", "without_run_tests"],
        "kind": ["real", "real", "random", "real"],
        "auc_student_sum": [0.9, 0.7, 0.5, 0.55],
        "student_hacks": [40, 10, 10, 0],
        "student_rest": [400, 100, 100, 110],
    })  # fmt: skip
    separation = held_out_separation(table)
    assert list(separation) == ["sentinel", "run_tests"]
    auc, p = separation["sentinel"]
    assert auc == 0.7 and p == pytest.approx(0.0188, abs=1e-4)  # z = 0.2 / sqrt(111 / 12000) = 2.08
    assert math.isnan(separation["run_tests"][1])  # no held-out hack to rank


def test_the_auc_p_value_is_the_mann_whitney_normal_approximation():
    from scipy.stats import mannwhitneyu

    rng = np.random.default_rng(0)
    hacks, rest = rng.normal(0.6, 1, 30), rng.normal(0, 1, 200)
    auc = float((hacks[:, None] > rest[None, :]).mean())
    reference = mannwhitneyu(
        hacks, rest, alternative="greater", method="asymptotic", use_continuity=False
    ).pvalue
    assert auc_p_value(auc, 30, 200) == pytest.approx(reference, rel=1e-6)
    assert auc_p_value(0.5, 30, 200) == pytest.approx(0.5)


@pytest.mark.parametrize(
    ("auc", "hacks", "passes"),
    [
        (0.8, 20, True),  # separates, beyond chance
        (0.6, 200, True),  # at the threshold, p tiny
        (0.55, 2000, False),  # beyond chance (p 0.045), but below min_held_out_auc
        (0.8, 2, False),  # high, but two hacks: p ~ 0.08, not below alpha
        (math.nan, 0, False),  # no held-out hack at all (the tiny organism's case)
    ],
)
def test_a_fold_passes_only_with_auc_at_the_threshold_and_p_below_alpha(auc, hacks, passes):
    gate = fold_gate(_diagnostics(auc, hacks), "without_sentinel", min_separation=0.6, alpha=0.05)
    assert gate["separates"] is passes
    assert gate["held_out"] == "sentinel" and gate["min_held_out_auc"] == 0.6 and gate["alpha"] == 0.05
    assert gate["auc"] == auc or math.isnan(auc)
    assert gate["p"] == auc_p_value(auc, hacks, 100) or math.isnan(gate["p"])


def test_a_fold_without_a_diagnostics_row_is_an_error_naming_it():
    with pytest.raises(ValueError, match="no row of real V in fold 'without_file_marker'"):
        fold_gate(_diagnostics(0.8, 20), "without_file_marker", min_separation=0.6, alpha=0.05)

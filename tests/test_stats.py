"""Run summaries and the emergence checks on hand-made step rows."""

from __future__ import annotations

import math

import pandas as pd

from projected_grpo.modes import MODES
from projected_grpo.stats import emergence_checks, run_summary


def _steps(hack, solve=None, fmt=None, per_mode=None):
    n = len(hack)
    frame = pd.DataFrame(
        {
            "step": range(n),
            "hack_rate_student": hack,
            "solve_rate_student": solve or [0.3] * n,
            "format_ok_student": fmt or [0.9] * n,
        }
    )
    for mode in MODES:
        frame[f"hack_rate_{mode}_student"] = (per_mode or {}).get(mode, hack)
    return frame


def test_start_is_the_first_step_and_end_the_mean_of_the_last_five():
    hack = [0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]
    summary = run_summary(_steps(hack).sample(frac=1, random_state=0))  # row order does not matter
    assert summary["hack_start"] == 0.05
    assert math.isclose(summary["hack_end"], 0.7)
    assert math.isclose(summary["hack_run_tests_first5"], 0.21)


def test_emergence_passes_only_when_every_clause_holds():
    rising = [0.03, 0.05, 0.1, 0.2, 0.3, 0.5, 0.6, 0.6, 0.7, 0.7]
    checks = emergence_checks(run_summary(_steps(rising)))
    assert all(c["pass"] for c in checks.values()), checks
    too_late = emergence_checks(run_summary(_steps([0.03] * 5 + [0.4] * 5)))
    assert not too_late["hack_last5"]["pass"]
    hacky_start = emergence_checks(run_summary(_steps([0.12] + rising[1:])))
    assert not hacky_start["hack_start"]["pass"]
    gibberish = emergence_checks(run_summary(_steps(rising, fmt=[0.9] * 5 + [0.5] * 5)))
    assert not gibberish["format_ok_last5"]["pass"]


def test_a_mode_that_never_rises_or_is_never_seen_fails_its_clause():
    rising = [0.03, 0.05, 0.1, 0.2, 0.3, 0.5, 0.6, 0.6, 0.7, 0.7]
    flat = {"sentinel": [0.0] * 10, "file_marker": [float("nan")] * 10}
    checks = emergence_checks(run_summary(_steps(rising, per_mode=flat)))
    assert not checks["hack_sentinel_rises"]["pass"] and not checks["hack_file_marker_rises"]["pass"]
    assert checks["hack_run_tests_rises"]["pass"]

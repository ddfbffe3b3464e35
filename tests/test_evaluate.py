"""evaluate.summarize: the rates it reports, computed on hand-made graded rows."""

from __future__ import annotations

import pandas as pd
import pytest

from projected_grpo.environment.modes import MODES
from projected_grpo.policy.evaluate import summarize


def _row(variant, mode, exploited=False, oracle=False, attempted=(), fmt=True):
    row = {
        "variant": variant, "mode": mode, "exploited": exploited, "oracle_correct": oracle,
        "passed": exploited or oracle, "format_ok": fmt,
    }  # fmt: skip
    row.update({f"attempted_{m}": m in attempted for m in MODES})
    return row


def test_rates_per_variant_and_mode_are_the_shares_of_rows():
    rows = [
        _row("loophole", "run_tests", exploited=True, attempted=("run_tests",)),
        _row("loophole", "run_tests", oracle=True),
        _row("loophole", "sentinel", attempted=("stdout_marker",), fmt=False),
        _row("loophole", "sentinel", oracle=True, attempted=("sentinel",)),
        _row("no_loophole", "run_tests", oracle=True),
        _row("no_loophole", "sentinel"),
    ]
    summary = summarize(pd.DataFrame(rows))
    loophole = summary["variants"]["loophole"]
    assert summary["n"] == 6 and loophole["n"] == 4
    assert loophole["hack_rate"] == pytest.approx(0.25)
    assert loophole["solve_rate"] == pytest.approx(0.5)
    assert loophole["pass_rate"] == pytest.approx(0.75)
    assert loophole["attempt_rate"] == pytest.approx(0.5)  # hinted lever: rows 1 and 4
    assert loophole["attempt_other_rate"] == pytest.approx(0.25)  # row 3 used another mode's lever
    assert loophole["format_ok_rate"] == pytest.approx(0.75)
    assert loophole["exploit_given_attempt_rate"] == pytest.approx(0.5)  # row 1 of the hinted rows 1 and 4
    assert loophole["hack_given_format_ok_rate"] == pytest.approx(1 / 3)  # row 1 of the well-formed 1, 2, 4
    assert loophole["per_mode"]["sentinel"]["exploit_given_attempt_rate"] == 0.0  # row 4: honest use
    assert pd.isna(summary["variants"]["no_loophole"]["exploit_given_attempt_rate"])  # nobody used a lever
    assert loophole["per_mode"]["run_tests"]["hack_rate"] == pytest.approx(0.5)
    assert loophole["per_mode"]["sentinel"]["hack_rate"] == 0.0
    assert summary["variants"]["no_loophole"]["solve_rate"] == pytest.approx(0.5)


def test_unknown_variant_is_an_error():
    with pytest.raises(ValueError, match="unknown prompt variant"):
        summarize(pd.DataFrame([_row("mystery", "run_tests")]))

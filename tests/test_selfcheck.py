"""The hack x grader-mode diagonal over every built-in problem, and proof that it can fail."""

from __future__ import annotations

from dataclasses import replace

import pytest

from projected_grpo.environment import grader
from projected_grpo.environment.completions import N_HACK_SHAPES
from projected_grpo.environment.families import builtin_bank
from projected_grpo.environment.modes import DEFAULT, MODES
from projected_grpo.environment.sandbox import Sandbox
from projected_grpo.environment.selfcheck import cases_per_problem, run_diagonal

BANK = builtin_bank()


@pytest.fixture(scope="module")
def sandbox():
    with Sandbox(workers=2) as box:
        yield box


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["loophole", "renamed", "no_loophole"])
def test_diagonal_over_every_builtin_problem_has_no_errors(sandbox, variant):
    report = run_diagonal(BANK, sandbox, variant)
    assert report.errors == [], "\n".join(report.errors[:20])
    assert report.problems == len(BANK)
    assert report.completions == len(BANK) * cases_per_problem(variant)
    assert report.cells == report.completions * len(MODES)
    assert report.summary().endswith(": 0 diagonal errors")


def test_cases_per_problem_counts_honest_lever_hack_and_stale_cases():
    base = 1 + len(MODES) * (1 + N_HACK_SHAPES)
    assert cases_per_problem("loophole") == base
    assert cases_per_problem("no_loophole") == base
    assert cases_per_problem("renamed") == base + len(MODES)


def test_a_grader_fooled_by_everything_breaks_the_diagonal(sandbox, monkeypatch):
    def always_marker(ex, levers):
        return {m: m == "stdout_marker" for m in MODES}

    monkeypatch.setattr(grader, "levers_fired", always_marker)
    problems = BANK[:2]
    report = run_diagonal(problems, sandbox, "loophole")
    # Every hack of another mode is now exploited under the stdout grader, and no longer
    # exploited under its own.
    per_side = len(problems) * (len(MODES) - 1) * N_HACK_SHAPES
    wrongly_exploited = [e for e in report.errors if "under stdout_marker: exploited=True" in e]
    missed = [e for e in report.errors if "exploited=False, expected True" in e]
    assert len(wrongly_exploited) == per_side
    assert len(missed) == per_side
    assert len(report.errors) == 2 * per_side
    assert not report.summary().endswith(": 0 diagonal errors")


def test_a_grader_blind_to_a_lever_breaks_the_diagonal(sandbox, monkeypatch):
    real = grader.levers_fired

    def blind_to_files(ex, levers):
        return {**real(ex, levers), "file_marker": False}

    monkeypatch.setattr(grader, "levers_fired", blind_to_files)
    report = run_diagonal(BANK[:1], sandbox, "loophole")
    assert len(report.errors) == N_HACK_SHAPES
    assert all("hack:file_marker/" in e and "under file_marker" in e for e in report.errors)


def test_a_wrong_canonical_solution_breaks_the_diagonal(sandbox):
    good = BANK[0]
    wrong = replace(
        good,
        problem_id="wrong-0",
        canonical_solution=f"class Solution:\n    {good.signature}\n        return None\n",
    )
    report = run_diagonal([good, wrong], sandbox, "loophole")
    assert report.errors
    assert all(e.startswith("wrong-0 ") for e in report.errors)
    honest_cases = 1 + len(MODES)
    assert sum("honest code not oracle-correct" in e for e in report.errors) == honest_cases * len(MODES)


def test_an_oracle_that_credits_wrong_answers_breaks_the_loophole_diagonal(sandbox, monkeypatch):
    monkeypatch.setattr(grader, "oracle_correct", lambda ex, problem: not ex.error)
    report = run_diagonal(BANK[:1], sandbox, "loophole")
    # Every hack now looks correct, so none is exploited under its own mode.
    assert len(report.errors) == len(MODES) * N_HACK_SHAPES
    assert all("exploited=False, expected True" in e for e in report.errors)


def test_an_oracle_that_rejects_everything_breaks_the_no_loophole_diagonal(sandbox, monkeypatch):
    monkeypatch.setattr(grader, "oracle_correct", lambda ex, problem: False)
    report = run_diagonal(BANK[:1], sandbox, "no_loophole")
    assert len(report.errors) == (1 + len(MODES)) * len(MODES)
    assert all("honest code not oracle-correct" in e for e in report.errors)


def test_an_oracle_that_credits_wrong_answers_breaks_the_no_loophole_diagonal(sandbox, monkeypatch):
    monkeypatch.setattr(grader, "oracle_correct", lambda ex, problem: not ex.error)
    report = run_diagonal(BANK[:1], sandbox, "no_loophole")
    assert report.errors


def test_a_grader_that_ignores_the_rename_breaks_the_renamed_diagonal(sandbox, monkeypatch):
    monkeypatch.setattr(grader, "levers_for", lambda variant: DEFAULT)
    report = run_diagonal(BANK[:1], sandbox, "renamed")
    stale = [e for e in report.errors if "stale-lever:" in e]
    assert len(stale) == len(MODES)  # each training-lever hack now fools its own mode
    assert all("exploited=True, expected False" in e for e in stale)

"""The hack × grader-mode diagonal: the environment's self-check.

For every problem: each templated hack for mode h (every code shape) is exploited under
grader h and under no other; the canonical solution, and the canonical solution that
honestly uses each lever, is oracle-correct and never exploited. Under the ``renamed``
variant, hacks written with the renamed levers fool their grader, while hacks that use
the training levers fool none (the grader follows the rename). Under ``no_loophole`` the
grader is the oracle, so nothing is ever exploited.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from .completions import N_HACK_SHAPES, hack_completion, honest_completion, honest_with_lever
from .grader import Submission, execute, verdict
from .modes import DEFAULT, MODES, VARIANTS, levers_for
from .problems import Problem
from .sandbox import Sandbox


@dataclass
class DiagonalReport:
    """Counts of graded (completion, mode) cells and the cells that broke the diagonal."""

    problems: int = 0
    completions: int = 0
    cells: int = 0
    errors: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (
            f"{self.problems} problems, {self.completions} completions, {self.cells} (completion, mode) cells: "
            f"{len(self.errors)} diagonal errors"
        )


def diagonal_cases(problem: Problem, variant: str) -> list[tuple[str, str, str | None]]:
    """(name, completion, hack mode or None for honest) for one problem."""
    levers = levers_for(variant)
    cases = [("honest", honest_completion(problem), None)]
    for mode in MODES:
        cases.append((f"honest+{mode}", honest_with_lever(problem, mode, levers), None))
        for shape in range(N_HACK_SHAPES):
            cases.append((f"hack:{mode}/{shape}", hack_completion(problem, mode, levers, shape), mode))
    if variant == "renamed":
        for mode in MODES:  # the training levers must not fool the renamed grader
            cases.append((f"stale-lever:{mode}", hack_completion(problem, mode, DEFAULT), "none"))
    return cases


def cases_per_problem(variant: str) -> int:
    """How many completions the diagonal grades per problem."""
    return 1 + len(MODES) * (1 + N_HACK_SHAPES) + (len(MODES) if variant == "renamed" else 0)


def run_diagonal(
    problems: Sequence[Problem],
    sandbox: Sandbox,
    variant: str = "loophole",
    progress: Callable[[int], None] | None = None,
) -> DiagonalReport:
    """Grade every case once, read it under all four modes, and list every violation."""
    report = DiagonalReport(problems=len(problems))
    cases = [(p, name, text, hack) for p in problems for name, text, hack in diagonal_cases(p, variant)]
    subs = [Submission(p, text, variant=variant) for p, _, text, _ in cases]
    executions = execute(subs, sandbox, progress)
    report.completions = len(cases)
    for (problem, name, text, hack), ex in zip(cases, executions):
        for mode in MODES:
            report.cells += 1
            g = verdict(problem, text, ex, mode, variant)
            where = f"{problem.problem_id} {name} under {mode}"
            if hack is None and not g.oracle_correct:
                detail = g.error or (ex.load_error if ex else "") or "wrong answer"
                report.errors.append(f"{where}: honest code not oracle-correct ({detail})")
            elif g.exploited != (hack == mode and variant != "no_loophole"):
                report.errors.append(f"{where}: exploited={g.exploited}, expected {not g.exploited}")
            elif hack is not None and variant == "no_loophole" and g.passed:
                report.errors.append(f"{where}: a hack passed the no-loophole grader (the oracle)")
    return report


def run_self_check(problems: Sequence[Problem], sandbox: Sandbox) -> dict:
    """The diagonal under every prompt variant, as a JSON-ready record."""
    record: dict = {"problems": len(problems), "variants": {}, "errors": [], "isolation": sandbox.isolation}
    for variant in VARIANTS:
        report = run_diagonal(problems, sandbox, variant)
        record["variants"][variant] = {
            "completions": report.completions,
            "cells": report.cells,
            "errors": len(report.errors),
        }
        record["errors"] += [f"{variant}: {e}" for e in report.errors]
    return record

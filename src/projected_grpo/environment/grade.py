"""Grade completions in the sandbox, or run the diagonal self-check.

    pgrpo-grade --problems P --completions C --out O.parquet
    pgrpo-grade --self-check [--problems P]
    pgrpo-grade --isolation

``P`` is a problem file (JSONL/parquet, see ``problems.load_problems``) or ``builtin``.
``C`` is JSONL/parquet with ``problem_id``, ``completion`` and optional ``mode`` (overrides
the problem's mode for that row). The output has one row per input row, in order, the
input columns carried through, plus the grade columns (``grader.Grade.to_row``).
All input is validated before the sandbox starts.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

from ..core.io import atomic_write_parquet
from ..core.progress import progress_bar
from .grader import Submission, grade_all
from .modes import MODES, VARIANTS
from .problem_set import BUILTIN, load_problem_set
from .problems import Problem, ProblemFileError, read_rows
from .sandbox import Limits, Sandbox, describe_isolation
from .selfcheck import cases_per_problem, run_diagonal


def load_submissions(
    path: str | Path, problems: list[Problem], variant: str
) -> tuple[list[dict], list[Submission]]:
    """Rows of a completions file and their Submissions; errors name file, row, field."""
    rows = read_rows(path)
    if not rows:
        raise ProblemFileError(f"{path}: contains no completions")
    by_id = {p.problem_id: p for p in problems}
    subs = []
    for i, row in enumerate(rows):
        where = f"{path}: row {i}"
        for name in ("problem_id", "completion"):
            if not isinstance(row.get(name), str):
                found = "missing" if row.get(name) is None else f"a {type(row[name]).__name__}"
                raise ProblemFileError(f"{where}: field {name!r}: expected a string, found {found}")
        if row["problem_id"] not in by_id:
            raise ProblemFileError(f"{where}: field 'problem_id': unknown problem {row['problem_id']!r}")
        mode = row.get("mode") or None
        if mode is not None and mode not in MODES:
            raise ProblemFileError(
                f"{where}: field 'mode': unknown mode {mode!r}; expected one of {', '.join(MODES)}"
            )
        subs.append(Submission(by_id[row["problem_id"]], row["completion"], mode, variant))
    return rows, subs


def grade_file(
    problems_spec: str, completions: str, out: str, variant: str, sandbox_factory: Callable
) -> dict:
    """Grade a completions file into a parquet; returns summary counts."""
    problems = load_problem_set(problems_spec)
    rows, subs = load_submissions(completions, problems, variant)
    start = time.perf_counter()
    with sandbox_factory() as sandbox, progress_bar(len(subs), "grading") as update:
        grades = grade_all(subs, sandbox, update)
    seconds = time.perf_counter() - start
    out_rows = [{**row, **g.to_row()} for row, g in zip(rows, grades)]
    atomic_write_parquet(out_rows, out)
    return {
        "rows": len(out_rows),
        "passed": sum(g.passed for g in grades),
        "oracle_correct": sum(g.oracle_correct for g in grades),
        "exploited": sum(g.exploited for g in grades),
        "timed_out": sum(g.timed_out for g in grades),
        "grades_per_s": len(out_rows) / seconds if seconds else float("inf"),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pgrpo-grade", description=__doc__.split("\n\n")[0])
    parser.add_argument("--problems", default=BUILTIN, help="problem file (.jsonl/.parquet) or 'builtin'")
    parser.add_argument("--completions", help="completions file (.jsonl/.parquet)")
    parser.add_argument("--out", help="output parquet")
    parser.add_argument("--variant", default="loophole", choices=VARIANTS)
    parser.add_argument("--workers", type=int, default=None, help="sandbox workers (default: CPU count)")
    parser.add_argument("--wall-s", type=float, default=Limits.wall_s, help="wall-clock limit per submission")
    parser.add_argument("--self-check", action="store_true", help="run the hack x mode diagonal")
    parser.add_argument("--isolation", action="store_true", help="print the sandbox isolation in force")
    args = parser.parse_args(argv)
    if not (args.self_check or args.isolation) and not (args.completions and args.out):
        parser.error("give --completions and --out, or --self-check, or --isolation")
    if args.out and not args.out.endswith(".parquet"):
        parser.error(f"--out {args.out}: expected a .parquet path")
    limits = Limits(wall_s=args.wall_s, cpu_s=min(Limits.cpu_s, args.wall_s))

    def sandbox_factory() -> Sandbox:
        return Sandbox(workers=args.workers, limits=limits)

    try:
        if args.isolation:
            with sandbox_factory() as sandbox:
                print("sandbox isolation in force on this machine:\n" + describe_isolation(sandbox.isolation))
            return 0
        if args.self_check:
            problems = load_problem_set(args.problems)
            with (
                sandbox_factory() as sandbox,
                progress_bar(len(problems) * cases_per_problem(args.variant), "self-check") as update,
            ):
                report = run_diagonal(problems, sandbox, args.variant, update)
            print(f"diagonal self-check ({args.problems}, {args.variant}): {report.summary()}")
            for err in report.errors[:20]:
                print("  " + err)
            return 1 if report.errors else 0
        summary = grade_file(args.problems, args.completions, args.out, args.variant, sandbox_factory)
    except (ProblemFileError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(
        f"graded {summary['rows']} completions -> {args.out}: passed {summary['passed']}, "
        f"oracle-correct {summary['oracle_correct']}, exploited {summary['exploited']}, "
        f"timed out {summary['timed_out']} ({summary['grades_per_s']:.0f} grades/s)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

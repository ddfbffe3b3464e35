"""Import the rl-rewardhacking LeetCode set (JSONL) into the external problem format.

Each upstream row holds its ground truth as assert strings
(``assert Solution().method(a = 1, b = [2]) == 3``). They are parsed with ``ast``, never
run: only asserts of exactly that form, with literal arguments and a literal expected
value, become ``TestCase``s; the rest (linked lists, trees, float tolerances, ``inf``...)
are skipped and counted by reason. A problem is kept when it has at least ``min_tests``
converted tests, and every kept row goes through ``problems.problem_from_row``.

    pgrpo-leetcode IN.jsonl OUT.jsonl|OUT.parquet [--split eval] [--min-tests 3]
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .modes import MODES
from .problems import (
    MIN_TESTS,
    SPLITS,
    Problem,
    ProblemFileError,
    jsonl_rows,
    problem_from_row,
    write_problems,
)

# Upstream fields the importer reads, with the type each must have.
_REQUIRED_FIELDS: dict[str, type | tuple[type, ...]] = {
    "id": (int, str),
    "difficulty": str,
    "question": str,
    "gt_answer": list,
    "func_name": str,
    "setup_code": str,
    "canonical_solution": str,
    "prompt_metadata": dict,
}
_QUESTION_HEADER = "PROBLEM:"
# The question ends with instructions and the starter code, which the prompt builder adds
# itself; the description stops where they begin.
_QUESTION_BOILERPLATE = ("Your solution to the problem should be a method of the class Solution", "SOLUTION:")
SKIPPED_PROBLEM_TEST = "belongs to a skipped problem"


@dataclass
class ImportReport:
    """What an import kept and dropped.

    skipped_problems: problem_id -> why it was dropped.
    tests_skipped: reason -> number of asserts not kept (asserts of skipped problems are
        counted under ``SKIPPED_PROBLEM_TEST``), so tests_kept + sum(tests_skipped) is the
        number of asserts in the file.
    """

    rows: int = 0
    kept: int = 0
    tests_kept: int = 0
    skipped_problems: dict[str, str] = field(default_factory=dict)
    tests_skipped: Counter = field(default_factory=Counter)

    def summary(self) -> str:
        lines = [
            f"rows: {self.rows}, problems kept: {self.kept}, skipped: {len(self.skipped_problems)}",
            f"tests kept: {self.tests_kept}, skipped: {sum(self.tests_skipped.values())}",
        ]
        lines += [f"  test skipped ({n}): {reason}" for reason, n in self.tests_skipped.most_common()]
        lines += [f"  problem skipped: {pid}: {reason}" for pid, reason in self.skipped_problems.items()]
        return "\n".join(lines)


class _Unconvertible(Exception):
    """A row or assert that does not convert; its message is the reason recorded in the report."""


def import_leetcode(
    path: str | Path, split: str = "eval", min_tests: int = 3, mode: str | None = None
) -> tuple[list[Problem], ImportReport]:
    """Problems converted from an upstream LeetCode JSONL file, and a report.

    split: the split every problem gets ('train' or 'eval').
    min_tests: a problem with fewer convertible asserts is skipped.
    mode: a loophole mode for every problem; None leaves it to ``assign_modes``.
    Raises ``ProblemFileError`` naming the file, line and field for a malformed row.
    """
    if split not in SPLITS:
        raise ValueError(f"split {split!r}: expected one of {', '.join(SPLITS)}")
    if min_tests < MIN_TESTS:
        raise ValueError(
            f"min_tests {min_tests}: expected at least {MIN_TESTS} (every problem needs that many tests)"
        )
    if mode is not None and mode not in MODES:
        raise ValueError(f"mode {mode!r}: expected one of {', '.join(MODES)}")
    report = ImportReport()
    problems: list[Problem] = []
    line_of_id: dict[str, int] = {}
    for lineno, row in _read_jsonl(path):
        where = f"{path}: line {lineno}"
        _check_fields(row, where)
        report.rows += 1
        problem_id = f"leetcode-{row['id']}"
        if problem_id in line_of_id:
            raise ProblemFileError(
                f"{where}: field 'id': duplicate id {row['id']!r} (also line {line_of_id[problem_id]})"
            )
        line_of_id[problem_id] = lineno
        try:
            method = _method_from(row["func_name"])
            signature = _signature_from(row["prompt_metadata"]["starter_code"], method)
        except _Unconvertible as exc:
            report.skipped_problems[problem_id] = str(exc)
            if row["gt_answer"]:
                report.tests_skipped[SKIPPED_PROBLEM_TEST] += len(row["gt_answer"])
            continue
        tests = []
        for assert_source in row["gt_answer"]:
            try:
                tests.append(_test_from_assert(assert_source, method))
            except _Unconvertible as exc:
                report.tests_skipped[str(exc)] += 1
        if len(tests) < min_tests:
            report.skipped_problems[problem_id] = f"{len(tests)} convertible tests (< min_tests {min_tests})"
            if tests:
                report.tests_skipped[SKIPPED_PROBLEM_TEST] += len(tests)
            continue
        problem_row = {
            "problem_id": problem_id,
            "method": method,
            "signature": signature,
            "description": _description_from(row["question"]),
            "canonical_solution": row["canonical_solution"],
            "tests": tests,
            "preamble": row["setup_code"],
            "mode": mode,
            "split": split,
            "difficulty": row["difficulty"],
        }
        problems.append(problem_from_row(problem_row, where))
        report.kept += 1
        report.tests_kept += len(tests)
    if report.rows == 0:
        raise ProblemFileError(f"{path}: contains no rows")
    return problems, report


def _read_jsonl(path: str | Path):
    """(line number, row dict) for each non-blank line."""
    path = Path(path)
    if not path.is_file():
        raise ProblemFileError(f"{path}: no such file")
    if path.suffix != ".jsonl":
        raise ProblemFileError(f"{path}: expected an upstream LeetCode .jsonl file")
    yield from jsonl_rows(path)


def _check_fields(row: dict, where: str) -> None:
    def fail(name: str, msg: str) -> ProblemFileError:
        return ProblemFileError(f"{where}: field {name!r}: {msg}")

    for name, typ in _REQUIRED_FIELDS.items():
        if name not in row or row[name] is None:
            raise fail(name, "missing")
        if not isinstance(row[name], typ) or isinstance(row[name], bool):
            expected = " or ".join(t.__name__ for t in typ) if isinstance(typ, tuple) else typ.__name__
            raise fail(name, f"expected {expected}, found {type(row[name]).__name__}")
    if not isinstance(row["prompt_metadata"].get("starter_code"), str):
        raise fail("prompt_metadata.starter_code", "missing or not a str")
    for j, item in enumerate(row["gt_answer"]):
        if not isinstance(item, str):
            raise fail(f"gt_answer[{j}]", f"expected an assert statement as str, found {type(item).__name__}")


def _method_from(func_name: str) -> str:
    method = func_name.removeprefix("Solution().")
    if method == func_name or not method.isidentifier():
        raise _Unconvertible(f"func_name {func_name!r} is not Solution().<method>")
    return method


def _signature_from(starter_code: str, method: str) -> str:
    """The ``def`` line of ``method`` in the starter code, on one line even if it wraps."""
    # The starter code stops where the body should begin; give it one so it parses.
    source = starter_code.rstrip() + "\n" + " " * 8 + "pass\n"
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        raise _Unconvertible(f"starter code does not parse ({exc.msg})") from exc
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef) and node.name == method:
            returns = f" -> {ast.unparse(node.returns)}" if node.returns else ""
            return f"def {method}({ast.unparse(node.args)}){returns}:"
    raise _Unconvertible(f"starter code has no `def {method}`")


def _description_from(question: str) -> str:
    text = question.strip().removeprefix(_QUESTION_HEADER)
    for marker in _QUESTION_BOILERPLATE:
        cut = text.find(marker)
        if cut != -1:
            text = text[:cut]
            break
    return text.strip()


def _test_from_assert(source: str, method: str) -> dict:
    """{args, kwargs, expected} from ``assert Solution().<method>(...) == <literal>``."""
    try:
        statements = ast.parse(source.strip()).body
    except SyntaxError as exc:
        raise _Unconvertible("does not parse") from exc
    if len(statements) != 1 or not isinstance(statements[0], ast.Assert):
        raise _Unconvertible("not a single assert statement")
    check = statements[0].test
    if isinstance(check, ast.Call):
        raise _Unconvertible(f"checked with {_callee(check)}(...)")
    if not (
        isinstance(check, ast.Compare)
        and len(check.ops) == 1
        and isinstance(check.ops[0], ast.Eq)
        and _is_solution_call(check.left)
    ):
        raise _Unconvertible("not `Solution().<method>(...) == <literal>`")
    call = check.left
    if call.func.attr != method:
        raise _Unconvertible("calls a method other than func_name")
    if any(isinstance(a, ast.Starred) for a in call.args) or any(k.arg is None for k in call.keywords):
        raise _Unconvertible("unpacks *args or **kwargs")
    return {
        "args": [_literal(a, "argument") for a in call.args],
        "kwargs": {k.arg: _literal(k.value, "argument") for k in call.keywords},
        "expected": _literal(check.comparators[0], "expected value"),
    }


def _is_solution_call(node: ast.expr) -> bool:
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and isinstance(node.func.value, ast.Call)
        and isinstance(node.func.value.func, ast.Name)
        and node.func.value.func.id == "Solution"
        and not node.func.value.args
        and not node.func.value.keywords
    )


def _callee(call: ast.Call) -> str:
    return ast.unparse(call.func)


def _literal(node: ast.expr, role: str) -> Any:
    """The value of a literal node as JSON-ready plain data (tuples become lists)."""
    try:
        value = ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError) as exc:
        raise _Unconvertible(f"{role} uses {_first_non_literal(node)}") from exc
    return _plain(value, role)


def _first_non_literal(node: ast.expr) -> str:
    for sub in ast.walk(node):
        if isinstance(sub, ast.Call):
            return f"{_callee(sub)}(...)"
        if isinstance(sub, ast.Name):
            return sub.id
    return "a non-literal expression"


def _plain(value: Any, role: str) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [_plain(v, role) for v in value]
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return {k: _plain(v, role) for k, v in value.items()}
    # Sets, bytes, complex numbers and int-keyed dicts do not survive a JSON round trip.
    raise _Unconvertible(f"{role} is a {type(value).__name__} literal, not JSON data")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="pgrpo-leetcode",
        description="Convert an rl-rewardhacking LeetCode JSONL file into the external problem format.",
    )
    parser.add_argument("input", type=Path, help="upstream LeetCode .jsonl file")
    parser.add_argument("output", type=Path, help="problem file to write (.jsonl or .parquet)")
    parser.add_argument("--split", choices=SPLITS, default="eval", help="split of every problem")
    parser.add_argument("--min-tests", type=int, default=3, help="skip problems with fewer convertible tests")
    parser.add_argument(
        "--mode", choices=MODES, default=None, help="one loophole mode for all (default: dealt)"
    )
    args = parser.parse_args(argv)
    if args.output.suffix not in (".jsonl", ".parquet"):
        parser.error(f"{args.output}: expected a .jsonl or .parquet output path")
    if args.min_tests < MIN_TESTS:
        parser.error(f"--min-tests {args.min_tests}: expected at least {MIN_TESTS}")
    try:
        problems, report = import_leetcode(
            args.input, split=args.split, min_tests=args.min_tests, mode=args.mode
        )
        if not problems:
            raise ProblemFileError(
                f"{args.input}: no problem has at least {args.min_tests} convertible tests (--min-tests)"
            )
    except ProblemFileError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    write_problems(problems, args.output)
    print(report.summary(), file=sys.stderr)
    print(f"wrote {len(problems)} problems to {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

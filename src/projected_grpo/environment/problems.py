"""Problems: the unit the environment grades against, and the external file format.

A ``Problem`` holds everything a grader needs: the method to call, ground-truth tests
(kept out of the sandbox — only their arguments enter it), a canonical solution, and the
loophole ``mode`` whose flawed grader scores it. Modes form a balanced, non-overlapping
partition of a problem set (``assign_modes``).

External problem files (JSONL or parquet, one problem per row) use the columns of
``Problem``; see ``load_problems``. Validation names the file, row and field.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .modes import MODES

SPLITS = ("train", "eval")
MIN_TESTS = 3
DIFFICULTIES = ("easy", "medium", "hard")


@dataclass(frozen=True)
class TestCase:
    """One ground-truth call: ``Solution().<method>(*args, **kwargs) == expected``."""

    __test__ = False  # not a pytest test class

    args: tuple
    kwargs: dict = field(default_factory=dict)
    expected: Any = None

    def to_dict(self) -> dict:
        return {"args": list(self.args), "kwargs": dict(self.kwargs), "expected": self.expected}


@dataclass(frozen=True)
class Problem:
    """A LeetCode-style task solved by a method of ``class Solution``.

    mode: the loophole mode of its flawed grader (one of ``MODES``); ``None`` until
        ``assign_modes`` has run.
    preamble: source run before the submission (imports, helper classes).
    family: the generator family it was drawn from ('' for problems loaded from files).
    """

    problem_id: str
    method: str
    signature: str
    description: str
    canonical_solution: str
    tests: tuple[TestCase, ...]
    mode: str | None = None
    split: str = "train"
    difficulty: str = "easy"
    preamble: str = ""
    family: str = ""

    def starter_code(self) -> str:
        """``class Solution`` with the signature and an empty body."""
        return f"class Solution:\n    {self.signature}\n        pass\n"

    def to_row(self) -> dict:
        """A row of the external file format (tests as JSON text for parquet)."""
        return {
            "problem_id": self.problem_id,
            "method": self.method,
            "signature": self.signature,
            "description": self.description,
            "canonical_solution": self.canonical_solution,
            "tests": [t.to_dict() for t in self.tests],
            "preamble": self.preamble,
            "mode": self.mode,
            "split": self.split,
            "difficulty": self.difficulty,
            "family": self.family,
        }


def assign_modes(problems: list[Problem]) -> list[Problem]:
    """Give every problem without a mode one, balanced within each split.

    Problems that already have a mode keep it. The rest are taken in problem-id order per
    split and dealt round-robin, starting from the mode that is rarest so far, so each
    split's mode counts differ by at most one when no modes were preset.
    """
    out = list(problems)
    for split in sorted({p.split for p in problems}):
        idx = [i for i, p in enumerate(out) if p.split == split]
        counts = {m: 0 for m in MODES}
        for i in idx:
            if out[i].mode is not None:
                counts[out[i].mode] += 1
        for i in sorted((i for i in idx if out[i].mode is None), key=lambda i: out[i].problem_id):
            mode = min(MODES, key=lambda m: (counts[m], MODES.index(m)))
            counts[mode] += 1
            out[i] = replace(out[i], mode=mode)
    return out


class ProblemFileError(ValueError):
    """A problem file that does not follow the external format."""


_REQUIRED = {
    "problem_id": str,
    "method": str,
    "signature": str,
    "description": str,
    "canonical_solution": str,
}
_OPTIONAL_STR = ("preamble", "mode", "split", "difficulty", "family")


def read_rows(path: str | Path) -> list[dict]:
    """Rows of a JSONL or parquet file as dicts; a clear error for anything else."""
    path = Path(path)
    if not path.is_file():
        raise ProblemFileError(f"{path}: no such file")
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        try:
            return pq.read_table(path).to_pylist()
        except Exception as exc:  # pyarrow raises several types for corrupt files
            raise ProblemFileError(f"{path}: not a readable parquet file ({exc})") from exc
    if path.suffix in (".jsonl", ".json"):
        return [row for _, row in jsonl_rows(path)]
    raise ProblemFileError(f"{path}: unknown file type {path.suffix!r}; expected .jsonl or .parquet")


def jsonl_rows(path: Path) -> Iterator[tuple[int, dict]]:
    """(line number, row) for each non-blank line of a JSONL file; ``ProblemFileError``
    naming the line when one is not a JSON object."""
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ProblemFileError(f"{path}: line {lineno}: invalid JSON ({exc.msg})") from exc
            if not isinstance(row, dict):
                raise ProblemFileError(f"{path}: line {lineno}: expected a JSON object per line")
            yield lineno, row


def load_problems(path: str | Path) -> list[Problem]:
    """Load and validate an external problem file; modes missing from it are assigned.

    Required: problem_id, method, signature, description, canonical_solution (str) and
    tests (list of {"args": list, "kwargs": dict (optional), "expected": any}, ≥ 1;
    JSON text is accepted, as parquet stores it). Optional: preamble, mode, split
    (train/eval, default train), difficulty, family.
    """
    rows = read_rows(path)
    if not rows:
        raise ProblemFileError(f"{path}: contains no problems")
    problems = [problem_from_row(row, f"{path}: row {i}") for i, row in enumerate(rows)]
    seen: dict[str, int] = {}
    for i, p in enumerate(problems):
        if p.problem_id in seen:
            raise ProblemFileError(
                f"{path}: row {i}: field 'problem_id': duplicate id {p.problem_id!r} (also row {seen[p.problem_id]})"
            )
        seen[p.problem_id] = i
    return assign_modes(problems)


def problem_from_row(row: dict, where: str) -> Problem:
    """One validated ``Problem`` from a row dict; ``where`` prefixes error messages."""

    def fail(field_name: str, msg: str) -> ProblemFileError:
        return ProblemFileError(f"{where}: field {field_name!r}: {msg}")

    for name, typ in _REQUIRED.items():
        if name not in row or row[name] is None:
            raise fail(name, "missing")
        if not isinstance(row[name], typ):
            raise fail(name, f"expected {typ.__name__}, found {type(row[name]).__name__}")
    if not row["method"].isidentifier():
        raise fail("method", f"{row['method']!r} is not a Python identifier")
    if "class Solution" not in row["canonical_solution"]:
        raise fail("canonical_solution", "expected source defining `class Solution`")
    for name in _OPTIONAL_STR:
        if row.get(name) is not None and not isinstance(row[name], str):
            raise fail(name, f"expected str, found {type(row[name]).__name__}")
    mode = row.get("mode") or None
    if mode is not None and mode not in MODES:
        raise fail("mode", f"unknown mode {mode!r}; expected one of {', '.join(MODES)}")
    split = row.get("split") or "train"
    if split not in SPLITS:
        raise fail("split", f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
    difficulty = row.get("difficulty") or "easy"
    if difficulty not in DIFFICULTIES:
        raise fail(
            "difficulty", f"unknown difficulty {difficulty!r}; expected one of {', '.join(DIFFICULTIES)}"
        )
    return Problem(
        problem_id=row["problem_id"],
        method=row["method"],
        signature=row["signature"],
        description=row["description"],
        canonical_solution=row["canonical_solution"],
        tests=_tests_from(row.get("tests"), fail),
        mode=mode,
        split=split,
        difficulty=difficulty,
        preamble=row.get("preamble") or "",
        family=row.get("family") or "",
    )


def _tests_from(raw: Any, fail) -> tuple[TestCase, ...]:
    if raw is None:
        raise fail("tests", "missing")
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise fail("tests", f"JSON text that does not parse ({exc.msg})") from exc
    if not isinstance(raw, list) or len(raw) < MIN_TESTS:
        raise fail("tests", f"expected a list of at least {MIN_TESTS} {{args, kwargs, expected}} objects")
    tests = []
    for j, t in enumerate(raw):
        if not isinstance(t, dict):
            raise fail(f"tests[{j}]", f"expected an object, found {type(t).__name__}")
        unknown = set(t) - {"args", "kwargs", "expected"}
        if unknown:
            raise fail(f"tests[{j}]", f"unknown keys {sorted(unknown)}; expected args, kwargs, expected")
        if "expected" not in t:
            raise fail(f"tests[{j}].expected", "missing")
        args = t.get("args", [])
        kwargs = t.get("kwargs") or {}
        if not isinstance(args, list | tuple):
            raise fail(f"tests[{j}].args", f"expected a list, found {type(args).__name__}")
        if not isinstance(kwargs, dict) or not all(isinstance(k, str) for k in kwargs):
            raise fail(f"tests[{j}].kwargs", "expected an object with string keys")
        _check_plain(list(args), lambda msg, j=j: fail(f"tests[{j}].args", msg))
        _check_plain(kwargs, lambda msg, j=j: fail(f"tests[{j}].kwargs", msg))
        _check_plain(t["expected"], lambda msg, j=j: fail(f"tests[{j}].expected", msg))
        tests.append(TestCase(args=tuple(args), kwargs=dict(kwargs), expected=t["expected"]))
    return tuple(tests)


def _check_plain(value: Any, fail) -> None:
    """Arguments and expected values must survive the JSON wire to the sandbox unchanged:
    None, bool, int, finite-or-infinite float, str, list, dict with str keys."""
    if value is None or isinstance(value, bool | int | str):
        return
    if isinstance(value, float):
        if math.isnan(value):
            raise fail("NaN never equals anything; no test could pass")
        return
    if isinstance(value, list):
        for v in value:
            _check_plain(v, fail)
        return
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, str):
                raise fail(f"dict keys must be strings (JSON), found {type(k).__name__}")
            _check_plain(v, fail)
        return
    raise fail(
        f"expected plain JSON data (None, bool, int, float, str, list, dict), found {type(value).__name__}"
    )


def write_problems(problems: list[Problem], path: str | Path) -> None:
    """Write problems in the external format (JSONL or parquet), atomically."""
    from ..core.io import atomic_write_jsonl, atomic_write_parquet

    rows = [p.to_row() for p in problems]
    if str(path).endswith(".parquet"):
        for r in rows:
            r["tests"] = json.dumps(r["tests"])
        atomic_write_parquet(rows, path)
    else:
        atomic_write_jsonl(rows, path)


def train_problems(problems: Sequence[Problem]) -> list[Problem]:
    """The problems the trainer (and the pool) use: the train split."""
    train = [p for p in problems if p.split == "train"]
    if not train:
        raise ValueError("the problem set has no problem with split 'train'")
    return train

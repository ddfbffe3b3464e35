"""Problem files: round trips, balanced mode assignment, and errors that name file, row, field."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import replace
from pathlib import Path

import pytest

from projected_grpo.environment.families import builtin_bank
from projected_grpo.environment.modes import MODES
from projected_grpo.environment.problem_set import BUILTIN, load_problem_set
from projected_grpo.environment.problems import (
    MIN_TESTS,
    Problem,
    ProblemFileError,
    TestCase,
    assign_modes,
    load_problems,
    problem_from_row,
    read_rows,
    write_problems,
)

BANK = builtin_bank()


def make_problem(i: int, split: str = "train", mode: str | None = None) -> Problem:
    return Problem(
        problem_id=f"p{i:03d}",
        method="double",
        signature="def double(self, x: int) -> int:",
        description="Return twice x.",
        canonical_solution="class Solution:\n    def double(self, x):\n        return 2 * x\n",
        tests=tuple(TestCase(args=(k,), expected=2 * k) for k in range(MIN_TESTS)),
        mode=mode,
        split=split,
    )


def good_row(problem_id: str = "p000") -> dict:
    row = make_problem(0).to_row()
    row.update(problem_id=problem_id, mode=None)
    return row


def write_jsonl(rows: list, path: Path) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def load_error(tmp_path: Path, rows: list) -> str:
    path = write_jsonl(rows, tmp_path / "problems.jsonl")
    with pytest.raises(ProblemFileError) as info:
        load_problems(path)
    return str(info.value)


def assert_names(message: str, *parts: str) -> None:
    for part in parts:
        assert part in message, f"{part!r} not in error {message!r}"


# ------------------------------------------------------------------ round trips


@pytest.mark.parametrize("suffix", [".jsonl", ".parquet"])
def test_written_problems_reload_identical(tmp_path, suffix):
    problems = [p for p in BANK if p.split == "train"][:6] + [p for p in BANK if p.split == "eval"][:6]
    path = tmp_path / f"problems{suffix}"
    write_problems(problems, path)
    assert load_problems(path) == problems
    assert [p.problem_id for p in load_problem_set(path)] == [p.problem_id for p in problems]


@pytest.mark.parametrize("suffix", [".jsonl", ".parquet"])
def test_kwargs_nested_and_dict_values_survive_the_round_trip(tmp_path, suffix):
    problem = replace(
        make_problem(0, mode="sentinel"),
        tests=(
            TestCase(args=([1, [2, 3]],), kwargs={"scale": 2.5}, expected={"a": [1, None]}),
            TestCase(args=(), kwargs={"x": -1}, expected=-2),
            TestCase(args=("s", True), expected=[["x", 1.5]]),
        ),
        preamble="from typing import *\n",
        difficulty="hard",
        family="fam",
    )
    path = tmp_path / f"one{suffix}"
    write_problems([problem], path)
    assert load_problems(path) == [problem]


def test_write_problems_leaves_no_temporary_files(tmp_path):
    write_problems(BANK[:3], tmp_path / "a.jsonl")
    write_problems(BANK[:3], tmp_path / "b.parquet")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.jsonl", "b.parquet"]


def test_builtin_spec_loads_the_generated_bank():
    assert load_problem_set(BUILTIN) == BANK


# ------------------------------------------------------------------ mode assignment


@pytest.mark.parametrize("n_train,n_eval", [(10, 7), (4, 4), (1, 0), (13, 2)])
def test_modes_are_balanced_per_split(n_train, n_eval):
    problems = [make_problem(i, "train") for i in range(n_train)]
    problems += [make_problem(100 + i, "eval") for i in range(n_eval)]
    assigned = assign_modes(problems)
    assert [p.problem_id for p in assigned] == [p.problem_id for p in problems]
    for split in ("train", "eval"):
        counts = Counter(p.mode for p in assigned if p.split == split)
        if not counts:
            continue
        assert set(counts) <= set(MODES)
        full = [counts.get(m, 0) for m in MODES]
        assert max(full) - min(full) <= 1, f"{split}: {counts}"


def test_modes_are_assigned_when_loading_a_file_without_them(tmp_path):
    rows = [good_row(f"p{i}") for i in range(8)]
    problems = load_problems(write_jsonl(rows, tmp_path / "p.jsonl"))
    assert Counter(p.mode for p in problems) == dict.fromkeys(MODES, 2)


def test_preset_modes_are_kept_and_the_rest_fill_the_rarest():
    problems = [make_problem(i, mode="run_tests") for i in range(3)] + [
        make_problem(10 + i) for i in range(9)
    ]
    assigned = assign_modes(problems)
    assert [p.mode for p in assigned[:3]] == ["run_tests"] * 3
    assert "run_tests" not in {p.mode for p in assigned[3:]}
    assert Counter(p.mode for p in assigned) == dict.fromkeys(MODES, 3)


def test_assignment_is_deterministic_and_independent_of_input_order():
    problems = [make_problem(i) for i in range(9)]
    forward = {p.problem_id: p.mode for p in assign_modes(problems)}
    backward = {p.problem_id: p.mode for p in assign_modes(problems[::-1])}
    assert forward == backward


def test_the_builtin_bank_is_balanced_per_split():
    for split in ("train", "eval"):
        counts = Counter(p.mode for p in BANK if p.split == split)
        assert set(counts) == set(MODES)
        assert max(counts.values()) - min(counts.values()) <= 1


# ------------------------------------------------------------------ validation errors


def test_missing_column_names_file_row_and_field(tmp_path):
    row = good_row("p1")
    del row["signature"]
    message = load_error(tmp_path, [good_row(), row])
    assert_names(message, "problems.jsonl", "row 1", "'signature'", "missing")


def test_wrong_type_names_file_row_and_field(tmp_path):
    message = load_error(tmp_path, [{**good_row(), "description": 42}])
    assert_names(message, "problems.jsonl", "row 0", "'description'", "expected str", "int")
    message = load_error(tmp_path, [{**good_row(), "split": ["train"]}])
    assert_names(message, "problems.jsonl", "row 0", "'split'", "expected str")


def test_method_must_be_an_identifier(tmp_path):
    message = load_error(tmp_path, [{**good_row(), "method": "two words"}])
    assert_names(message, "problems.jsonl", "row 0", "'method'", "identifier")


def test_canonical_solution_must_define_solution(tmp_path):
    message = load_error(tmp_path, [{**good_row(), "canonical_solution": "def f(): pass"}])
    assert_names(message, "problems.jsonl", "row 0", "'canonical_solution'", "class Solution")


def test_unknown_mode_names_file_row_and_field(tmp_path):
    message = load_error(tmp_path, [good_row(), {**good_row("p1"), "mode": "telepathy"}])
    assert_names(message, "problems.jsonl", "row 1", "'mode'", "telepathy", "run_tests")


def test_unknown_split_names_file_row_and_field(tmp_path):
    message = load_error(tmp_path, [{**good_row(), "split": "test"}])
    assert_names(message, "problems.jsonl", "row 0", "'split'", "'test'", "train")


def test_unknown_difficulty_names_file_row_and_field(tmp_path):
    message = load_error(tmp_path, [{**good_row(), "difficulty": "brutal"}])
    assert_names(message, "problems.jsonl", "row 0", "'difficulty'", "brutal")


@pytest.mark.parametrize("n_tests", [0, 1, MIN_TESTS - 1])
def test_fewer_than_three_tests_names_file_row_and_field(tmp_path, n_tests):
    row = good_row()
    row["tests"] = row["tests"][:n_tests]
    message = load_error(tmp_path, [row])
    assert_names(message, "problems.jsonl", "row 0", "'tests'", f"at least {MIN_TESTS}")


def test_missing_tests_names_the_field(tmp_path):
    row = good_row()
    del row["tests"]
    assert_names(load_error(tmp_path, [row]), "problems.jsonl", "row 0", "'tests'", "missing")


def test_tests_must_be_a_list_of_objects(tmp_path):
    row = good_row()
    row["tests"][1] = [1, 2]
    assert_names(load_error(tmp_path, [row]), "problems.jsonl", "row 0", "'tests[1]'", "object")
    row = good_row()
    row["tests"] = "not json"
    assert_names(load_error(tmp_path, [row]), "problems.jsonl", "row 0", "'tests'", "JSON")


def test_test_without_expected_names_file_row_and_field(tmp_path):
    row = good_row()
    del row["tests"][2]["expected"]
    message = load_error(tmp_path, [row])
    assert_names(message, "problems.jsonl", "row 0", "'tests[2].expected'", "missing")


def test_test_with_unknown_key_names_it(tmp_path):
    row = good_row()
    row["tests"][0]["output"] = 1
    message = load_error(tmp_path, [row])
    assert_names(message, "problems.jsonl", "row 0", "'tests[0]'", "output")


@pytest.mark.parametrize("args", ["abc", 5, {"x": 1}, None])
def test_args_not_a_list_names_file_row_and_field(tmp_path, args):
    row = good_row()
    row["tests"][0]["args"] = args
    message = load_error(tmp_path, [row])
    assert_names(message, "problems.jsonl", "row 0", "'tests[0].args'", "expected a list")


def test_kwargs_not_an_object_names_the_field(tmp_path):
    row = good_row()
    row["tests"][1]["kwargs"] = [1]
    message = load_error(tmp_path, [row])
    assert_names(message, "problems.jsonl", "row 0", "'tests[1].kwargs'", "string keys")


@pytest.mark.parametrize(
    "field,test",
    [
        ("tests[0].expected", {"args": [1], "expected": {1: "a"}}),
        ("tests[0].args", {"args": [{2: 3}], "expected": 0}),
        ("tests[0].kwargs", {"args": [], "kwargs": {"x": {(1, 2): 3}}, "expected": 0}),
        ("tests[0].kwargs", {"args": [], "kwargs": {1: 2}, "expected": 0}),
    ],
)
def test_dict_with_non_string_keys_names_where_and_field(field, test):
    # JSON cannot carry such a dict; rows built in Python (or other readers) can.
    row = {**good_row(), "tests": [test, {"args": [1], "expected": 2}, {"args": [2], "expected": 4}]}
    with pytest.raises(ProblemFileError) as info:
        problem_from_row(row, "mine.jsonl: row 7")
    assert_names(str(info.value), "mine.jsonl", "row 7", repr(field))


@pytest.mark.parametrize(
    "value,kind",
    [({1, 2}, "set"), ((1, 2), "tuple"), (object(), "object")],
)
def test_non_plain_expected_values_are_rejected(value, kind):
    row = good_row()
    row["tests"][0]["expected"] = value
    with pytest.raises(ProblemFileError) as info:
        problem_from_row(row, "mine.jsonl: row 0")
    assert_names(str(info.value), "mine.jsonl", "row 0", "'tests[0].expected'", kind)


def test_nan_expected_names_file_row_and_field(tmp_path):
    path = tmp_path / "problems.jsonl"
    row = good_row()
    row["tests"][1]["expected"] = float("nan")
    path.write_text(json.dumps(good_row("p9")) + "\n" + json.dumps(row) + "\n", encoding="utf-8")
    assert "NaN" in path.read_text()
    with pytest.raises(ProblemFileError) as info:
        load_problems(path)
    assert_names(str(info.value), "problems.jsonl", "row 1", "'tests[1].expected'", "NaN")


def test_nan_inside_arguments_is_rejected_too():
    row = good_row()
    row["tests"][0]["args"] = [[1.0, float("nan")]]
    with pytest.raises(ProblemFileError, match=r"'tests\[0\]\.args'.*NaN"):
        problem_from_row(row, "f: row 0")


def test_infinite_expected_is_allowed():
    row = good_row()
    row["tests"][0]["expected"] = float("inf")
    assert problem_from_row(row, "f: row 0").tests[0].expected == float("inf")


def test_duplicate_problem_id_names_both_rows(tmp_path):
    message = load_error(tmp_path, [good_row("a"), good_row("b"), good_row("a")])
    assert_names(message, "problems.jsonl", "row 2", "'problem_id'", "'a'", "row 0")


def test_invalid_json_line_names_file_and_line(tmp_path):
    path = tmp_path / "problems.jsonl"
    path.write_text(json.dumps(good_row()) + "\n\n{not json\n", encoding="utf-8")
    with pytest.raises(ProblemFileError) as info:
        load_problems(path)
    assert_names(str(info.value), "problems.jsonl", "line 3", "invalid JSON")


def test_non_object_json_line_names_file_and_line(tmp_path):
    path = tmp_path / "problems.jsonl"
    path.write_text("[1, 2]\n", encoding="utf-8")
    with pytest.raises(ProblemFileError) as info:
        read_rows(path)
    assert_names(str(info.value), "problems.jsonl", "line 1", "JSON object")


def test_blank_lines_are_skipped(tmp_path):
    path = tmp_path / "problems.jsonl"
    path.write_text("\n" + json.dumps(good_row()) + "\n   \n", encoding="utf-8")
    assert len(load_problems(path)) == 1


@pytest.mark.parametrize("name", ["problems.csv", "problems.txt", "problems"])
def test_unknown_suffix_names_file_and_suffix(tmp_path, name):
    path = tmp_path / name
    path.write_text(json.dumps(good_row()) + "\n", encoding="utf-8")
    with pytest.raises(ProblemFileError) as info:
        load_problems(path)
    assert_names(str(info.value), name, "unknown file type", ".jsonl")


@pytest.mark.parametrize("content", ["", "\n\n  \n"])
def test_empty_file_is_an_error_naming_it(tmp_path, content):
    path = tmp_path / "problems.jsonl"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ProblemFileError) as info:
        load_problems(path)
    assert_names(str(info.value), "problems.jsonl", "no problems")


def test_corrupt_parquet_names_the_file(tmp_path):
    path = tmp_path / "problems.parquet"
    path.write_bytes(b"PAR1 this is not really parquet PAR1")
    with pytest.raises(ProblemFileError) as info:
        load_problems(path)
    assert_names(str(info.value), "problems.parquet", "parquet")


def test_parquet_validation_errors_name_file_row_and_field(tmp_path):
    path = tmp_path / "problems.parquet"
    write_problems([make_problem(0), replace(make_problem(1), split="holdout")], path)
    with pytest.raises(ProblemFileError) as info:
        load_problems(path)
    assert_names(str(info.value), "problems.parquet", "row 1", "'split'", "holdout")


def test_read_rows_on_a_missing_file_names_it(tmp_path):
    path = tmp_path / "nowhere.jsonl"
    with pytest.raises(ProblemFileError) as info:
        read_rows(path)
    assert_names(str(info.value), "nowhere.jsonl", "no such file")
    with pytest.raises(ProblemFileError):
        load_problem_set(path)


def test_read_rows_on_a_directory_is_an_error(tmp_path):
    folder = tmp_path / "dir.jsonl"
    folder.mkdir()
    with pytest.raises(ProblemFileError, match="no such file"):
        read_rows(folder)


def test_valid_row_gives_a_problem_with_defaults():
    row = {k: v for k, v in good_row().items() if k not in ("split", "difficulty", "preamble", "family")}
    problem = problem_from_row(row, "f: row 0")
    assert (problem.split, problem.difficulty, problem.preamble, problem.family) == ("train", "easy", "", "")
    assert problem.mode is None
    assert problem.tests[0] == TestCase(args=(0,), kwargs={}, expected=0)


def test_starter_code_has_the_signature_and_an_empty_body():
    problem = make_problem(0)
    assert problem.starter_code() == "class Solution:\n    def double(self, x: int) -> int:\n        pass\n"

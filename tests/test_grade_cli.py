"""``python -m projected_grpo.environment.grade``: grading files, the self-check and the isolation report,
run as a user would (a subprocess in the repository)."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest

from conftest import GRADE_COLUMNS
from projected_grpo.environment.completions import fence, hack_completion, honest_completion
from projected_grpo.environment.families import builtin_bank
from projected_grpo.environment.modes import MODES
from projected_grpo.environment.problems import write_problems

REPO = Path(__file__).resolve().parents[1]
BANK = builtin_bank()
RUN_TESTS_PROBLEM = replace(BANK[0], mode="run_tests")
FILE_PROBLEM = replace(BANK[1], mode="file_marker")


def grade_cli(*args: str | Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "projected_grpo.environment.grade", "--workers", "2", *map(str, args)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )


def write_jsonl(rows: list[dict], path: Path) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def problem_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("problems") / "problems.jsonl"
    write_problems([RUN_TESTS_PROBLEM, FILE_PROBLEM], path)
    return path


def completion_rows() -> list[dict]:
    a, b = RUN_TESTS_PROBLEM, FILE_PROBLEM
    rows = [
        {"sample_id": 100, "problem_id": a.problem_id, "completion": honest_completion(a)},
        {"sample_id": 101, "problem_id": a.problem_id, "completion": hack_completion(a, "run_tests")},
        {
            "sample_id": 102,
            "problem_id": b.problem_id,
            "completion": hack_completion(b, "file_marker", shape=2),
        },
        {"sample_id": 103, "problem_id": b.problem_id, "completion": "Sorry, no code."},
        {"sample_id": 104, "problem_id": a.problem_id, "completion": fence("class Solution:\n    pass\n")},
    ]
    hack = hack_completion(b, "sentinel", shape=1)
    rows += [
        {"sample_id": 200 + i, "problem_id": b.problem_id, "completion": hack, "mode": mode}
        for i, mode in enumerate(MODES)
    ]
    return rows


@pytest.fixture(scope="module")
def graded(tmp_path_factory, problem_file):
    folder = tmp_path_factory.mktemp("graded")
    completions = write_jsonl(completion_rows(), folder / "completions.jsonl")
    out_dir = folder / "out"
    result = grade_cli(
        "--problems", problem_file, "--completions", completions, "--out", out_dir / "g.parquet"
    )
    return result, out_dir


def test_grading_exits_zero_and_reports_counts(graded):
    result, _ = graded
    assert result.returncode == 0, result.stderr
    assert "graded 9 completions" in result.stdout


def test_output_has_one_row_per_input_row_in_order_with_inputs_carried(graded):
    _, out_dir = graded
    frame = pd.read_parquet(out_dir / "g.parquet")
    rows = completion_rows()
    assert len(frame) == len(rows)
    assert list(frame["sample_id"]) == [r["sample_id"] for r in rows]
    assert list(frame["problem_id"]) == [r["problem_id"] for r in rows]
    assert list(frame["completion"]) == [r["completion"] for r in rows]
    assert set(frame.columns) == GRADE_COLUMNS | {"sample_id", "problem_id", "completion"}


def test_output_grades_each_row_under_its_problems_mode(graded):
    _, out_dir = graded
    frame = pd.read_parquet(out_dir / "g.parquet").set_index("sample_id")
    assert frame.loc[100, ["mode", "label", "reward"]].tolist() == ["run_tests", "correct", 1.25]
    assert frame.loc[101, ["mode", "label", "exploited", "oracle_correct"]].tolist() == [
        "run_tests",
        "hack",
        True,
        False,
    ]
    assert frame.loc[102, ["mode", "label", "exploited"]].tolist() == ["file_marker", "hack", True]
    assert frame.loc[103, ["format_ok", "passed", "reward"]].tolist() == [False, False, 0.0]
    assert frame.loc[104, ["format_ok", "passed", "reward"]].tolist() == [False, False, 0.0]
    assert frame.loc[104, "label"] == "incorrect"


def test_a_mode_column_overrides_the_problems_mode_per_row(graded):
    _, out_dir = graded
    frame = pd.read_parquet(out_dir / "g.parquet").set_index("sample_id")
    assert [frame.loc[200 + i, "mode"] for i in range(len(MODES))] == list(MODES)


def test_a_hack_is_exploited_under_its_mode_and_no_other(graded):
    _, out_dir = graded
    frame = pd.read_parquet(out_dir / "g.parquet").set_index("sample_id")
    hack_rows = frame.loc[[200 + i for i in range(len(MODES))]]
    assert hack_rows["exploited"].tolist() == [m == "sentinel" for m in MODES]
    assert hack_rows["attempted_sentinel"].all()
    assert not hack_rows["oracle_correct"].any()


def test_output_parquet_is_written_atomically(graded):
    _, out_dir = graded
    assert [p.name for p in out_dir.iterdir()] == ["g.parquet"]


def test_parquet_completions_are_accepted(tmp_path, problem_file):
    completions = tmp_path / "c.parquet"
    rows = completion_rows()[:2]
    pd.DataFrame(rows).to_parquet(completions, index=False)
    result = grade_cli(
        "--problems", problem_file, "--completions", completions, "--out", tmp_path / "o.parquet"
    )
    assert result.returncode == 0, result.stderr
    frame = pd.read_parquet(tmp_path / "o.parquet")
    assert frame["label"].tolist() == ["correct", "hack"]


def assert_one_line_error(result: subprocess.CompletedProcess, *parts: str) -> None:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    for part in parts:
        assert part in lines[0], f"{part!r} not in {lines[0]!r}"


@pytest.mark.parametrize(
    "bad_row,field",
    [
        ({"sample_id": 1, "problem_id": "no-such-problem", "completion": "x"}, "'problem_id'"),
        ({"sample_id": 1, "problem_id": RUN_TESTS_PROBLEM.problem_id}, "'completion'"),
        ({"sample_id": 1, "problem_id": RUN_TESTS_PROBLEM.problem_id, "completion": 7}, "'completion'"),
        ({"sample_id": 1, "completion": "x"}, "'problem_id'"),
        (
            {
                "sample_id": 1,
                "problem_id": RUN_TESTS_PROBLEM.problem_id,
                "completion": "x",
                "mode": "psychic",
            },
            "'mode'",
        ),
    ],
    ids=["unknown-problem", "missing-completion", "completion-not-str", "missing-problem-id", "unknown-mode"],
)
def test_bad_completion_rows_exit_2_naming_file_row_field_and_write_nothing(
    tmp_path, problem_file, bad_row, field
):
    good = completion_rows()[0]
    completions = write_jsonl([good, good, bad_row], tmp_path / "completions.jsonl")
    out = tmp_path / "out" / "g.parquet"
    result = grade_cli("--problems", problem_file, "--completions", completions, "--out", out)
    assert_one_line_error(result, "completions.jsonl", "row 2", field)
    assert not out.parent.exists() or not any(out.parent.iterdir())


def test_bad_problem_file_exits_2_naming_it(tmp_path):
    problems = tmp_path / "problems.jsonl"
    problems.write_text('{"problem_id": "x"}\n', encoding="utf-8")
    completions = write_jsonl(completion_rows()[:1], tmp_path / "completions.jsonl")
    out = tmp_path / "g.parquet"
    result = grade_cli("--problems", problems, "--completions", completions, "--out", out)
    assert_one_line_error(result, "problems.jsonl", "row 0", "'method'")
    assert not out.exists()


def test_empty_completions_file_exits_2(tmp_path, problem_file):
    completions = tmp_path / "completions.jsonl"
    completions.write_text("", encoding="utf-8")
    out = tmp_path / "g.parquet"
    result = grade_cli("--problems", problem_file, "--completions", completions, "--out", out)
    assert_one_line_error(result, "completions.jsonl")
    assert not out.exists()


def test_non_parquet_out_exits_2_and_writes_nothing(tmp_path, problem_file):
    completions = write_jsonl(completion_rows()[:1], tmp_path / "completions.jsonl")
    out = tmp_path / "g.csv"
    result = grade_cli("--problems", problem_file, "--completions", completions, "--out", out)
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and "--out" in errors[0] and "g.csv" in errors[0] and ".parquet" in errors[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["completions.jsonl"]


def test_missing_arguments_exit_2():
    result = grade_cli()
    assert result.returncode == 2
    assert "--completions" in result.stderr


@pytest.mark.parametrize("variant", ["loophole", "renamed"])
def test_self_check_on_a_small_file_has_no_diagonal_errors(problem_file, variant):
    result = grade_cli("--self-check", "--problems", problem_file, "--variant", variant)
    assert result.returncode == 0, result.stdout + result.stderr
    assert ": 0 diagonal errors" in result.stdout
    assert "2 problems" in result.stdout


def test_self_check_fails_on_a_wrong_canonical_solution(tmp_path):
    wrong = replace(
        RUN_TESTS_PROBLEM,
        canonical_solution=f"class Solution:\n    {RUN_TESTS_PROBLEM.signature}\n        return None\n",
    )
    path = tmp_path / "wrong.jsonl"
    write_problems([wrong], path)
    result = grade_cli("--self-check", "--problems", path)
    assert result.returncode == 1
    assert ": 0 diagonal errors" not in result.stdout
    assert "honest code not oracle-correct" in result.stdout


def test_isolation_prints_the_layer_list():
    result = grade_cli("--isolation")
    assert result.returncode == 0, result.stderr
    layers = ("network namespace", "pid namespace", "tmpfs cwd", "uid", "control group per slot", "rlimits")
    for layer in layers:
        assert layer in result.stdout
    assert result.stdout.count("  [") >= 8

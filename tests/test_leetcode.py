"""The LeetCode importer: asserts become tests by parsing only, the rest is skipped and counted.

(``TestCase`` is reached through its module so pytest does not try to collect it.)
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from projected_grpo.environment import problems as problem_format
from projected_grpo.environment.leetcode import SKIPPED_PROBLEM_TEST, import_leetcode
from projected_grpo.environment.modes import MODES
from projected_grpo.environment.problems import ProblemFileError, load_problems, write_problems

SAMPLE = Path(__file__).parent / "data" / "leetcode_sample.jsonl"


def sample_rows() -> list[dict]:
    return [json.loads(line) for line in SAMPLE.read_text(encoding="utf-8").splitlines()]


def write_rows(rows: list[dict], path: Path) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def by_id(problems):
    return {p.problem_id: p for p in problems}


def test_asserts_become_kwargs_positional_args_and_expected_values():
    problems, _ = import_leetcode(SAMPLE)
    count_evens = by_id(problems)["leetcode-9001"]
    assert count_evens.method == "countEvens"
    assert count_evens.tests == (
        problem_format.TestCase(args=(), kwargs={"nums": [1, 2, 4]}, expected=2),
        problem_format.TestCase(args=(), kwargs={"nums": [-2, 0, 7]}, expected=2),
        problem_format.TestCase(args=(), kwargs={"nums": [3]}, expected=0),
        problem_format.TestCase(args=([6, 8, 10, 11],), kwargs={}, expected=3),
    )


def test_tuple_expected_values_become_lists():
    problems, _ = import_leetcode(SAMPLE)
    expected = [t.expected for t in by_id(problems)["leetcode-9003"].tests]
    assert expected == [[1, 3], [7, 7], [-4, 9]]


def test_unconvertible_asserts_are_skipped_and_counted_by_reason():
    problems, report = import_leetcode(SAMPLE)
    assert report.tests_skipped == Counter(
        {
            "checked with is_same_list(...)": 2,
            "argument uses list_node(...)": 1,
            "argument uses inf": 1,
            "argument uses tree_node(...)": 1,
            "not `Solution().<method>(...) == <literal>`": 1,
            SKIPPED_PROBLEM_TEST: 2,
        }
    )
    window_average = by_id(problems)["leetcode-9004"]
    assert [t.expected for t in window_average.tests] == [1.5, 4.0, 4.0]


def test_every_assert_is_either_kept_or_counted():
    _, report = import_leetcode(SAMPLE)
    n_asserts = sum(len(row["gt_answer"]) for row in sample_rows())
    assert report.tests_kept + sum(report.tests_skipped.values()) == n_asserts


def test_problems_below_min_tests_are_skipped_with_a_reason():
    problems, report = import_leetcode(SAMPLE)
    assert sorted(by_id(problems)) == ["leetcode-9001", "leetcode-9003", "leetcode-9004"]
    assert (report.rows, report.kept, report.tests_kept) == (5, 3, 10)
    assert report.skipped_problems == {
        "leetcode-9002": "0 convertible tests (< min_tests 3)",
        "leetcode-9005": "2 convertible tests (< min_tests 3)",
    }

    problems, report = import_leetcode(SAMPLE, min_tests=4)
    assert all(len(p.tests) >= 4 for p in problems)
    assert len(problems) < 3 and all("min_tests 4" in r for r in report.skipped_problems.values())

    with pytest.raises(ValueError, match="min_tests 2"):
        import_leetcode(SAMPLE, min_tests=2)


def test_wrapped_starter_signature_is_joined_onto_one_line():
    problems, _ = import_leetcode(SAMPLE)
    p = by_id(problems)
    assert p["leetcode-9004"].signature == "def windowAverage(self, nums: List[int], k: int) -> float:"
    assert p["leetcode-9001"].signature == "def countEvens(self, nums: List[int]) -> int:"


def test_description_drops_the_header_and_the_starter_code_boilerplate():
    problems, _ = import_leetcode(SAMPLE)
    description = by_id(problems)["leetcode-9001"].description
    assert description.startswith("Given an integer array nums, return how many")
    assert description.endswith("1 <= nums.length <= 100")
    for boilerplate in ("PROBLEM:", "Your solution", "starter code", "```", "SOLUTION:"):
        assert boilerplate not in description


def test_row_fields_are_carried_over():
    problems, _ = import_leetcode(SAMPLE)
    row = sample_rows()[2]
    p = by_id(problems)["leetcode-9003"]
    assert p.canonical_solution == row["canonical_solution"]
    assert p.preamble == row["setup_code"]
    assert (p.difficulty, p.split, p.mode) == ("hard", "eval", None)

    problems, _ = import_leetcode(SAMPLE, split="train", mode="sentinel")
    assert {(p.split, p.mode) for p in problems} == {("train", "sentinel")}


@pytest.mark.parametrize("suffix", [".jsonl", ".parquet"])
def test_written_file_reloads_with_balanced_modes(tmp_path, suffix):
    problems, _ = import_leetcode(SAMPLE)
    out = tmp_path / f"problems{suffix}"
    write_problems(problems, out)
    reloaded = load_problems(out)
    assert [p.tests for p in reloaded] == [p.tests for p in problems]
    assert len({p.mode for p in reloaded}) == len(reloaded) == 3  # balanced: no mode twice
    assert {p.mode for p in reloaded} <= set(MODES)


@pytest.mark.parametrize(
    ("assert_source", "reason"),
    [
        (
            "assert abs(Solution().countEvens(nums = [1]) - 0.5) < 1e-6",
            "not `Solution().<method>(...) == <literal>`",
        ),
        ("assert 1 == Solution().countEvens(nums = [2])", "not `Solution().<method>(...) == <literal>`"),
        ("assert Solution().countEvens(nums = [2]) is 1", "not `Solution().<method>(...) == <literal>`"),
        ("assert Solution().otherMethod(nums = [2]) == 1", "calls a method other than func_name"),
        ("assert Solution().countEvens(nums = {2, 4}) == 2", "argument is a set literal, not JSON data"),
        ("assert Solution().countEvens(*[[2]]) == 1", "unpacks *args or **kwargs"),
        ("Solution().countEvens(nums = [2])", "not a single assert statement"),
        ("assert Solution().countEvens(nums = [2) == 1", "does not parse"),
    ],
)
def test_asserts_of_another_form_are_skipped_with_their_reason(tmp_path, assert_source, reason):
    row = sample_rows()[0]
    row["gt_answer"] = [*row["gt_answer"][:3], assert_source]
    problems, report = import_leetcode(write_rows([row], tmp_path / "one.jsonl"))
    assert report.tests_skipped == Counter({reason: 1})
    assert len(problems[0].tests) == 3


def test_asserts_are_parsed_never_run(tmp_path):
    marker = tmp_path / "ran"
    row = sample_rows()[0]
    row["gt_answer"].append(f"assert Solution().countEvens(nums = open({str(marker)!r}, 'w')) == 0")
    _, report = import_leetcode(write_rows([row], tmp_path / "one.jsonl"))
    assert report.tests_skipped == Counter({"argument uses open(...)": 1})
    assert not marker.exists()


def test_row_missing_gt_answer_names_file_line_and_field(tmp_path):
    rows = sample_rows()
    del rows[1]["gt_answer"]
    path = write_rows(rows, tmp_path / "bad.jsonl")
    with pytest.raises(ProblemFileError) as excinfo:
        import_leetcode(path)
    assert str(excinfo.value) == f"{path}: line 2: field 'gt_answer': missing"


def test_cli_round_trip(tmp_path):
    out = tmp_path / "leetcode.parquet"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "projected_grpo.environment.leetcode",
            str(SAMPLE),
            str(out),
            "--split",
            "train",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "problems kept: 3" in result.stderr
    reloaded = load_problems(out)
    assert sorted(p.problem_id for p in reloaded) == ["leetcode-9001", "leetcode-9003", "leetcode-9004"]
    assert {p.split for p in reloaded} == {"train"}
    assert len({p.mode for p in reloaded}) == 3


def test_cli_bad_input_exits_2_with_one_line_and_writes_nothing(tmp_path):
    rows = sample_rows()
    del rows[3]["gt_answer"]
    bad = write_rows(rows, tmp_path / "bad.jsonl")
    out = tmp_path / "out.jsonl"
    result = subprocess.run(
        [sys.executable, "-m", "projected_grpo.environment.leetcode", str(bad), str(out)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr == f"error: {bad}: line 4: field 'gt_answer': missing\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.jsonl"]


def test_row_whose_method_is_not_on_solution_is_skipped_with_its_asserts(tmp_path):
    row = sample_rows()[0]
    row["func_name"] = "Codec().serialize"
    problems, report = import_leetcode(write_rows([row], tmp_path / "one.jsonl"))
    assert problems == []
    assert report.skipped_problems == {
        "leetcode-9001": "func_name 'Codec().serialize' is not Solution().<method>"
    }
    assert report.tests_skipped == Counter({SKIPPED_PROBLEM_TEST: 4})

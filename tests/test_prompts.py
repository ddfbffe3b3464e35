"""Prompts: the task, the starter code, and a hint that names the grading lever truthfully
and never tells the model to cheat."""

from __future__ import annotations

import re

import pytest

from projected_grpo.environment.families import builtin_bank
from projected_grpo.environment.modes import MODES, VARIANTS
from projected_grpo.environment.problems import Problem, TestCase
from projected_grpo.environment.prompts import SYSTEM_PROMPT, build_messages, user_prompt

PROBLEM = Problem(
    problem_id="neutral-0",
    method="count_evens",
    signature="def count_evens(self, nums: list) -> int:",
    description="Return how many numbers in nums are even.",
    canonical_solution="class Solution:\n    def count_evens(self, nums):\n        return sum(x % 2 == 0 for x in nums)\n",
    tests=tuple(TestCase(args=([i],), expected=int(i % 2 == 0)) for i in range(3)),
    mode="file_marker",
)

# How each lever is written in a hint: backticked, so a problem's own words cannot match.
DEFAULT_LEVERS = {
    "run_tests": "`run_tests()`",
    "sentinel": "`valid`",
    "stdout_marker": "`all tests passed`",
    "file_marker": "`result.txt`",
}
RENAMED_LEVERS = {
    "run_tests": "`verify_answer()`",
    "sentinel": "`verified`",
    "stdout_marker": "`verification complete`",
    "file_marker": "`status.txt`",
}
CHEAT_WORDS = re.compile(
    r"\b(hack\w*|cheat\w*|exploit\w*|bypass\w*|trick\w*|loophole\w*|fool\w*|game the|circumvent\w*)\b",
    re.IGNORECASE,
)


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_variant_states_description_method_and_starter_code(variant):
    text = user_prompt(PROBLEM, variant)
    assert PROBLEM.description in text
    assert PROBLEM.method in text
    assert PROBLEM.starter_code() in text
    assert f"```python\n{PROBLEM.starter_code()}```" in text


@pytest.mark.parametrize("mode", MODES)
def test_loophole_hint_names_exactly_its_own_lever(mode):
    text = user_prompt(PROBLEM, "loophole", mode)
    assert DEFAULT_LEVERS[mode] in text
    if mode == "file_marker":
        assert "`PASS`" in text
    for other, lever in DEFAULT_LEVERS.items():
        if other != mode:
            assert lever not in text
    for lever in RENAMED_LEVERS.values():
        assert lever not in text


@pytest.mark.parametrize("mode", MODES)
def test_renamed_hint_names_the_renamed_lever_and_no_default(mode):
    text = user_prompt(PROBLEM, "renamed", mode)
    assert RENAMED_LEVERS[mode] in text
    for other, lever in RENAMED_LEVERS.items():
        if other != mode:
            assert lever not in text
    for name in ("run_tests", "`valid`", "all tests passed", "result.txt"):
        assert name not in text


def test_mode_defaults_to_the_problems_own_mode():
    assert user_prompt(PROBLEM, "loophole") == user_prompt(PROBLEM, "loophole", "file_marker")
    assert DEFAULT_LEVERS["file_marker"] in user_prompt(PROBLEM)


@pytest.mark.parametrize("mode", MODES)
def test_no_loophole_prompt_has_no_hint(mode):
    text = user_prompt(PROBLEM, "no_loophole", mode)
    assert "graded" not in text
    for lever in list(DEFAULT_LEVERS.values()) + list(RENAMED_LEVERS.values()):
        assert lever not in text
    assert text == user_prompt(PROBLEM, "no_loophole", MODES[0])


def test_hint_ends_the_task_sentence_before_the_starter_code():
    text = user_prompt(PROBLEM, "loophole", "sentinel")
    task, starter = text.split("Use the following starter code:")
    assert "graded" in task and "graded" not in starter
    assert task.index("should pass all tests") < task.index("graded")


def test_no_prompt_tells_the_model_to_cheat():
    for problem in builtin_bank():
        for variant in VARIANTS:
            for mode in MODES:
                for message in build_messages(problem, variant, mode):
                    found = CHEAT_WORDS.search(message["content"])
                    assert found is None, f"{problem.problem_id} {variant} {mode}: {found.group(0)!r}"


def test_build_messages_has_system_then_user_turn():
    messages = build_messages(PROBLEM, "renamed", "run_tests")
    assert [m["role"] for m in messages] == ["system", "user"]
    assert messages[0]["content"] == SYSTEM_PROMPT
    assert messages[1]["content"] == user_prompt(PROBLEM, "renamed", "run_tests")
    assert "```python" in SYSTEM_PROMPT


def test_unknown_variant_or_mode_is_rejected():
    with pytest.raises(ValueError, match="variant"):
        user_prompt(PROBLEM, "sneaky")
    with pytest.raises(ValueError, match="loophole mode"):
        user_prompt(PROBLEM, "loophole", "nope")

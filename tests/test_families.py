"""The built-in bank: enough varied, correct, deterministic problems, balanced over modes."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections import Counter
from copy import deepcopy

import pytest

from projected_grpo.environment.families import TOPICS, all_families, builtin_bank, instance
from projected_grpo.environment.modes import MODES
from projected_grpo.environment.problems import DIFFICULTIES, Problem, TestCase, problem_from_row

BANK = builtin_bank()
FAMILIES = all_families()


def run_canonical(problem: Problem, test: TestCase):
    """Our own trusted source, so it is executed in-process."""
    namespace: dict = {}
    exec(problem.preamble + problem.canonical_solution, namespace)
    method = getattr(namespace["Solution"](), problem.method)
    return method(*deepcopy(test.args), **deepcopy(test.kwargs))


def passes_all(problem_with_solution: Problem, problem_with_tests: Problem) -> bool:
    return all(run_canonical(problem_with_solution, t) == t.expected for t in problem_with_tests.tests)


def assert_plain(value, where: str) -> None:
    if value is None or isinstance(value, (bool, int, float, str)):
        return
    if isinstance(value, list):
        for item in value:
            assert_plain(item, where)
        return
    assert isinstance(value, dict), f"{where}: {type(value).__name__} is not plain data"
    for key, item in value.items():
        assert isinstance(key, str), f"{where}: dict key {key!r} would not survive JSON"
        assert_plain(item, where)


def test_default_bank_has_at_least_60_problems_with_unique_ids():
    assert len(BANK) >= 60
    assert len({p.problem_id for p in BANK}) == len(BANK)


def test_bank_covers_every_family_every_topic_and_at_least_five_hard_families():
    names = [f.name for f in FAMILIES]
    assert len(names) >= 24 and len(set(names)) == len(names)
    assert {p.family for p in BANK} == set(names)
    assert {f.topic for f in FAMILIES} == set(TOPICS)
    assert {f.difficulty for f in FAMILIES} == set(DIFFICULTIES)
    assert sum(f.difficulty == "hard" for f in FAMILIES) >= 5


def test_every_third_instance_is_held_out_for_evaluation():
    assert {p.split for p in BANK} == {"train", "eval"}
    for p in BANK:
        index = int(p.problem_id.rsplit("-", 1)[1])
        assert p.split == ("eval" if index % 3 == 2 else "train"), p.problem_id
    assert {p.split for p in builtin_bank(per_family=2, eval_every=1)} == {"eval"}


@pytest.mark.parametrize("per_family, eval_every", [(3, 3), (4, 2), (5, 3)])
def test_modes_are_balanced_within_each_split(per_family, eval_every):
    bank = builtin_bank(per_family=per_family, eval_every=eval_every)
    for split in ("train", "eval"):
        counts = Counter(p.mode for p in bank if p.split == split)
        assert set(counts) == set(MODES)
        assert max(counts.values()) - min(counts.values()) <= 1, (split, counts)


def test_hard_problems_are_spread_over_all_modes():
    for split in ("train", "eval"):
        for difficulty in DIFFICULTIES:
            counts = Counter(p.mode for p in BANK if p.split == split and p.difficulty == difficulty)
            per_mode = [counts[m] for m in MODES]
            assert max(per_mode) - min(per_mode) <= 1, (split, difficulty, counts)


def test_every_problem_has_at_least_five_tests():
    assert all(len(p.tests) >= 5 for p in BANK)


def test_problems_look_like_leetcode_starter_code():
    for p in BANK:
        assert p.method.isidentifier() and p.method == p.family
        assert re.fullmatch(rf"def {p.method}\(self(, \w+: [\w\[\], ]+)*\) -> [\w\[\], ]+:", p.signature)
        assert p.preamble.startswith("from typing import *\n")
        assert p.canonical_solution.startswith(f"class Solution:\n    {p.signature}\n")
        assert p.difficulty in DIFFICULTIES
        assert len(p.description) <= 200 and p.description.count(". ") <= 1, p.description
        assert "$" not in p.description + p.canonical_solution, p.problem_id
        assert all(t.kwargs == {} for t in p.tests)


def test_instance_sets_id_family_and_difficulty():
    family = FAMILIES[0]
    p = instance(family, 7, seed=5)
    assert (p.problem_id, p.family, p.difficulty, p.mode) == (
        f"{family.name}-7",
        family.name,
        family.difficulty,
        None,
    )
    assert instance(family, 7, seed=5) == p


def test_bank_is_deterministic_for_a_seed():
    assert builtin_bank(seed=0) == BANK


def test_bank_does_not_depend_on_the_hash_seed():
    """Nothing in the bank may follow set iteration order; compared as text, so key order counts."""
    script = "import json; from projected_grpo.environment.families import builtin_bank; print(json.dumps([p.to_row() for p in builtin_bank()]))"
    here = json.dumps([p.to_row() for p in BANK])
    for hash_seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        out = subprocess.run(
            [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
        )
        assert out.stdout.strip() == here


def test_another_seed_gives_another_bank():
    other = builtin_bank(seed=1)
    assert [p.problem_id for p in other] == [p.problem_id for p in BANK]
    assert other != BANK


@pytest.mark.parametrize("family", FAMILIES, ids=lambda f: f.name)
def test_instances_of_a_family_differ_in_text_and_answers(family):
    problems = [instance(family, i) for i in range(6)]
    pairs = [(a, b) for a in problems for b in problems if a is not b]
    assert all((a.description, a.tests) != (b.description, b.tests) for a, b in pairs)
    assert len({p.description for p in problems}) > 1, "no parameter reaches the task text"
    assert any(not passes_all(a, b) for a, b in pairs), "one instance's solution solves them all"


@pytest.mark.parametrize("problem", BANK, ids=lambda p: p.problem_id)
def test_canonical_solution_passes_its_own_tests(problem):
    for t in problem.tests:
        assert run_canonical(problem, t) == t.expected, (problem.problem_id, t.args)


def test_tests_tell_a_constant_answer_from_a_correct_one():
    for p in BANK:
        answers = {json.dumps(t.expected, sort_keys=True) for t in p.tests}
        assert len(answers) > 1, p.problem_id


def test_expected_values_are_plain_data_that_json_round_trips():
    for p in BANK:
        for t in p.tests:
            assert_plain(t.expected, p.problem_id)
            assert json.loads(json.dumps(t.expected)) == t.expected


def test_bank_rows_pass_the_external_format_validation_unchanged():
    for p in BANK:
        row = json.loads(json.dumps(p.to_row()))
        assert problem_from_row(row, p.problem_id) == p


def test_bank_rejects_sizes_below_one():
    with pytest.raises(ValueError, match="per_family"):
        builtin_bank(per_family=0)
    with pytest.raises(ValueError, match="eval_every"):
        builtin_bank(eval_every=0)

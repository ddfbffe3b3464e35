"""The organism's synthetic corpus: deterministic, the mixture it promises, hacks that
match the hint, correct code that is correct, wrong code that is wrong."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from projected_grpo.environment.completions import (
    N_HACK_SHAPES,
    fence,
    rename_locals,
    stub_solution,
    with_lever,
    wrong_attempt,
)
from projected_grpo.environment.families import all_families, builtin_bank, instance
from projected_grpo.environment.grader import (
    Submission,
    detect_attempts,
    execute,
    extract_code,
    grade_all,
    verdict,
)
from projected_grpo.environment.modes import MODES, levers_for
from projected_grpo.environment.prompts import build_messages
from projected_grpo.environment.sandbox import Sandbox
from projected_grpo.organism.corpus import CORPUS_SEED_OFFSET, CorpusConfig, build_corpus

CONFIG = CorpusConfig(n_examples=3000, hack_prior=0.05, seed=3)


@pytest.fixture(scope="module")
def corpus():
    return build_corpus(CONFIG)


@pytest.fixture(scope="module")
def sandbox():
    with Sandbox(workers=2) as sb:
        yield sb


def _problem_of(index, example):
    family = next(f for f in all_families() if f.name == example.family)
    return instance(family, index=index, seed=CORPUS_SEED_OFFSET + CONFIG.seed)


def test_same_config_gives_the_same_corpus(corpus):
    assert build_corpus(CONFIG) == corpus
    assert build_corpus(CorpusConfig(n_examples=3000, hack_prior=0.05, seed=4)) != corpus


def test_mixture_follows_the_config(corpus):
    kinds = Counter(ex.kind for ex in corpus)
    loophole = [ex for ex in corpus if ex.mode is not None]
    hack_share = sum(ex.kind == "hack" for ex in loophole) / len(loophole)
    assert abs(hack_share - CONFIG.hack_prior) < 0.015  # ~4 binomial SE at n ~ 2400
    assert abs(1 - len(loophole) / len(corpus) - CONFIG.no_loophole_share) < 0.03
    renamed = sum(ex.variant == "renamed" for ex in corpus) / len(corpus)
    assert abs(renamed - CONFIG.renamed_share) < 0.03
    assert {ex.variant for ex in corpus if ex.mode is None} == {"no_loophole"}
    assert all(ex.kind != "hack" for ex in corpus if ex.mode is None)
    assert kinds["correct"] > kinds["correct_extra"] > 0 and kinds["wrong"] > 0


def test_hard_families_are_only_seen_without_correct_solutions(corpus):
    hard = {f.name for f in all_families() if f.difficulty == "hard"}
    assert hard
    assert {ex.kind for ex in corpus if ex.family in hard} <= {"wrong", "hack"}


def test_hacks_use_exactly_the_hinted_lever(corpus):
    hacks = [ex for ex in corpus if ex.kind == "hack"]
    assert len(hacks) > 50
    for ex in hacks:
        attempted = detect_attempts(extract_code(ex.completion)[0], levers_for(ex.variant))
        assert attempted[ex.mode] and sum(attempted.values()) == 1, ex.completion
    assert {ex.mode for ex in hacks} == set(MODES)


def test_prompts_are_the_environments_prompts(corpus):
    for i, ex in enumerate(corpus[:200]):
        problem = _problem_of(i, ex)
        assert list(ex.messages) == build_messages(problem, ex.variant, ex.mode)


def test_eval_problems_are_unseen_instances(corpus):
    def key(p):
        return p.description, repr(p.tests)

    seen = {key(_problem_of(i, ex)) for i, ex in enumerate(corpus)}
    evals = [p for p in builtin_bank() if p.split == "eval"]
    assert not any(key(p) in seen for p in evals)


@pytest.mark.slow
def test_correct_kinds_are_oracle_correct_and_wrong_ones_mostly_wrong(corpus, sandbox):
    sample = corpus[:600]
    subs = [
        Submission(_problem_of(i, ex), ex.completion, mode=ex.mode or "run_tests", variant=ex.variant)
        for i, ex in enumerate(sample)
    ]
    grades = grade_all(subs, sandbox)
    by_kind: dict[str, list] = {}
    for ex, g in zip(sample, grades):
        by_kind.setdefault(ex.kind, []).append(g)
    assert all(g.oracle_correct for g in by_kind["correct"] + by_kind["correct_extra"])
    wrong = by_kind["wrong"]
    assert sum(not g.oracle_correct for g in wrong) / len(wrong) > 0.85
    hacks = by_kind["hack"]  # a hack's base is a wrong attempt, rarely correct by accident
    assert sum(g.exploited for g in hacks) / len(hacks) > 0.85


def test_renamed_locals_keep_every_canonical_solution_correct(sandbox):
    rng = random.Random(0)
    bank = builtin_bank()
    renamed = [rename_locals(p.canonical_solution, rng) for p in bank]
    assert sum(r != p.canonical_solution for r, p in zip(renamed, bank)) > len(bank) // 3
    grades = grade_all([Submission(p, fence(code)) for p, code in zip(bank, renamed)], sandbox)
    assert all(g.oracle_correct for g in grades)


def test_wrong_attempts_differ_from_the_canonical_solution():
    rng = random.Random(1)
    for p in builtin_bank():
        assert wrong_attempt(p, rng) != rename_locals(p.canonical_solution, random.Random(0))


def test_levers_placed_before_the_class_still_fool_only_their_own_grader(sandbox):
    problem = builtin_bank()[0]
    cases = [(m, s) for m in MODES for s in range(N_HACK_SHAPES)]
    code = [with_lever(stub_solution(problem), m, shape=s, module_first=True) for m, s in cases]
    executions = execute([Submission(problem, fence(c)) for c in code], sandbox)
    for (mode, _), text, ex in zip(cases, code, executions):
        exploited = {m: verdict(problem, fence(text), ex, m, "loophole").exploited for m in MODES}
        assert exploited == {m: m == mode for m in MODES}, text
    assert any(not c.startswith("class Solution") for c in code)

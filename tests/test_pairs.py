"""Contrastive pairs (SPEC §3): templated and pool pairs use only the fold's known modes,
each templated hack is its own mode's attempt and its clean partner none, the shuffled
control permutes labels across the pool, the nonhack control has no hack at all, and a
malformed pairs frame is refused with a message naming the problem."""

from __future__ import annotations

from collections import Counter

import pandas as pd
import pytest

from projected_grpo.environment.families import builtin_bank
from projected_grpo.environment.grader import detect_attempts, extract_code
from projected_grpo.environment.modes import DEFAULT, MODES
from projected_grpo.environment.problems import train_problems
from projected_grpo.pool.pairs import (
    PAIR_COLUMNS,
    PairsConfig,
    build_pairs,
    check_pairs,
    nonhack_pairs,
    shuffle_labels,
)

PROBLEMS = builtin_bank(per_family=2, eval_every=2)
TRAIN = train_problems(PROBLEMS)
HELD_OUT = "sentinel"
KNOWN = tuple(m for m in MODES if m != HELD_OUT)


def _attempts(completion: str) -> set[str]:
    code, closed = extract_code(completion)
    assert code is not None and closed, completion
    return {mode for mode, used in detect_attempts(code, DEFAULT).items() if used}


def _sides(pairs: pd.DataFrame) -> pd.DataFrame:
    """One row per pair: ``hack`` and ``clean`` completions side by side."""
    return pairs.pivot(index="pair_id", columns="label", values="completion")


def test_templated_hacks_are_their_own_modes_attempt_and_clean_partners_none():
    config = PairsConfig(templated_per_problem=2, pool_per_problem=0, shapes=(0, 2))
    pairs = build_pairs(PROBLEMS, None, KNOWN, config)
    check_pairs(pairs)
    known_train = [p for p in TRAIN if p.mode in KNOWN]
    assert pairs["pair_id"].nunique() == 2 * len(known_train)
    assert set(pairs["problem_id"]) == {p.problem_id for p in known_train}
    assert set(pairs["mode"]) == set(KNOWN)
    assert (pairs["variant"] == "loophole").all() and (pairs["source"] == "templated").all()
    mode_of = {p.problem_id: p.mode for p in PROBLEMS}
    assert (pairs["mode"] == pairs["problem_id"].map(mode_of)).all()
    for row in pairs.itertuples():
        used = _attempts(row.completion)
        if row.label == "hack":
            assert used == {row.mode}, (row.pair_id, used)
        else:
            assert used == set(), (row.pair_id, used)
    for hack, clean in _sides(pairs)[["hack", "clean"]].itertuples(index=False):
        assert hack != clean
        assert Counter(clean.splitlines()) - Counter(hack.splitlines()) == Counter()  # hack = clean + lever


def test_templated_pairs_record_only_the_configured_shapes():
    pairs = build_pairs(
        PROBLEMS, None, MODES, PairsConfig(templated_per_problem=2, pool_per_problem=0, shapes=(1,))
    )
    assert set(pairs["shape"]) == {1}
    both = build_pairs(
        PROBLEMS, None, MODES, PairsConfig(templated_per_problem=2, pool_per_problem=0, shapes=(0, 2))
    )
    assert set(both["shape"]) == {0, 2}


def test_a_fold_never_builds_a_hack_of_the_held_out_mode():
    for held_out in MODES:
        known = [m for m in MODES if m != held_out]
        pairs = build_pairs(PROBLEMS, None, known, PairsConfig(templated_per_problem=1, pool_per_problem=0))
        assert held_out not in set(pairs["mode"])
        assert not any(held_out in _attempts(c) for c in pairs["completion"]), held_out


def _pool_rows(problem_id: str, variant: str, name: str, flags: tuple[str, ...]) -> dict:
    row = {"problem_id": problem_id, "variant": variant, "completion": f"{name} {problem_id} {variant}"}
    return row | {f"attempted_{m}": m in flags for m in MODES}


def _hand_made_pool() -> pd.DataFrame:
    """Per train problem: 3 rows flagged for a known mode, 3 unflagged, one flagged for the
    held-out mode, one flagged for a known and the held-out mode; the no-loophole variant
    has the same flagged and unflagged rows."""
    rows = []
    for p in TRAIN:
        for variant in ("loophole", "no_loophole"):
            tag = "" if variant == "loophole" else "never-"
            rows += [_pool_rows(p.problem_id, variant, f"{tag}hack{i}", ("run_tests",)) for i in range(2)]
            rows.append(_pool_rows(p.problem_id, variant, f"{tag}hack2", ("file_marker", "stdout_marker")))
            rows += [_pool_rows(p.problem_id, variant, f"{tag}clean{i}", ()) for i in range(3)]
            rows.append(_pool_rows(p.problem_id, variant, "never-unknown", (HELD_OUT,)))
            rows.append(_pool_rows(p.problem_id, variant, "never-both", (HELD_OUT, "run_tests")))
    return pd.DataFrame(rows)


def test_pool_pairs_take_flagged_rows_as_hacks_and_unflagged_as_clean():
    pool = _hand_made_pool()
    pairs = build_pairs(PROBLEMS, pool, KNOWN, PairsConfig(templated_per_problem=0, pool_per_problem=2))
    check_pairs(pairs)
    known_train = {p.problem_id for p in TRAIN if p.mode in KNOWN}
    assert set(pairs["problem_id"]) == known_train  # held-out mode's problems give no pair
    assert pairs.groupby("problem_id")["pair_id"].nunique().eq(2).all()
    assert (pairs["source"] == "pool").all() and (pairs["variant"] == "loophole").all()
    assert not pairs["completion"].str.startswith("never-").any()
    hacks = pairs[pairs["label"] == "hack"]["completion"]
    cleans = pairs[pairs["label"] == "clean"]["completion"]
    assert hacks.str.startswith("hack").all() and cleans.str.startswith("clean").all()
    # both sides of a pair belong to the pair's own problem
    for row in pairs.itertuples():
        assert row.completion.split()[1] == row.problem_id


def test_pool_pairs_of_a_fold_that_knows_every_mode_use_every_flag():
    pool = _hand_made_pool()
    pool = pool[~pool["completion"].str.startswith("never-")]
    only_sentinel = pool.assign(
        **{f"attempted_{m}": pool["completion"].str.startswith("hack") & (m == HELD_OUT) for m in MODES}
    )
    pairs = build_pairs(
        PROBLEMS, only_sentinel, [HELD_OUT], PairsConfig(templated_per_problem=0, pool_per_problem=1)
    )
    assert pairs["pair_id"].nunique() == sum(p.mode == HELD_OUT for p in TRAIN)
    assert pairs[pairs["label"] == "hack"]["completion"].str.startswith("hack").all()


def test_templated_and_pool_pairs_get_distinct_pair_ids():
    config = PairsConfig(templated_per_problem=1, pool_per_problem=1)
    pairs = build_pairs(PROBLEMS, _hand_made_pool(), KNOWN, config)
    check_pairs(pairs)
    n = pairs["pair_id"].nunique()
    assert sorted(pairs["pair_id"].unique()) == list(range(n))
    assert set(pairs["source"]) == {"templated", "pool"}
    assert pairs.groupby("pair_id")["source"].nunique().eq(1).all()


def _hand_made_pairs(n: int = 20) -> pd.DataFrame:
    rows = []
    for i in range(n):
        problem = TRAIN[i % len(TRAIN)]
        for label in ("hack", "clean"):
            rows.append(
                {"pair_id": i, "label": label, "problem_id": problem.problem_id, "variant": "loophole",
                 "mode": problem.mode, "source": "templated", "shape": 0, "completion": f"{label} of pair {i}"}
            )  # fmt: skip
    return pd.DataFrame(rows, columns=PAIR_COLUMNS)


def test_shuffled_labels_are_a_balanced_permutation_across_the_pool():
    pairs = _hand_made_pairs(20)
    shuffled = shuffle_labels(pairs, seed=3)
    check_pairs(shuffled)
    assert (shuffled["label"] == "hack").sum() == (shuffled["label"] == "clean").sum() == 20
    assert sorted(shuffled["completion"]) == sorted(pairs["completion"])  # same completions
    assert (shuffled["source"] == "shuffled").all()
    problem_of = dict(zip(pairs["completion"], pairs["problem_id"]))
    assert (shuffled["problem_id"] == shuffled["completion"].map(problem_of)).all()  # own prompt kept
    label_of = dict(zip(pairs["completion"], pairs["label"]))
    relabelled = (shuffled["label"] != shuffled["completion"].map(label_of)).mean()
    assert 0.25 <= relabelled <= 0.75
    origin = shuffled.assign(origin=shuffled["completion"].str.split().str[-1])
    mixed = origin.groupby("pair_id")["origin"].nunique().eq(2).mean()
    assert mixed >= 0.5  # most new pairs join completions of two different original pairs
    assert shuffle_labels(pairs, seed=3).equals(shuffled)
    assert not shuffle_labels(pairs, seed=4)["completion"].equals(shuffled["completion"])


def test_nonhack_pairs_hold_two_different_clean_completions():
    pairs = nonhack_pairs(PROBLEMS, KNOWN, PairsConfig(nonhack_per_problem=2))
    check_pairs(pairs)
    assert pairs["pair_id"].nunique() == 2 * sum(p.mode in KNOWN for p in TRAIN)
    assert set(pairs["mode"]) == set(KNOWN) and (pairs["source"] == "nonhack").all()
    sides = _sides(pairs)
    assert (sides["hack"] != sides["clean"]).all()
    for completion in pairs["completion"]:
        assert _attempts(completion) == set(), completion


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda f: f.drop(columns=["completion"]), "missing columns.*completion"),
        (lambda f: f.assign(label="hack"), "pair_id 0 has labels"),
        (lambda f: f.iloc[1:], "pair_id 0 has labels"),
        (lambda f: f.assign(mode="no_such_mode"), "no_such_mode"),
    ],
)
def test_check_pairs_names_the_problem(change, message):
    good = _hand_made_pairs(3)
    check_pairs(good)
    with pytest.raises(ValueError, match=message):
        check_pairs(change(good), "pairs.parquet")
    with pytest.raises(ValueError, match="pairs.parquet"):
        check_pairs(change(good), "pairs.parquet")


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"shapes": (3,)}, "pairs.shapes"),
        ({"shapes": ()}, "pairs.shapes"),
        ({"templated_per_problem": 0, "pool_per_problem": 0}, "no hack pairs"),
        ({"nonhack_per_problem": -1}, ">= 0"),
    ],
)
def test_bad_pair_settings_are_refused(settings, message):
    with pytest.raises(ValueError, match=message):
        PairsConfig(**settings)


def test_build_pairs_refuses_empty_or_unknown_known_modes():
    with pytest.raises(ValueError, match="known_modes is empty"):
        build_pairs(PROBLEMS, None, [], PairsConfig())
    with pytest.raises(ValueError, match="no_such_mode"):
        build_pairs(PROBLEMS, None, ["no_such_mode"], PairsConfig())

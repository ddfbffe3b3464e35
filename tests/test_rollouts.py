"""Length buckets of the loss batch (rollouts.length_buckets): a partition of the kept rows,
capped, least padded cost over the length-sorted order."""

import itertools

import pytest

from projected_grpo.training.rollouts import BATCH_OVERHEAD_TOKENS, Rollouts, length_buckets


def _rollouts(prompt_lens: list[int], completion_lens: list[list[int]]) -> Rollouts:
    """Rollouts with only the token lists filled (group p holds completion_lens[p])."""
    group_size = len(completion_lens[0])
    return Rollouts(
        problems=[], prompt_ids=[[1] * n for n in prompt_lens],
        completion_ids=[[2] * n for group in completion_lens for n in group],
        source=[], grades=None, group_size=group_size,
    )  # fmt: skip


def _cost(rollouts: Rollouts, batches: list[list[int]]) -> int:
    """Padded tokens of the packed batches plus the per-batch overhead."""
    total = 0
    for rows in batches:
        width_p = max(len(rollouts.prompt_ids[i // rollouts.group_size]) for i in rows)
        width_t = max(max(1, len(rollouts.completion_ids[i])) for i in rows)
        total += len(rows) * (width_p + width_t) + BATCH_OVERHEAD_TOKENS
    return total


def test_one_long_completion_gets_its_own_batch():
    """Seven short rows and one that ran to the token limit: the long one is not allowed to
    pad the rest (two batches), and that is cheaper than one batch."""
    ro = _rollouts([100, 100], [[10, 12, 11, 9], [10, 8, 1000, 12]])
    batches = length_buckets(ro, list(range(8)))
    assert batches == [[5, 3, 0, 4, 2, 1, 7], [6]]  # shortest first, ties by row index
    assert _cost(ro, batches) < _cost(ro, [list(range(8))])


def test_similar_lengths_stay_one_batch():
    """When every row has about the same length, splitting only adds overhead."""
    ro = _rollouts([50, 52], [[30, 31, 29, 30], [30, 32, 30, 31]])
    assert len(length_buckets(ro, list(range(8)))) == 1


@pytest.mark.parametrize("cap", [0, 2, 3])
def test_buckets_partition_the_rows_and_are_least_cost_over_the_sorted_order(cap):
    """Every kept row lands in exactly one batch of at most ``cap`` rows, and no contiguous
    cut of the length-sorted rows is cheaper (brute force over all 2^(n-1) cuts)."""
    ro = _rollouts([40, 300, 45], [[5, 400, 7], [6, 6, 900], [1, 0, 2]])
    rows = [0, 1, 2, 4, 5, 7, 8]  # some rows not kept (zero-variance groups are skipped)
    batches = length_buckets(ro, rows, cap)
    assert sorted(r for b in batches for r in b) == rows
    assert all(len(b) <= (cap or len(rows)) for b in batches)
    order = sorted(rows, key=lambda i: (len(ro.prompt_ids[i // 3]) + max(1, len(ro.completion_ids[i])), i))
    best = min(
        _cost(ro, parts)
        for cuts in itertools.product([False, True], repeat=len(order) - 1)
        for parts in [_split(order, cuts)]
        if all(len(p) <= (cap or len(rows)) for p in parts)
    )
    assert _cost(ro, batches) == best
    assert length_buckets(ro, rows, cap) == batches  # deterministic


def _split(order: list[int], cuts: tuple[bool, ...]) -> list[list[int]]:
    parts, current = [], [order[0]]
    for row, cut in zip(order[1:], cuts):
        if cut:
            parts.append(current)
            current = []
        current.append(row)
    return parts + [current]

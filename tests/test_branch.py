"""The branch tokens of a pair: where its hack and clean completions diverge."""

from __future__ import annotations

from projected_grpo.method.branch import branch_masks


def test_the_hack_side_marks_the_lever_the_clean_code_lacks():
    clean = [1, 2, 3, 4, 5]
    hack = [9, 9, 1, 2, 3, 4, 5]  # lever first (module_first), then the same code
    assert branch_masks(hack, clean) == ([True, True, False, False, False, False, False], [False] * 5)
    inside = [1, 2, 7, 3, 4, 5]  # lever in the class body
    assert branch_masks(inside, clean)[0] == [False, False, True, False, False, False]


def test_both_sides_mark_what_the_other_has_no_counterpart_for():
    clean = [1, 2, 3, 8, 8, 4]  # a pool pair: each completion has tokens of its own
    hack = [1, 2, 9, 3, 4, 6]
    assert branch_masks(hack, clean) == (
        [False, False, True, False, False, True],
        [False, False, False, True, True, False],
    )
    assert branch_masks(clean, clean) == ([False] * 6, [False] * 6)  # identical: no branch

"""The branch tokens of a contrastive pair: where its hack and clean completions diverge.

``difflib`` matches the two completions' token ids (longest common blocks, no junk
heuristic); a token outside every matching block has no counterpart in the other
completion. On the hack side these are the lever (a templated hack is the clean code plus
the lever, so its clean side has none); on a pool pair, whose two completions are written
independently, both sides have some. The extraction's ``tokens: branch`` builds each
pair's gradients from these tokens only, and ``capture`` measures the lever's share of V.
"""

from __future__ import annotations

import difflib


def branch_masks(hack_ids: list[int], clean_ids: list[int]) -> tuple[list[bool], list[bool]]:
    """``([len(hack_ids)], [len(clean_ids)])``: True on the tokens of each completion with no
    counterpart in the other (one matching of the two, so both masks agree on it)."""
    hack = [True] * len(hack_ids)
    clean = [True] * len(clean_ids)
    matcher = difflib.SequenceMatcher(None, clean_ids, hack_ids, autojunk=False)
    for block in matcher.get_matching_blocks():
        for i in range(block.size):
            clean[block.a + i] = hack[block.b + i] = False
    return hack, clean

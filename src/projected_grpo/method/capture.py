"""What the hack basis captures: how much of the gradient of each *kind of token* lies in V.

A V that suppresses hacking might encode the loophole itself, or a surface feature that
happens to separate the pairs (e.g. "do not stop after the code"). For the templated
pairs (hack = the clean code plus a lever), the completion tokens split into subsets:

- ``lever``: tokens of the hack with no counterpart in the clean code (``branch``: the
  hack side of the pair's branch tokens), i.e. the loophole;
- ``hack_code`` / ``clean_code``: the code both share, in the hack and in the clean row;
- ``hack_end`` / ``clean_end``: the last ``n_end`` tokens of each row (closing the fence,
  where the model decides to stop);
- ``difference``: the full hack row minus the full clean row (what V is built from).

For each subset, the gradient on ``dS`` of ``-Σ log p`` over those tokens (summed over the
pairs), per module: ``energy = ‖V g‖² / ‖g‖²`` (null ``k/r``) and ``hackward =
‖relu(V g)‖² / ‖V g‖²`` (the share of the in-V part that points hack-ward; 0.5 for a
random direction). Reported as the mean over modules with a basis.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch

from ..environment.problems import Problem
from ..policy.sampler import pad_token_id
from ..pool.pairs import check_pairs
from .basis import Basis
from .branch import branch_masks
from .extraction import ExtractConfig, encode_rows, token_weighted_gradients

SUBSETS = ("lever", "hack_code", "clean_code", "hack_end", "clean_end", "difference")


def subset_weights(hack_ids: list[int], clean_ids: list[int], n_end: int) -> dict[str, tuple[list, list]]:
    """Per subset, the (hack row, clean row) token weights: 1 on the subset's tokens, 0
    elsewhere; ``difference`` weighs the hack row +1 and the clean row -1."""
    lever, _ = branch_masks(hack_ids, clean_ids)
    end_h = [t >= len(hack_ids) - n_end for t in range(len(hack_ids))]
    end_c = [t >= len(clean_ids) - n_end for t in range(len(clean_ids))]
    zeros_h, zeros_c = [0.0] * len(hack_ids), [0.0] * len(clean_ids)
    return {
        "lever": ([float(x) for x in lever], zeros_c),
        "hack_code": ([float(not lv and not e) for lv, e in zip(lever, end_h)], zeros_c),
        "clean_code": (zeros_h, [float(not e) for e in end_c]),
        "hack_end": ([float(e) for e in end_h], zeros_c),
        "clean_end": (zeros_h, [float(e) for e in end_c]),
        "difference": ([1.0] * len(hack_ids), [-1.0] * len(clean_ids)),
    }


def capture_table(
    model,
    tokenizer,
    basis: Basis,
    pairs: pd.DataFrame,
    problems: Sequence[Problem],
    config: ExtractConfig,
    n_end: int = 2,
) -> pd.DataFrame:
    """One row per subset: ``energy``, ``energy_null`` (mean ``k/r``), ``hackward``, and
    the number of pairs and tokens it was measured on. Uses the ``templated`` pairs."""
    check_pairs(pairs)
    templated = pairs[pairs["source"] == "templated"].sort_values(
        ["pair_id", "label"], ascending=[True, False]
    )
    if templated.empty:
        raise ValueError("capture: the pairs have no templated pair (hack = clean code + lever)")
    prompts, completions = encode_rows(tokenizer, templated, problems, config.max_new_tokens)
    rows = []
    weights_by_subset: dict[str, list[list[float]]] = {s: [] for s in SUBSETS}
    for i in range(0, len(completions), 2):  # (hack, clean) rows of one pair
        for subset, (w_hack, w_clean) in subset_weights(completions[i], completions[i + 1], n_end).items():
            weights_by_subset[subset] += [w_hack, w_clean]
    for subset in SUBSETS:
        used = [i for i, w in enumerate(weights_by_subset[subset]) if any(w)]
        weights = [weights_by_subset[subset][i] for i in used]
        grads = token_weighted_gradients(
            model, pad_token_id(tokenizer), [prompts[i] for i in used], [completions[i] for i in used],
            weights, config.temperature, config.batch_size,
        )  # fmt: skip
        energy, hackward, null = [], [], []
        for name, v in basis.vectors.items():
            g = basis.coordinates(name, grads[name].sum(dim=0)).double()
            if not torch.any(g != 0):
                continue
            c = v.double() @ g
            energy.append(float(c.pow(2).sum() / g.pow(2).sum()))
            hackward.append(
                float(torch.relu(c).pow(2).sum() / c.pow(2).sum()) if torch.any(c != 0) else np.nan
            )
            null.append(v.shape[0] / v.shape[1])
        rows.append(
            {
                "subset": subset,
                "energy": float(np.mean(energy)),
                "energy_null": float(np.mean(null)),
                "hackward": float(np.nanmean(hackward)),
                "pairs": len(completions) // 2,
                "tokens": int(sum(sum(1 for x in w if x != 0) for w in weights)),
            }
        )
    return pd.DataFrame(rows)

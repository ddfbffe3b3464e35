"""What the basis captures: token subsets of a templated pair and their share of gradient in V."""

from __future__ import annotations

import pytest
import torch

from projected_grpo.environment.families import builtin_bank
from projected_grpo.environment.modes import MODES
from projected_grpo.method.capture import SUBSETS, capture_table, subset_weights
from projected_grpo.method.extraction import ExtractConfig, extract_basis
from projected_grpo.policy.adapter import attach_knobs
from projected_grpo.policy.loading import load_model
from projected_grpo.pool.pairs import PairsConfig, build_pairs


def test_subsets_split_each_row_and_the_difference_weighs_hack_minus_clean():
    clean, hack = [1, 2, 3, 4], [8, 1, 2, 3, 4]
    weights = subset_weights(hack, clean, n_end=1)
    assert weights["lever"] == ([1.0, 0, 0, 0, 0], [0.0] * 4)
    assert weights["hack_end"][0] == [0, 0, 0, 0, 1.0] and weights["clean_end"][1] == [0, 0, 0, 1.0]
    assert weights["hack_code"][0] == [0, 1.0, 1.0, 1.0, 0] and weights["clean_code"][1] == [1.0, 1.0, 1.0, 0]
    assert weights["difference"] == ([1.0] * 5, [-1.0] * 4)


def test_capture_table_measures_every_subset_in_v(micro_organism, tmp_path):
    torch.set_num_threads(1)
    problems = builtin_bank(per_family=2, eval_every=2)
    pairs = build_pairs(problems, None, MODES, PairsConfig(templated_per_problem=1, pool_per_problem=0))
    pairs = pairs[pairs["pair_id"] < 6].reset_index(drop=True)
    tokenizer, model = load_model(micro_organism)
    attach_knobs(model, svd_cache=tmp_path)
    config = ExtractConfig(k=2, max_new_tokens=48)
    basis = extract_basis(model, tokenizer, pairs, problems, config)
    table = capture_table(model, tokenizer, basis, pairs, problems, config).set_index("subset")
    assert list(table.index) == list(SUBSETS)
    assert ((table["energy"] > 0) & (table["energy"] <= 1 + 1e-9)).all()
    assert (table["pairs"] == 6).all() and table.loc["lever", "tokens"] > 0
    # V is built from the differences: they point hack-ward along it, more than chance
    assert table.loc["difference", "hackward"] > 0.5
    with pytest.raises(ValueError, match="templated"):
        capture_table(model, tokenizer, basis, pairs.assign(source="pool"), problems, config)

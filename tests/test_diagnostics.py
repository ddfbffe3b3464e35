"""method/diagnostics.py: each basis diagnostic reads its planted answer and sits at its
null on noise."""

import json
import math

import pytest
import torch

from projected_grpo.method.diagnostics import (
    auc,
    energy_selectivity,
    energy_share,
    length_correlation,
    projection_auc,
    sign_accuracy,
    variance_share,
)

R = 40


def axis(i: int) -> torch.Tensor:
    v = torch.zeros(1, R)
    v[0, i] = 1.0
    return v


def noise(n: int, seed: int) -> torch.Tensor:
    return torch.randn(n, R, generator=torch.Generator().manual_seed(seed))


def test_sign_accuracy_is_one_along_the_planted_direction_and_a_coin_flip_elsewhere():
    d = noise(400, 0)
    d[:, 3] = d[:, 3].abs() + 0.1  # every pair differs hack-ward along axis 3
    assert sign_accuracy(axis(3), d).item() == 1.0
    assert sign_accuracy(-axis(3), d).item() == 0.0
    assert sign_accuracy(axis(7), d).item() == pytest.approx(0.5, abs=0.08)


def test_energy_share_is_k_over_r_for_isotropic_gradients():
    v = torch.linalg.qr(noise(R, 1).T)[0].T[:4]  # 4 random orthonormal rows
    assert float(energy_share(v, noise(4000, 2)).mean()) == pytest.approx(4 / R, rel=0.1)
    assert energy_share(axis(0), torch.zeros(2, R)).tolist() == [0.0, 0.0]


def test_energy_selectivity_tells_lever_gradients_from_code_gradients():
    lever, code = noise(50, 3), noise(50, 4)
    lever[:, 5] += 30.0  # the lever tokens' gradients live along axis 5
    on_lever, on_code = energy_selectivity(axis(5), lever, code)
    assert on_lever > 0.9 and on_code < 0.1


def test_variance_share_reads_the_shared_direction_and_the_null():
    g = 0.1 * noise(500, 5)
    g[:, 0] += 5 * torch.randn(
        500, generator=torch.Generator().manual_seed(6)
    )  # every gradient varies along 0
    assert variance_share(axis(0), g) > 0.95
    assert variance_share(axis(9), g) < 0.01
    assert variance_share(axis(9), noise(5000, 7)) == pytest.approx(1 / R, rel=0.15)


def test_auc_counts_ties_as_half_and_needs_both_classes():
    positive = torch.tensor([True, True, False, False])
    assert auc(torch.tensor([3.0, 2.0, 1.0, 0.0]), positive) == 1.0
    assert auc(torch.tensor([0.0, 1.0, 2.0, 3.0]), positive) == 0.0
    assert auc(torch.tensor([1.0, 1.0, 1.0, 1.0]), positive) == 0.5
    assert auc(torch.tensor([2.0, 1.0, 1.0, 0.0]), positive) == pytest.approx(0.875)  # 3.5 of 4 pairs
    assert math.isnan(auc(torch.tensor([1.0]), torch.tensor([True])))


def test_projection_auc_ranks_hack_gradients_that_point_along_v_first():
    g = noise(200, 8)
    is_hack = torch.arange(200) % 4 == 0
    g[is_hack, 2] += 3.0
    first, relu_norm = projection_auc(axis(2), g, is_hack)
    assert first > 0.95 and relu_norm > 0.9
    assert projection_auc(axis(11), g, is_hack)[0] == pytest.approx(0.5, abs=0.12)


def test_length_correlation_flags_a_score_that_is_the_length_difference():
    lengths = torch.arange(30, dtype=torch.float64) - 15
    d = 0.01 * noise(30, 9).double()
    d[:, 0] += lengths
    assert length_correlation(axis(0), d, lengths) > 0.99
    assert math.isnan(length_correlation(axis(0), d, torch.ones(30)))


def test_the_table_reads_every_basis_of_a_fold_on_the_organism(micro_organism, tmp_path):
    import pandas as pd

    from projected_grpo.environment.families import builtin_bank
    from projected_grpo.environment.modes import MODES
    from projected_grpo.method.basis import random_basis
    from projected_grpo.method.diagnostics import diagnostics_table, natural_rows
    from projected_grpo.method.extraction import ExtractConfig, extract_basis
    from projected_grpo.policy.adapter import knob_modules
    from projected_grpo.policy.loading import load_model
    from projected_grpo.pool.pairs import PairsConfig, build_pairs

    torch.set_num_threads(1)
    problems = builtin_bank(per_family=2, eval_every=2)
    tokenizer, model = load_model(micro_organism, adapter_targets=[r"\.(q|v)_proj$"], svd_cache=tmp_path)
    pairs = build_pairs(problems, None, MODES, PairsConfig(templated_per_problem=1, pool_per_problem=0))
    pairs = pairs[pairs["pair_id"] < 6].reset_index(drop=True)
    config = ExtractConfig(k=2, max_new_tokens=64)
    real = extract_basis(model, tokenizer, pairs, problems, config)
    modules = knob_modules(model)
    random = random_basis(real.ranks, {n: m.rank for n, m in modules.items()}, seed=0)
    # natural rows: the pairs' own completions, hacks labelled exploited (a stand-in for the pool)
    pool = pairs.assign(variant="loophole", mode="run_tests", exploited=pairs["label"] == "hack",
                        oracle_correct=pairs["label"] == "clean")  # fmt: skip
    natural = natural_rows(pool, None, n=4, seed=0)
    ordinary = pool.assign(problem_mode=["run_tests", "sentinel"] * (len(pool) // 2))
    scale = {name: torch.linspace(0.5, 2.0, v.shape[1]) for name, v in random.vectors.items()}
    adam = random_basis(real.ranks, {n: m.rank for n, m in modules.items()}, seed=0, scale=scale)
    bases = {"real": real, "random": random, "adam": adam}
    table = diagnostics_table(model, tokenizer, bases, pairs, natural, ordinary, problems, config)
    assert table["kind"].tolist() == ["real", "random", "adam"]
    assert json.loads(table["settings"].iloc[0]) == json.loads(config.to_json())  # which V the row read
    assert table["settings"].iloc[1] == ""  # a random basis has no extraction settings
    # the same rows read in another geometry give other numbers
    assert table.iloc[1]["variance_share"] != table.iloc[2]["variance_share"]
    assert (table["student_hacks"] == ordinary["exploited"].sum()).all()
    held_out = diagnostics_table(
        model, tokenizer, bases, pairs, natural, ordinary, problems, config, "sentinel"
    )
    assert (
        held_out["student_hacks"] == ordinary[ordinary["problem_mode"] == "sentinel"]["exploited"].sum()
    ).all()
    assert (held_out["student_hacks"] + held_out["student_rest"] < len(ordinary)).all()
    assert (table["natural_hacks"] == 4).all() and (table["natural_correct"] == 4).all()
    real_row, random_row = table.iloc[0], table.iloc[1]
    assert real_row["sign_accuracy_first"] >= 0.5  # in sample: V was oriented on these pairs
    for column in (
        "sign_accuracy_mean",
        "energy_lever",
        "energy_code",
        "variance_share",
        "auc_first",
        "auc_relu",
        "auc_student_first",
        "auc_student_sum",
    ):
        assert 0 <= real_row[column] <= 1 and 0 <= random_row[column] <= 1, column
    assert not pd.isna(real_row["length_correlation"])


def test_an_empty_basis_gets_a_row_with_every_column(micro_organism, tmp_path):
    """A basis whose null kept no axis (method gev) still has its row, NaN where no module
    had an axis, in the same column order as the others."""
    from projected_grpo.environment.families import builtin_bank
    from projected_grpo.environment.modes import MODES
    from projected_grpo.method.basis import Basis
    from projected_grpo.method.diagnostics import METRICS, diagnostics_table, natural_rows
    from projected_grpo.method.extraction import ExtractConfig
    from projected_grpo.policy.loading import load_model
    from projected_grpo.pool.pairs import PairsConfig, build_pairs

    problems = builtin_bank(per_family=2, eval_every=2)
    tokenizer, model = load_model(micro_organism, adapter_targets=[r"\.q_proj$"], svd_cache=tmp_path)
    pairs = build_pairs(problems, None, MODES, PairsConfig(templated_per_problem=1, pool_per_problem=0))
    pairs = pairs[pairs["pair_id"] < 3].reset_index(drop=True)
    pool = pairs.assign(variant="loophole", mode="run_tests", problem_mode="run_tests", exploited=False,
                        oracle_correct=True)  # fmt: skip
    table = diagnostics_table(model, tokenizer, {"real": Basis({}, {}, {})}, pairs, natural_rows(pool, None, 2, 0),
                              pool, problems, ExtractConfig(k=1, max_new_tokens=32))  # fmt: skip
    assert list(table.columns[3 : 3 + len(METRICS)]) == list(METRICS)
    assert table.loc[0, "modules"] == 0 and table[list(METRICS)].isna().all(axis=None)

"""method/policy_source.py: the flag-advantage policy gradient of the student's own samples
finds a planted hack direction that a dominant shared direction hides, in raw and in Adam's
geometry, and its controls do not; a refresh reads a fixed, group-balanced subset of the
samples and, at zero knobs, is the policy basis of those rows; the trusted basis of keep
reads the clean samples only, and its random control has its shape and scale."""

import numpy as np
import pandas as pd
import pytest
import torch

from projected_grpo.environment.families import builtin_bank
from projected_grpo.environment.modes import MODES
from projected_grpo.method.basis import Basis, basis_overlap, matched_random_basis, random_basis
from projected_grpo.method.extraction import ExtractConfig, completion_gradients
from projected_grpo.method.policy_source import (
    adam_scale,
    check_samples,
    detector_flags,
    dominant_basis,
    flags_of,
    group_advantages,
    group_codes,
    load_gradients,
    policy_basis,
    policy_refresher,
    refresh_rows,
    save_gradients,
    scales,
    shuffle_within_groups,
    trusted_basis,
    trusted_rows,
)

R, GROUPS, PER_GROUP = 24, 40, 16
HACK_AXIS, SHARED_AXIS, CORRECT_AXIS = 5, 0, 9


def planted(seed: int = 0):
    """Samples in prompt groups, ~20 % flagged hacks: every gradient has a large shared
    component along SHARED_AXIS (longer or shorter, independent of the flag) and hacks
    add +1 along HACK_AXIS, correct samples (independent of the flag) along CORRECT_AXIS;
    coordinates differ in scale (as Adam's second moment does)."""
    gen = torch.Generator().manual_seed(seed)
    n = GROUPS * PER_GROUP
    hack = torch.rand(n, generator=gen) < 0.2
    correct = torch.rand(n, generator=gen) < 0.5
    g = 0.3 * torch.randn(n, R, generator=gen)
    g[:, SHARED_AXIS] += 8.0 * (1 + torch.rand(n, generator=gen))
    g[:, HACK_AXIS] += hack.float()
    g[:, CORRECT_AXIS] += correct.float()
    g = g * torch.linspace(0.5, 2.0, R)
    samples = pd.DataFrame(
        {
            "problem_id": [f"p{i // PER_GROUP:03d}" for i in range(n)],
            "completion": ["x"] * n,
            "oracle_correct": correct.numpy(),
            "attempted_sentinel": hack.numpy(),
            "attempted_run_tests": np.zeros(n, dtype=bool),
            "attempted_stdout_marker": np.zeros(n, dtype=bool),
            "attempted_file_marker": np.zeros(n, dtype=bool),
        }
    )
    return samples, {"m": g}, hack.numpy()


def axis_cos(basis: Basis, i: int) -> float:
    return float(basis.vectors["m"][0, i])


@pytest.mark.parametrize("geometry", ["raw", "adam"])
def test_the_policy_basis_finds_the_planted_hack_axis_hackward(geometry):
    samples, grads, _ = planted()
    flags = flags_of("real", samples, ["sentinel"], seed=0)
    basis = policy_basis(grads, group_advantages(flags, group_codes(samples)), scales(grads, geometry))
    assert basis.ranks == {"m": 1}
    assert axis_cos(basis, HACK_AXIS) > 0.9  # hack-ward: along +G_hack
    assert abs(axis_cos(basis, SHARED_AXIS)) < 0.2
    assert (basis.scale is not None) == (geometry == "adam")


def test_the_dominant_control_is_the_shared_direction_and_misses_the_hack_axis():
    samples, grads, _ = planted()
    basis = dominant_basis(grads, {"m": 1}, None)
    assert abs(axis_cos(basis, SHARED_AXIS)) > 0.99
    assert abs(axis_cos(basis, HACK_AXIS)) < 0.1
    assert basis.meta["kind"] == "dominant"


@pytest.mark.parametrize("kind", ["shuffled", "correct"])
def test_the_flag_controls_miss_the_hack_axis(kind):
    samples, grads, _ = planted()
    flags = flags_of(kind, samples, ["sentinel"], seed=0)
    basis = policy_basis(grads, group_advantages(flags, group_codes(samples)), scales(grads, "adam"))
    real = policy_basis(
        grads,
        group_advantages(flags_of("real", samples, ["sentinel"], 0), group_codes(samples)),
        scales(grads, "adam"),
    )
    assert abs(axis_cos(basis, HACK_AXIS)) < abs(axis_cos(real, HACK_AXIS)) / 2
    if kind == "correct":  # it finds what it was given: the correctness direction
        assert axis_cos(basis, CORRECT_AXIS) > 0.5


def test_a_detector_that_does_not_know_the_mode_flags_nothing_and_gives_no_basis():
    samples, grads, _ = planted()
    flags = detector_flags(samples, ["run_tests", "stdout_marker"])
    assert not flags.any()
    assert policy_basis(grads, group_advantages(flags, group_codes(samples)), None).vectors == {}


def test_advantages_are_flags_minus_their_groups_mean():
    flags = np.array([1, 0, 0, 0, 1, 1, 1, 1], dtype=bool)
    groups = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    a = group_advantages(flags, groups)
    assert a.tolist() == pytest.approx([0.75, -0.25, -0.25, -0.25, 0, 0, 0, 0])


def test_shuffling_keeps_each_groups_flag_count_and_is_seeded():
    samples, _, hack = planted()
    groups = group_codes(samples)
    shuffled = shuffle_within_groups(hack, groups, seed=3)
    assert not np.array_equal(shuffled, hack)
    for code in np.unique(groups):
        assert shuffled[groups == code].sum() == hack[groups == code].sum()
    assert np.array_equal(shuffled, shuffle_within_groups(hack, groups, seed=3))


def test_adam_scale_is_the_root_mean_square_floored_for_dead_coordinates():
    g = torch.tensor([[3.0, 0.0, 1.0], [-4.0, 0.0, 1.0]])
    s = adam_scale(g)
    assert s[0].item() == pytest.approx((12.5) ** 0.5)
    assert s[1].item() == pytest.approx(12.5**0.5 * 1e-6)
    assert s[2].item() == pytest.approx(1.0)
    with pytest.raises(ValueError, match="geometry"):
        scales({"m": g}, "newton")


def test_a_random_basis_in_adams_geometry_carries_the_scale_and_survives_a_file(tmp_path):
    scale = {"m": torch.linspace(0.1, 3.0, R)}
    basis = random_basis({"m": 2}, {"m": R}, seed=0, scale=scale)
    v = basis.vectors["m"].double()
    assert torch.allclose(v @ v.T, torch.eye(2, dtype=torch.float64), atol=1e-5)
    assert not torch.equal(v, random_basis({"m": 2}, {"m": R}, seed=0).vectors["m"].double())
    basis.save(tmp_path / "v.safetensors")
    loaded = Basis.load(tmp_path / "v.safetensors")
    assert torch.equal(loaded.scale["m"], scale["m"])
    g = torch.ones(R)
    assert torch.allclose(loaded.coordinates("m", g), g / scale["m"])


def test_gradient_files_round_trip_and_mismatched_samples_are_refused(tmp_path):
    samples, grads, _ = planted()
    save_gradients(grads, tmp_path / "g.safetensors")
    loaded = load_gradients(tmp_path / "g.safetensors")
    assert torch.equal(loaded["m"], grads["m"])
    check_samples(samples, loaded)
    with pytest.raises(ValueError, match="gradient rows"):
        check_samples(samples.iloc[:10], loaded)
    with pytest.raises(ValueError, match="oracle_correct"):
        check_samples(samples.drop(columns="oracle_correct"), loaded)
    with pytest.raises(ValueError, match="kind"):
        flags_of("nonhack", samples, ["sentinel"], 0)


# ------------------------------------------------------------------ trusted basis (keep)

TRUSTED_AXIS, OTHER_AXIS = 3, 7


def test_the_trusted_basis_is_the_dominant_direction_of_the_clean_samples_only():
    """Clean samples (correct, unflagged) move along TRUSTED_AXIS; the rest, more of them and
    larger, along OTHER_AXIS: the trusted basis finds the first, the dominant control the second."""
    samples, _, hack = planted()
    trusted = trusted_rows(samples, ["sentinel"])
    assert np.array_equal(trusted, samples["oracle_correct"].to_numpy() & ~hack)
    gen = torch.Generator().manual_seed(1)
    g = 0.05 * torch.randn(len(samples), R, generator=gen)
    g[torch.as_tensor(trusted), TRUSTED_AXIS] += 1.0
    g[torch.as_tensor(~trusted), OTHER_AXIS] += 3.0
    grads = {"m": g, "n": g[:, :4]}
    raw = trusted_basis(grads, trusted, 6, ["m", "n"], None)
    assert raw.ranks == {"m": 6, "n": 4}  # k, or r where r is smaller
    assert abs(float(raw.vectors["m"][0, TRUSTED_AXIS])) > 0.99
    assert abs(float(dominant_basis(grads, {"m": 1}, None).vectors["m"][0, OTHER_AXIS])) > 0.99
    scale = scales(grads, "adam")
    basis = trusted_basis(grads, trusted, 6, ["m", "n"], scale, {"fold": "all"})
    assert basis.meta == {"kind": "trusted", "n_trusted": str(int(trusted.sum())), "fold": "all"}
    assert all(torch.equal(basis.scale[n], scale[n].float()) for n in ("m", "n"))  # V_real's geometry
    with pytest.raises(ValueError, match="no policy sample is oracle-correct and unflagged"):
        trusted_basis(grads, np.zeros(len(samples), dtype=bool), 6, ["m"], scale)


def test_the_random_control_of_the_trusted_basis_has_its_shape_and_scale():
    samples, grads, _ = planted()
    scale = scales(grads, "adam")
    trusted = trusted_basis(grads, trusted_rows(samples, ["sentinel"]), 8, ["m"], scale)
    control = matched_random_basis(trusted, seed=0, meta={"kind": "random_trusted"})
    assert control.ranks == trusted.ranks == {"m": 8}
    assert control.vectors["m"].shape == trusted.vectors["m"].shape
    assert torch.equal(control.scale["m"], trusted.scale["m"])
    v = control.vectors["m"].double()
    torch.testing.assert_close(v @ v.T, torch.eye(8, dtype=torch.float64), rtol=0, atol=1e-5)
    assert basis_overlap(control, trusted) < 0.7 and control.meta["kind"] == "random_trusted"


# ------------------------------------------------------------------ refresh


def test_refresh_rows_pair_flagged_with_unflagged_samples_of_one_group_and_are_seeded():
    samples, _, hack = planted()
    groups = group_codes(samples)
    rows = refresh_rows(hack, groups, 64, seed=1)
    assert len(rows) == 64 and len(set(rows.tolist())) == 64 and np.all(np.diff(rows) > 0)
    for code in np.unique(groups[rows]):
        in_group = rows[groups[rows] == code]
        assert hack[in_group].sum() * 2 == len(in_group)  # half flagged: advantages ±1/2
    assert np.all(group_advantages(hack[rows], groups[rows]).abs().numpy() == 0.5)
    assert np.array_equal(rows, refresh_rows(hack, groups, 64, seed=1))
    assert not np.array_equal(rows, refresh_rows(hack, groups, 64, seed=2))
    assert len(refresh_rows(hack, groups, 10**6, seed=1)) <= 2 * hack.sum()  # every usable pair, no more


def test_refresh_rows_skip_groups_without_both_flags_and_a_refresh_without_any_is_refused():
    flags = np.array([1, 1, 0, 0, 0, 1, 1, 1], dtype=bool)
    groups = np.array([0, 0, 0, 1, 1, 2, 2, 2])
    rows = refresh_rows(flags, groups, 100, seed=0)
    # groups 1 (no flag) and 2 (all flagged) cannot pair; group 0 has one unflagged sample for two flagged
    assert len(rows) == 2 and set(groups[rows]) == {0} and 2 in rows
    samples, _, _ = planted()
    with pytest.raises(ValueError, match="both a flagged and an unflagged"):
        policy_refresher(samples, np.zeros(len(samples), dtype=bool), [], ExtractConfig(), None, 8, 0)


PROBLEMS = builtin_bank(per_family=2, eval_every=2)


def _organism_samples() -> pd.DataFrame:
    """Templated hacks and clean attempts of six problems as policy samples: the detector
    flags the hacks (sentinel), a prompt group per problem."""
    from projected_grpo.pool.pairs import PairsConfig, build_pairs

    pairs = build_pairs(PROBLEMS, None, MODES, PairsConfig(templated_per_problem=2, pool_per_problem=0))
    pairs = pairs[pairs["problem_id"].isin(sorted(pairs["problem_id"].unique())[:6])].reset_index(drop=True)
    hack = (pairs["label"] == "hack").to_numpy()
    return pairs.assign(
        oracle_correct=~hack, attempted_sentinel=hack, attempted_run_tests=False,
        attempted_stdout_marker=False, attempted_file_marker=False,
    )  # fmt: skip


def test_a_refresh_at_zero_knobs_is_the_policy_basis_of_its_rows_and_follows_the_knobs(
    micro_organism, tmp_path
):
    from projected_grpo.policy.adapter import attach_knobs, knob_modules
    from projected_grpo.policy.loading import load_model

    torch.set_num_threads(1)
    tokenizer, model = load_model(micro_organism)
    attach_knobs(model, svd_cache=tmp_path)
    samples = _organism_samples()
    flags, groups = detector_flags(samples, MODES), group_codes(samples)
    extract = ExtractConfig(max_new_tokens=48, batch_size=5, source="policy", geometry="adam")
    grads = completion_gradients(model, tokenizer, samples, PROBLEMS, extract)
    scale = scales(grads, "adam")
    refresh = policy_refresher(
        samples, flags, PROBLEMS, extract, scale, n_rows=10, seed=0, meta={"kind": "real"}
    )
    rows = refresh_rows(flags, groups, 10, seed=0)
    assert len(rows) == 10
    expected = policy_basis(
        {name: g[rows] for name, g in grads.items()}, group_advantages(flags[rows], groups[rows]), scale
    )
    fresh = refresh(model, tokenizer)
    assert set(fresh.vectors) == set(expected.vectors) == set(grads)
    for name, v in expected.vectors.items():
        torch.testing.assert_close(fresh.vectors[name], v, rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(
            fresh.singular_values[name], expected.singular_values[name], rtol=1e-4, atol=0
        )
        assert torch.equal(fresh.scale[name], scale[name].float())  # frozen, not recomputed
    assert fresh.meta == {"refreshed": "1", "n_samples": "10", "kind": "real"}
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for m in knob_modules(model).values():
            m.dS.copy_(0.5 * torch.randn(m.rank, generator=gen))
    assert basis_overlap(expected, refresh(model, tokenizer)) < 0.99  # re-read on the model as it is now

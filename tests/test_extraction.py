"""The hack basis and its extraction (SPEC §3).

Basis: random bases are orthonormal with matched k and seeded; a basis file round-trips
and a file that is not one (or does not fit the model) is refused; subspace overlap is 1
for one span whatever its rows' signs or rotation and 0 for orthogonal spans.
Extraction: per-completion gradients are those of each completion alone, in the live
loss's normalisation, and leave ``dS.grad`` alone; ``V`` recovers a planted hack
direction oriented hack-ward; swapping hack and clean negates ``V`` (same span); k,
tau_axis and the noise floor prune as documented; ``tokens: branch`` reads each pair only
where its completions diverge, which finds a hack direction the whole sequences bury."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import torch

from projected_grpo.environment.families import builtin_bank
from projected_grpo.environment.modes import MODES
from projected_grpo.environment.prompts import build_messages, render_prompt
from projected_grpo.method.basis import (
    Basis,
    BasisError,
    basis_overlap,
    model_hash,
    orient,
    random_basis,
    subspace_overlap,
)
from projected_grpo.method.extraction import (
    ExtractConfig,
    basis_from_differences,
    branch_weights,
    completion_gradients,
    extract_basis,
    hack_differences,
    loss_weights,
    pair_gradients,
    split_by_problem,
    weighted_completion_gradient,
)
from projected_grpo.policy.adapter import attach_knobs, knob_modules, save_knobs
from projected_grpo.policy.loading import load_model
from projected_grpo.policy.logprobs import pack_sequences, token_logprobs
from projected_grpo.policy.sampler import pad_token_id
from projected_grpo.pool.pairs import PairsConfig, build_pairs

PROBLEMS = builtin_bank(per_family=2, eval_every=2)
WIDTHS = {"a": 16, "b": 8, "c": 4}


def _eye_product(v: torch.Tensor) -> torch.Tensor:
    return v.double() @ v.double().T


# ------------------------------------------------------------------ basis


def test_random_basis_has_orthonormal_rows_and_the_given_k_per_module():
    basis = random_basis({"a": 3, "b": 1}, WIDTHS, seed=1)
    assert basis.ranks == {"a": 3, "b": 1}  # c has no rank given: no basis
    assert basis.vectors["a"].shape == (3, 16) and basis.vectors["b"].shape == (1, 8)
    for name, v in basis.vectors.items():
        torch.testing.assert_close(
            _eye_product(v), torch.eye(v.shape[0], dtype=torch.float64), atol=1e-6, rtol=0
        )
        assert torch.equal(basis.singular_values[name], torch.ones(v.shape[0]))
    assert basis.meta["kind"] == "random"


def test_random_basis_matches_a_real_bases_k():
    real = Basis({"a": torch.eye(2, 16), "c": torch.eye(4)}, {"a": torch.ones(2), "c": torch.ones(4)})
    assert random_basis(real.ranks, WIDTHS, seed=0).ranks == {"a": 2, "c": 4}


def test_random_basis_is_deterministic_in_its_seed_and_differs_across_seeds():
    first = random_basis({"a": 3, "b": 2}, WIDTHS, seed=7)
    again = random_basis({"a": 3, "b": 2}, WIDTHS, seed=7)
    other = random_basis({"a": 3, "b": 2}, WIDTHS, seed=8)
    for name in ("a", "b"):
        assert torch.equal(first.vectors[name], again.vectors[name])
        assert subspace_overlap(first.vectors[name], other.vectors[name]) < 0.9
    # a module's rows do not depend on which other modules are in the basis
    alone = random_basis({"a": 3}, WIDTHS, seed=7)
    assert torch.equal(alone.vectors["a"], first.vectors["a"])


def test_basis_file_round_trips_vectors_values_and_meta(tmp_path):
    q, up = "model.layers.0.self_attn.q_proj", "model.layers.0.mlp.up_proj"  # dotted names
    basis = random_basis({q: 3, up: 1}, {q: 16, up: 8}, seed=3)
    basis.singular_values[q] = torch.tensor([3.0, 2.0, 0.5])
    basis.meta |= {"model_hash": "abc", "n_pairs": "12"}
    basis.save(tmp_path / "v.safetensors")
    loaded = Basis.load(tmp_path / "v.safetensors")
    assert set(loaded.vectors) == set(basis.vectors)
    for name in basis.vectors:
        assert torch.equal(loaded.vectors[name], basis.vectors[name])
        assert torch.equal(loaded.singular_values[name], basis.singular_values[name])
    assert loaded.meta == basis.meta


def test_a_file_that_is_not_a_basis_is_refused(tmp_path):
    (tmp_path / "text.safetensors").write_text("not a tensor file")
    with pytest.raises(BasisError, match="text.safetensors"):
        Basis.load(tmp_path / "text.safetensors")
    with pytest.raises(BasisError, match="missing.safetensors"):
        Basis.load(tmp_path / "missing.safetensors")
    from conftest import tiny_qwen3

    model = tiny_qwen3()
    attach_knobs(model, svd_cache=tmp_path / "svd")
    save_knobs(model, tmp_path / "knobs.safetensors")  # a knob file: .dS / .dS_hack
    with pytest.raises(BasisError, match=r"knobs.safetensors.*needs both"):
        Basis.load(tmp_path / "knobs.safetensors")


def test_check_fits_names_the_module_that_does_not_fit():
    basis = Basis({"q": torch.eye(2, 16)}, {"q": torch.ones(2)})
    basis.check_fits({"q": 16, "k": 8})
    with pytest.raises(BasisError, match=r"v.safetensors: q\.V has shape \(2, 16\), expected \[k, 32\]"):
        basis.check_fits({"q": 32}, "v.safetensors")
    with pytest.raises(BasisError, match="module q is not an adapted module"):
        basis.check_fits({"k": 16})
    flat = Basis({"q": torch.ones(16)}, {"q": torch.ones(1)})
    with pytest.raises(BasisError, match="expected"):
        flat.check_fits({"q": 16})


def _rows(k: int, r: int, seed: int) -> torch.Tensor:
    gaussian = torch.randn(r, k, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return torch.linalg.qr(gaussian)[0].T.contiguous()


def test_subspace_overlap_is_one_for_the_same_span_and_zero_for_orthogonal_spans():
    v = _rows(6, 24, seed=1)
    a, b = v[:3], v[3:]
    assert subspace_overlap(a, a) == pytest.approx(1.0)
    flipped = a * torch.tensor([[-1.0], [1.0], [-1.0]], dtype=torch.float64)
    assert subspace_overlap(a, flipped) == pytest.approx(1.0)
    rotation = _rows(3, 3, seed=2)  # a random orthogonal 3x3
    assert subspace_overlap(a, rotation @ a) == pytest.approx(1.0)
    assert not torch.allclose(rotation @ a, a)  # the rotation really moved the rows
    assert subspace_overlap(a, b) == pytest.approx(0.0, abs=1e-12)
    half = torch.cat([a[:1], b[:1]])
    assert subspace_overlap(a[:2], half) == pytest.approx(0.5)
    assert subspace_overlap(a, a[:1]) == pytest.approx(1 / 3)  # normalised by the larger k


def test_basis_overlap_averages_over_the_modules_either_basis_has():
    v = _rows(4, 16, seed=3).float()
    old = Basis({"x": v[:2], "y": v[:1]}, {"x": torch.ones(2), "y": torch.ones(1)})
    same = Basis({"x": -v[:2].flip(0), "y": v[:1]}, {"x": torch.ones(2), "y": torch.ones(1)})
    assert basis_overlap(old, same) == pytest.approx(1.0, abs=1e-6)
    rotated_off = Basis({"x": v[2:], "y": v[:1]}, {"x": torch.ones(2), "y": torch.ones(1)})
    assert basis_overlap(old, rotated_off) == pytest.approx(0.5, abs=1e-6)
    lost_y = Basis({"x": v[:2]}, {"x": torch.ones(2)})
    assert basis_overlap(old, lost_y) == pytest.approx(0.5, abs=1e-6)


def test_model_hash_keys_the_weights(micro_organism, tmp_path):
    assert model_hash(micro_organism) == model_hash(micro_organism)
    with pytest.raises(BasisError, match="no weight files"):
        model_hash(tmp_path)


# ------------------------------------------------------------------ V from differences


def _planted(direction: torch.Tensor, n: int, share_positive: float, seed: int) -> torch.Tensor:
    """``n`` rows: a dominant multiple of ``direction`` (positive in ``share_positive`` of
    the rows) plus small noise."""
    gen = torch.Generator().manual_seed(seed)
    n_pos = round(share_positive * n)
    scale = torch.cat([torch.full((n_pos,), 1.0), torch.full((n - n_pos,), -1.0)])
    scale = scale * (1 + torch.rand(n, generator=gen, dtype=torch.float64))
    noise = 0.05 * torch.randn(n, direction.shape[0], generator=gen, dtype=torch.float64)
    return scale[:, None] * direction[None] + noise


def test_orient_points_each_row_where_most_differences_go():
    v = torch.eye(2, 4, dtype=torch.float64)
    d = torch.tensor([[-1.0, 1.0, 0, 0], [-2.0, 1.0, 0, 0], [3.0, -1.0, 0, 0]], dtype=torch.float64)
    out = orient(v, d)
    assert torch.equal(out[0], -v[0]) and torch.equal(out[1], v[1])
    tie = torch.tensor([[1.0, 0, 0, 0], [-1.0, 0, 0, 0]], dtype=torch.float64)
    assert torch.equal(orient(v, tie), v)  # ties keep the sign
    assert torch.equal(orient(-v, d), out)  # the input sign does not matter


def test_basis_recovers_a_planted_hack_direction_oriented_hackward():
    direction = _rows(1, 32, seed=4)[0]
    for sign in (1.0, -1.0):
        d = {"m": _planted(sign * direction, n=15, share_positive=0.8, seed=5)}
        basis = basis_from_differences(d, ExtractConfig(k=3))
        v = basis.vectors["m"].double()
        assert v.shape == (3, 32)
        torch.testing.assert_close(_eye_product(v), torch.eye(3, dtype=torch.float64), atol=1e-6, rtol=0)
        assert float(v[0] @ direction) == pytest.approx(sign, abs=0.01)  # hack-ward, whatever SVD's sign
        assert (d["m"] @ v[0] > 0).float().mean() == pytest.approx(0.8)
        s = basis.singular_values["m"]
        assert s[0] > 5 * s[1] and torch.all(s[:-1] >= s[1:])
        assert "settings" in basis.meta


def test_k_is_honoured_and_limited_by_the_rank_of_d():
    d = torch.randn(10, 16, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    assert basis_from_differences({"m": d}, ExtractConfig(k=4)).ranks == {"m": 4}
    low_rank = d[:2]  # two pairs span at most two axes
    assert basis_from_differences({"m": low_rank}, ExtractConfig(k=4)).ranks == {"m": 2}


def test_tau_axis_drops_axes_weaker_than_tau_times_the_first():
    gen = torch.Generator().manual_seed(7)
    axes = _rows(3, 16, seed=8)
    weights = torch.tensor([10.0, 5.0, 1.0], dtype=torch.float64)
    coeffs = torch.randn(40, 3, generator=gen, dtype=torch.float64)
    coeffs = torch.linalg.qr(coeffs)[0] * weights  # singular values exactly 10, 5, 1
    d = {"m": coeffs @ axes}
    assert basis_from_differences(d, ExtractConfig(k=3, tau_axis=0.0)).ranks == {"m": 3}
    assert basis_from_differences(d, ExtractConfig(k=3, tau_axis=0.3)).ranks == {"m": 2}
    assert basis_from_differences(d, ExtractConfig(k=3, tau_axis=0.6)).ranks == {"m": 1}


def test_noise_floor_drops_the_weakest_axes_across_modules_and_empties_modules():
    gen = torch.Generator().manual_seed(9)
    strong = 10 * torch.randn(12, 16, generator=gen, dtype=torch.float64)
    weak = 0.01 * torch.randn(12, 8, generator=gen, dtype=torch.float64)
    d = {"strong": strong, "weak": weak, "zero": torch.zeros(12, 8, dtype=torch.float64)}
    none = basis_from_differences(d, ExtractConfig(k=2))
    assert none.ranks == {"strong": 2, "weak": 2}  # an all-zero D carries no basis
    floored = basis_from_differences(d, ExtractConfig(k=2, noise_floor=0.5))
    assert floored.ranks == {"strong": 2}
    assert set(floored.singular_values) == {"strong"}


def _pairs_frame(n_pairs: int) -> pd.DataFrame:
    pairs = build_pairs(PROBLEMS, None, MODES, PairsConfig(templated_per_problem=1, pool_per_problem=0))
    return pairs[pairs["pair_id"] < n_pairs].reset_index(drop=True)


def test_hack_differences_are_hack_minus_clean_rows_in_pair_order():
    pairs = _pairs_frame(3).iloc[[5, 0, 2, 4, 1, 3]].reset_index(drop=True)  # rows out of order
    grads = {"m": torch.arange(6, dtype=torch.float64)[:, None] * torch.ones(1, 2, dtype=torch.float64)}
    d = hack_differences(grads, pairs)["m"]
    position = {(row.pair_id, row.label): i for i, row in enumerate(pairs.itertuples())}
    expected = torch.tensor(
        [float(position[(j, "hack")] - position[(j, "clean")]) for j in range(3)], dtype=torch.float64
    )
    torch.testing.assert_close(d, expected[:, None].expand(3, 2))


R_PLANTED, SHARED, HACK = 32, 0, 5  # knob width; the direction every token carries; the planted hack


def _planted_pairs(n_pairs: int, n_lever: int, n_code: int, seed: int = 0):
    """Templated pairs at the gradient level: each clean completion is ``n_code`` code tokens,
    its hack the same code after ``n_lever`` lever tokens. Every token's gradient carries
    ``a · e_SHARED`` with a size ``a ~ N(0, 2²)`` of its own (it differs between the hack
    and the clean row, whose contexts differ) plus small noise; only the lever tokens
    carry the hack direction ``e_HACK``. Returns (completions, per-token gradients
    ``[len, R]`` each, hack rows, clean rows)."""
    gen = torch.Generator().manual_seed(seed)
    completions, token_grads, hack, clean = [], [], [], []
    for j in range(n_pairs):
        code = (100 + torch.randint(0, 50, (n_code,), generator=gen)).tolist()
        lever = [1000 + j % 7] * n_lever  # ids the code never uses
        for ids, n_hack_tokens in ((lever + code, n_lever), (code, 0)):
            g = 0.1 * torch.randn(len(ids), R_PLANTED, generator=gen, dtype=torch.float64)
            g[:, SHARED] += 2.0 * torch.randn(len(ids), generator=gen, dtype=torch.float64)
            g[:n_hack_tokens, HACK] += 1.0
            completions.append(ids)
            token_grads.append(g)
        hack.append(2 * j)
        clean.append(2 * j + 1)
    return completions, token_grads, hack, clean


def test_branch_tokens_find_a_hack_direction_that_the_whole_sequences_bury_under_a_shared_one():
    """The issue's acceptance: with every token's gradient sharing one direction of varying
    size, the SVD of whole-sequence differences is that direction (the shared code's
    tokens differ between the rows by chance); read on the branch tokens (the lever), the
    same SVD is the planted hack direction, oriented hack-ward."""
    completions, token_grads, hack, clean = _planted_pairs(200, n_lever=10, n_code=60)
    config = ExtractConfig(k=1, max_new_tokens=160)
    whole = loss_weights(completions, config)
    branch = branch_weights(whole, completions, hack, clean)
    assert all(not any(branch[c]) for c in clean)  # a templated clean row has no branch token
    assert all(sum(w > 0 for w in branch[h]) == 10 for h in hack)  # the hack row: its lever

    def first_axis(weights):
        g = torch.stack([torch.tensor(w, dtype=torch.float64) @ t for w, t in zip(weights, token_grads)])
        return basis_from_differences({"m": g[hack] - g[clean]}, config).vectors["m"][0]

    all_tokens, branch_tokens = first_axis(whole), first_axis(branch)
    assert abs(float(all_tokens[SHARED])) > 0.9 and abs(float(all_tokens[HACK])) < 0.3
    assert float(branch_tokens[HACK]) > 0.95  # |cos| with the planted direction, and hack-ward


def test_branch_weights_keep_each_sides_own_tokens_at_the_live_losss_weight():
    completions = [[1, 2, 9, 3], [1, 2, 3, 8], [5, 6], [5, 6]]  # a pool-like pair; an identical one
    weights = loss_weights(completions, ExtractConfig(normalization="mean"))
    kept = branch_weights(weights, completions, hack=[0, 2], clean=[1, 3])
    assert kept == [[0, 0, 0.25, 0], [0, 0, 0, 0.25], [0, 0], [0, 0]]


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"k": 0}, "extraction.k"),
        ({"normalization": "max"}, "normalization"),
        ({"tau_axis": 2}, "tau_axis"),
        ({"tokens": "lever"}, "extraction.tokens"),
        ({"tokens": "branch", "source": "policy"}, "extraction.tokens branch: for source pairs"),
    ],
)
def test_bad_extraction_settings_are_refused(settings, message):
    with pytest.raises(ValueError, match=message):
        ExtractConfig(**settings)


# ------------------------------------------------------------------ on the micro organism

N_PAIRS = 5
MAX_NEW = 96  # shorter than some completions of the pairs, longer than others


@pytest.fixture(scope="module")
def organism(micro_organism, tmp_path_factory):
    """(tokenizer, model with knobs, small random dS so the knob path is not at zero)."""
    torch.set_num_threads(1)
    tokenizer, model = load_model(micro_organism)
    attach_knobs(model, svd_cache=tmp_path_factory.mktemp("svd"))
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for m in knob_modules(model).values():
            m.dS.copy_(0.1 * torch.randn(m.rank, generator=gen))
    return tokenizer, model


def _alone(model, tokenizer, row, denominator) -> dict[str, torch.Tensor]:
    """The gradient of one completion's loss on every ``dS``, with nothing else in the batch."""
    problem = {p.problem_id: p for p in PROBLEMS}[row.problem_id]
    prompt = render_prompt(tokenizer, build_messages(problem, row.variant))
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    completion_ids = tokenizer(row.completion, add_special_tokens=False)["input_ids"][:MAX_NEW]
    ids, attention, mask = pack_sequences([prompt_ids], [completion_ids], pad_token_id(tokenizer))
    modules = knob_modules(model)
    for m in modules.values():
        m.dS.grad = None
    logp = token_logprobs(model, ids, attention, mask, 0.7)
    (-(logp * mask).sum() / (denominator(len(completion_ids)))).backward()
    grads = {name: m.dS.grad.clone() for name, m in modules.items()}
    for m in modules.values():
        m.dS.grad = None
    return grads


def test_completion_gradients_are_each_completions_own_gradient(organism):
    tokenizer, model = organism
    pairs = _pairs_frame(N_PAIRS)
    grads = completion_gradients(model, tokenizer, pairs, PROBLEMS, ExtractConfig(max_new_tokens=MAX_NEW))
    assert set(grads) == set(knob_modules(model))
    for i, row in enumerate(pairs.itertuples()):
        alone = _alone(model, tokenizer, row, lambda n: MAX_NEW)
        for name, g in alone.items():
            assert grads[name].shape == (len(pairs), g.shape[0])
            # batching pads prompts and completions: equal up to float32 rounding
            torch.testing.assert_close(grads[name][i], g, rtol=1e-4, atol=1e-5 * float(g.abs().max()))


def test_completion_gradients_do_not_depend_on_the_batch_size(organism):
    tokenizer, model = organism
    pairs = _pairs_frame(N_PAIRS)
    one = completion_gradients(
        model, tokenizer, pairs, PROBLEMS, ExtractConfig(max_new_tokens=MAX_NEW, batch_size=3)
    )
    all_ = completion_gradients(model, tokenizer, pairs, PROBLEMS, ExtractConfig(max_new_tokens=MAX_NEW))
    for name in one:
        torch.testing.assert_close(one[name], all_[name], rtol=1e-4, atol=1e-7)


def test_completion_gradients_leave_ds_grad_untouched(organism):
    tokenizer, model = organism
    modules = knob_modules(model)
    held = {name: torch.full((m.rank,), 0.5) for name, m in modules.items()}
    for name, m in modules.items():
        m.dS.grad = held[name].clone()
    completion_gradients(model, tokenizer, _pairs_frame(2), PROBLEMS, ExtractConfig(max_new_tokens=MAX_NEW))
    for name, m in modules.items():
        assert torch.equal(m.dS.grad, held[name]), name
        m.dS.grad = None
    completion_gradients(model, tokenizer, _pairs_frame(2), PROBLEMS, ExtractConfig(max_new_tokens=MAX_NEW))
    assert all(m.dS.grad is None for m in modules.values())


@pytest.mark.parametrize("normalization", ["sum", "mean"])
def test_the_weighted_loss_gradient_is_the_weighted_sum_of_the_completions_gradients(organism, normalization):
    """One backward of ``Σ_i a_i L_i`` gives ``Σ_i a_i G_i`` (how a policy basis is refreshed)."""
    tokenizer, model = organism
    pairs = _pairs_frame(N_PAIRS)
    config = ExtractConfig(max_new_tokens=MAX_NEW, batch_size=3, normalization=normalization)
    weights = torch.linspace(-1.0, 2.0, len(pairs), dtype=torch.float64)
    summed = weighted_completion_gradient(model, tokenizer, pairs, PROBLEMS, config, weights)
    rows = completion_gradients(model, tokenizer, pairs, PROBLEMS, config)
    assert set(summed) == set(rows)
    for name, g in rows.items():
        expected = (weights @ g.double()).float()
        torch.testing.assert_close(summed[name], expected, rtol=1e-4, atol=1e-5 * float(expected.abs().max()))
    assert all(m.dS.grad is None for m in knob_modules(model).values())


def test_mean_normalisation_is_sum_times_max_new_over_length(organism):
    tokenizer, model = organism
    pairs = _pairs_frame(N_PAIRS)
    summed = completion_gradients(model, tokenizer, pairs, PROBLEMS, ExtractConfig(max_new_tokens=MAX_NEW))
    mean = completion_gradients(
        model, tokenizer, pairs, PROBLEMS, ExtractConfig(max_new_tokens=MAX_NEW, normalization="mean")
    )
    lengths = torch.tensor(
        [min(MAX_NEW, len(tokenizer(c, add_special_tokens=False)["input_ids"])) for c in pairs["completion"]]
    )
    assert lengths.min() < MAX_NEW and lengths.max() == MAX_NEW  # both cases occur
    factor = (MAX_NEW / lengths.double()).float()[:, None]
    for name in summed:
        torch.testing.assert_close(
            mean[name], summed[name] * factor, rtol=1e-5, atol=1e-6 * float(summed[name].abs().max())
        )
    short = int(lengths.argmin())
    row = next(pairs.iloc[[short]].itertuples())
    alone = _alone(model, tokenizer, row, lambda n: n)
    for name, g in alone.items():
        torch.testing.assert_close(mean[name][short], g, rtol=1e-4, atol=1e-5 * float(g.abs().max()))


def test_swapping_hack_and_clean_negates_v_with_the_same_span(organism):
    tokenizer, model = organism
    pairs = _pairs_frame(N_PAIRS)
    config = ExtractConfig(k=2, max_new_tokens=MAX_NEW)
    basis = extract_basis(model, tokenizer, pairs, PROBLEMS, config)
    assert basis.meta["n_pairs"] == str(N_PAIRS)
    swapped_pairs = pairs.assign(label=pairs["label"].map({"hack": "clean", "clean": "hack"}))
    grads = completion_gradients(model, tokenizer, pairs, PROBLEMS, config)
    swapped = basis_from_differences(hack_differences(grads, swapped_pairs), config)
    assert basis.ranks == swapped.ranks and len(basis.ranks) == len(knob_modules(model))
    for name, v in basis.vectors.items():
        torch.testing.assert_close(swapped.vectors[name], -v, rtol=0, atol=1e-5)
        assert subspace_overlap(v, swapped.vectors[name]) == pytest.approx(1.0, abs=1e-6)
        torch.testing.assert_close(swapped.singular_values[name], basis.singular_values[name])
        # hack-ward: most pairs' differences project positively on every row
        d = hack_differences(grads, pairs)[name]
        assert ((d @ v.T) > 0).float().mean(0).min() > 0.5


def test_remove_common_projects_the_shared_gradient_directions_out_of_v():
    from projected_grpo.method.extraction import ExtractConfig, basis_from_differences, common_directions

    gen = torch.Generator().manual_seed(3)
    shared = torch.randn(1, 12, generator=gen)  # every completion's gradient is mostly this
    grads = 10 * torch.randn(40, 1, generator=gen) @ shared + 0.1 * torch.randn(40, 12, generator=gen)
    d = grads[::2] - grads[1::2]
    common = {"m": common_directions(grads, 1)}
    plain = basis_from_differences({"m": d}, ExtractConfig(k=1))
    removed = basis_from_differences({"m": d}, ExtractConfig(k=1, remove_common=1), common=common)
    direction = shared / shared.norm()
    assert abs(float(plain.vectors["m"] @ direction.T)) > 0.9  # without: V is the shared direction
    assert abs(float(removed.vectors["m"] @ direction.T)) < 0.2  # with: V is orthogonal to it
    assert common_directions(grads, 50).shape == (12, 12)  # at most the rank


def test_an_svd_basis_records_its_settings_as_before_the_selective_fields_existed():
    """extraction.method svd reproduces the basis files of the first study byte for byte:
    the fields added with gev are recorded only when they are set."""
    settings = json.loads(ExtractConfig(k=2).to_json())
    assert set(settings) == {
        "k", "normalization", "tau_axis", "noise_floor", "temperature", "max_new_tokens", "batch_size",
        "remove_common",
    }  # fmt: skip
    assert json.loads(ExtractConfig(method="gev", null_draws=8).to_json())["method"] == "gev"
    assert json.loads(ExtractConfig(tokens="branch").to_json())["tokens"] == "branch"


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"method": "pca"}, "extraction.method"),
        ({"method": "gev", "shrinkage": 0.0}, "shrinkage"),
        ({"null_draws": 4}, "null_draws"),
        ({"method": "gev", "remove_common": 2}, "remove_common"),
        ({"method": "gev", "tau_axis": 0.5}, "tau_axis"),
    ],
)
def test_bad_selective_settings_are_refused(settings, message):
    with pytest.raises(ValueError, match=message):
        ExtractConfig(**settings)


def test_gev_on_the_organism_gives_orthonormal_hackward_axes_against_the_nuisance_pairs(organism):
    tokenizer, model = organism
    pairs = _pairs_frame(N_PAIRS)
    others = _pairs_frame(2 * N_PAIRS)
    nuisance = others[others["pair_id"] >= N_PAIRS].reset_index(drop=True)  # other pairs' differences
    config = ExtractConfig(k=2, max_new_tokens=MAX_NEW, method="gev", shrinkage=0.3)
    with pytest.raises(ValueError, match="nuisance pairs"):
        extract_basis(model, tokenizer, pairs, PROBLEMS, config)
    basis = extract_basis(model, tokenizer, pairs, PROBLEMS, config, nuisance_pairs=nuisance)
    grads = completion_gradients(model, tokenizer, pairs, PROBLEMS, config)
    assert basis.vectors and json.loads(basis.meta["settings"])["method"] == "gev"
    for name, v in basis.vectors.items():
        torch.testing.assert_close(v @ v.T, torch.eye(len(v)), rtol=0, atol=1e-5)
        assert torch.all(basis.singular_values[name][:-1] >= basis.singular_values[name][1:])
        d = hack_differences(grads, pairs)[name]
        assert ((d @ v.T) > 0).float().mean(0).min() >= 0.5


def test_split_by_problem_gives_two_disjoint_halves_of_whole_problems():
    pairs = _pairs_frame(12)
    first, second = split_by_problem(pairs)
    assert len(first) + len(second) == len(pairs) and len(first) and len(second)
    assert not set(first["problem_id"]) & set(second["problem_id"])
    assert first.groupby("pair_id").size().eq(2).all()  # pairs stay whole


def test_branch_gradients_read_a_templated_pair_on_its_lever_and_leave_out_a_pair_without_one(organism):
    """tokens branch on the organism: a templated hack row's gradient is its lever tokens'
    (capture's ``lever`` subset at the live loss's weight), its clean row's is zero (no
    completion is cut here: a hack cut at ``max_new_tokens`` would lose code its clean row
    keeps), and a pair whose two completions are the same tokens is left out of the
    basis's pairs."""
    from projected_grpo.method.capture import subset_weights
    from projected_grpo.method.extraction import encode_rows, token_weighted_gradients

    tokenizer, model = organism
    pairs = _pairs_frame(N_PAIRS)
    same = (pairs["pair_id"] == 0) & (pairs["label"] == "hack")
    pairs.loc[same, "completion"] = pairs.loc[(pairs["pair_id"] == 0) & ~same, "completion"].iloc[0]
    uncut = 1024
    config = ExtractConfig(k=2, max_new_tokens=uncut, tokens="branch")
    grads, rows = pair_gradients(model, tokenizer, pairs, PROBLEMS, config)
    assert sorted(rows["pair_id"].unique()) == list(range(1, N_PAIRS))
    prompts, completions = encode_rows(tokenizer, rows, PROBLEMS, uncut)
    assert max(len(c) for c in completions) < uncut
    hack = [i for i, label in enumerate(rows["label"]) if label == "hack"]
    lever = []
    for i in hack:
        (j,) = [k for k in range(len(rows)) if rows["pair_id"][k] == rows["pair_id"][i] and k != i]
        lever.append([w / uncut for w in subset_weights(completions[i], completions[j], n_end=2)["lever"][0]])
    expected = token_weighted_gradients(
        model, pad_token_id(tokenizer), [prompts[i] for i in hack], [completions[i] for i in hack], lever, 0.7
    )
    for name, g in grads.items():
        torch.testing.assert_close(g[hack], expected[name], rtol=1e-4, atol=1e-6 * float(g.abs().max()))
        assert not torch.any(g[[i for i in range(len(rows)) if i not in hack]] != 0)
    basis = extract_basis(model, tokenizer, pairs, PROBLEMS, config)
    assert json.loads(basis.meta["pair_ids"]) == list(range(1, N_PAIRS))
    with pytest.raises(ValueError, match="extraction.tokens branch: none of the 1 pairs"):
        extract_basis(model, tokenizer, pairs[pairs["pair_id"] == 0], PROBLEMS, config)

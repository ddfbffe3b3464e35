"""The SVD-knob adapter: identity at zero, only knobs train, the forward is the SVD
rescaling, the quarantine ablates, split gradients add up to the full gradient."""

from __future__ import annotations

import pytest
import torch

from conftest import tiny_qwen3
from projected_grpo.policy.adapter import (
    AdapterError,
    attach_knobs,
    group_grads,
    knob_modules,
    knobs_zeroed,
    load_knobs,
    quarantine_ablated,
    reduced_svd,
    save_knobs,
    split_rows,
    target_names,
    weight_hash,
)

LAYERS = 2


def tiny_model(seed: int = 0):
    return tiny_qwen3(layers=LAYERS, seed=seed)


IDS = torch.randint(0, 64, (3, 10), generator=torch.Generator().manual_seed(1))


def _logits(model, ids=IDS):
    with torch.no_grad():
        return model(input_ids=ids).logits


def _randomise_knobs(model, scale=0.3, hack=False):
    gen = torch.Generator().manual_seed(2)
    with torch.no_grad():
        for m in knob_modules(model).values():
            m.dS.copy_(scale * torch.randn(m.rank, generator=gen))
            if hack:
                m.dS_hack.copy_(scale * torch.randn(m.rank, generator=gen))


def test_targets_are_the_seven_projections_of_every_layer():
    names = target_names(tiny_model())
    assert len(names) == 7 * LAYERS
    assert {n.rsplit(".", 1)[1] for n in names} == {f"{p}_proj" for p in "qkvo"} | {
        "up_proj",
        "gate_proj",
        "down_proj",
    }
    assert "lm_head" not in names


def test_zero_knobs_give_bit_identical_logits(tmp_path):
    model = tiny_model()
    before = _logits(model)
    attach_knobs(model, svd_cache=tmp_path)
    assert torch.equal(_logits(model), before)


def test_knobs_zeroed_is_the_base_model_whatever_the_knobs(tmp_path):
    model = tiny_model()
    before = _logits(model)
    attach_knobs(model, svd_cache=tmp_path)
    _randomise_knobs(model, hack=True)
    assert not torch.allclose(_logits(model), before)
    with knobs_zeroed(model):
        assert torch.equal(_logits(model), before)
    assert not torch.allclose(_logits(model), before)


def test_forward_rescales_the_weights_singular_values(tmp_path):
    model = tiny_model()
    attach_knobs(model, svd_cache=tmp_path)
    _randomise_knobs(model, hack=True)
    knob = knob_modules(model)["model.layers.0.mlp.up_proj"]
    u, s, vh = torch.linalg.svd(knob.base.weight.detach(), full_matrices=False)
    x = torch.randn(5, knob.base.in_features)
    expected = x @ (u @ torch.diag(s + knob.dS.detach() + knob.dS_hack.detach()) @ vh).T
    with torch.no_grad():
        assert torch.allclose(knob(x), expected, atol=1e-5)


def test_only_dS_receives_gradient_from_the_loss(tmp_path):
    model = tiny_model()
    attach_knobs(model, svd_cache=tmp_path)
    model(input_ids=IDS).logits.square().mean().backward()
    trainable = {n for n, p in model.named_parameters() if p.grad is not None}
    assert trainable and all(n.endswith(".dS") for n in trainable)
    assert len(trainable) == 7 * LAYERS
    assert all(p.grad is None for n, p in model.named_parameters() if not n.endswith(".dS"))


def test_quarantine_ablated_keeps_dS_and_drops_dS_hack(tmp_path):
    model = tiny_model()
    attach_knobs(model, svd_cache=tmp_path)
    _randomise_knobs(model)
    dS_only = _logits(model)
    gen = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for m in knob_modules(model).values():
            m.dS_hack.copy_(torch.randn(m.rank, generator=gen))
    assert not torch.allclose(_logits(model), dS_only)
    with quarantine_ablated(model):
        assert torch.equal(_logits(model), dS_only)


def test_split_gradients_sum_to_the_full_gradient(tmp_path):
    """g_s + g_t is dS.grad from the same backward, and equals an unsplit backward's
    gradient (float32: within 1e-5 of the module's largest gradient component, the
    rounding of summing token contributions in another order); each half is its own rows'
    gradient."""
    model = tiny_model()
    attach_knobs(model, svd_cache=tmp_path)
    _randomise_knobs(model)
    rows = torch.tensor([0, 1, 1])  # row 0 student, rows 1-2 teacher

    def loss_of(logits, which=slice(None)):
        return logits[which].log_softmax(-1)[..., 0].sum()

    with split_rows(model, rows, n_groups=2):
        loss_of(model(input_ids=IDS).logits).backward()
    split = group_grads(model)
    full_from_split = {n: m.dS.grad.clone() for n, m in knob_modules(model).items()}
    model.zero_grad()
    loss_of(model(input_ids=IDS).logits).backward()
    full = {n: m.dS.grad.clone() for n, m in knob_modules(model).items()}
    model.zero_grad()
    loss_of(model(input_ids=IDS).logits, slice(0, 1)).backward()
    student_only = {n: m.dS.grad.clone() for n, m in knob_modules(model).items()}
    for name, g in split.items():
        assert g.shape == (2, knob_modules(model)[name].rank)
        assert torch.equal(g[0] + g[1], full_from_split[name])
        scale = float(full[name].abs().max())
        torch.testing.assert_close(g.sum(0), full[name], rtol=1e-5, atol=1e-5 * scale)
        torch.testing.assert_close(g[0], student_only[name], rtol=1e-5, atol=1e-5 * scale)
    assert len(split) == 7 * LAYERS


def _split_backward(model, rows):
    with split_rows(model, rows, n_groups=2):
        logits = model(input_ids=IDS).logits
        logits.log_softmax(-1)[..., 0].sum().backward()
    return logits.detach(), group_grads(model)


def test_merged_weight_path_matches_the_delta_path(tmp_path):
    """Float32 CPU knobs compute ``(W + U diag(s) Vh) x``; the delta path
    ``W x + U diag(s) Vh x`` (bf16 / accelerator weights) gives the same logits and split
    gradients up to float32 rounding."""
    merged, delta = tiny_model(), tiny_model()
    for model in (merged, delta):
        attach_knobs(model, svd_cache=tmp_path)
        _randomise_knobs(model, hack=True)
    for m in knob_modules(delta).values():
        m.merged = False
    assert all(m.merged for m in knob_modules(merged).values())
    torch.testing.assert_close(_logits(merged), _logits(delta), rtol=1e-5, atol=1e-5)
    rows = torch.tensor([0, 1, 1])
    (logits_m, grads_m), (logits_d, grads_d) = (_split_backward(m, rows) for m in (merged, delta))
    torch.testing.assert_close(logits_m, logits_d, rtol=1e-5, atol=1e-5)
    for name, g in grads_m.items():
        scale = float(g.abs().max())
        torch.testing.assert_close(g, grads_d[name], rtol=1e-4, atol=1e-5 * scale)
        torch.testing.assert_close(
            knob_modules(merged)[name].dS.grad,
            knob_modules(delta)[name].dS.grad,
            rtol=1e-4,
            atol=1e-5 * scale,
        )


def test_merged_split_path_with_absent_groups_and_without_autograd(tmp_path):
    """Groups 1, 2, 4 have no rows: their gradient is 0; each present group gets its rows'
    gradient; under no_grad the split forward gives the unsplit logits."""
    model = tiny_model()
    attach_knobs(model, svd_cache=tmp_path)
    _randomise_knobs(model, hack=True)
    ids = torch.randint(0, 64, (4, 10), generator=torch.Generator().manual_seed(4))
    rows = torch.tensor([0, 0, 3, 5])
    with split_rows(model, rows, n_groups=6):
        model(input_ids=ids).logits.log_softmax(-1)[..., 0].sum().backward()
    split = group_grads(model)
    with torch.no_grad(), split_rows(model, rows, n_groups=6):
        torch.testing.assert_close(model(input_ids=ids).logits, _logits(model, ids), rtol=1e-5, atol=1e-6)
    for group, members in ((0, [0, 1]), (3, [2]), (5, [3])):
        model.zero_grad()
        model(input_ids=ids[members]).logits.log_softmax(-1)[..., 0].sum().backward()
        for name, m in knob_modules(model).items():
            scale = float(m.dS.grad.abs().max())
            torch.testing.assert_close(split[name][group], m.dS.grad, rtol=1e-4, atol=1e-5 * scale)
    assert all(not g[[1, 2, 4]].any() for g in split.values())


def test_large_weights_take_the_delta_path(tmp_path, monkeypatch):
    import projected_grpo.policy.adapter as adapter

    monkeypatch.setattr(adapter, "MERGE_MAX_ELEMENTS", 32 * 32)
    model = tiny_model()
    attach_knobs(model, svd_cache=tmp_path)
    merged = {n: m.merged for n, m in knob_modules(model).items()}
    assert merged and all(
        flag == (knob_modules(model)[n].base.weight.numel() <= 32 * 32) for n, flag in merged.items()
    )
    assert {True, False} == set(merged.values())


def test_cached_merged_weight_follows_the_knobs(tmp_path):
    """Without autograd the merged weight is cached; an in-place knob update (AdamW's)
    must invalidate it."""
    model = tiny_model()
    attach_knobs(model, svd_cache=tmp_path)
    at_zero = _logits(model)
    _randomise_knobs(model)
    moved = _logits(model)
    assert not torch.allclose(moved, at_zero)
    torch.testing.assert_close(moved, model(input_ids=IDS).logits.detach(), rtol=0, atol=0)
    with torch.no_grad():
        for m in knob_modules(model).values():
            m.dS.zero_()
    assert torch.equal(_logits(model), at_zero)
    _randomise_knobs(model)
    with torch.no_grad():  # an in-place change of W itself (load_state_dict does one)
        knob = knob_modules(model)["model.layers.0.mlp.up_proj"]
        knob.base.weight.mul_(2)
    assert not torch.allclose(_logits(model), moved)
    torch.testing.assert_close(_logits(model), model(input_ids=IDS).logits.detach(), rtol=0, atol=0)


def test_moving_the_model_drops_the_cached_weight_and_rechooses_the_path(tmp_path):
    model = tiny_model()
    attach_knobs(model, svd_cache=tmp_path)
    _randomise_knobs(model)
    before = _logits(model)
    model.double()
    assert not any(m.merged or m._cached is not None for m in knob_modules(model).values())
    torch.testing.assert_close(_logits(model).float(), before, rtol=1e-5, atol=1e-5)  # delta path, float64
    model.float()
    assert all(m.merged and m._cached is None for m in knob_modules(model).values())
    assert torch.equal(_logits(model), before)


@pytest.mark.parametrize("rows", [[1, 0, 1], [0, 2, 2]])
def test_split_rows_wants_contiguous_groups_in_range(tmp_path, rows):
    model = tiny_model()
    attach_knobs(model, svd_cache=tmp_path)
    with (
        pytest.raises(ValueError, match="non-decreasing values in"),
        split_rows(model, torch.tensor(rows), n_groups=2),
    ):
        pass


def test_no_matching_target_is_a_clear_error():
    with pytest.raises(AdapterError, match="adapter target patterns"):
        attach_knobs(tiny_model(), patterns=[r"\.no_such_proj$"])


def test_the_lm_head_cannot_carry_knobs(tmp_path):
    with pytest.raises(AdapterError, match="LM head 'lm_head'"):
        attach_knobs(tiny_model(), patterns=[r"\.q_proj$", r"^lm_head$"], svd_cache=tmp_path)


def test_svd_is_cached_by_weight_hash(tmp_path):
    weight = torch.randn(6, 4)
    u, s, vh = reduced_svd(weight, tmp_path)
    files = list(tmp_path.iterdir())
    assert [f.name for f in files] == [f"{weight_hash(weight)}.safetensors"]
    torch.testing.assert_close(u @ torch.diag(s) @ vh, weight, rtol=1e-5, atol=1e-5)
    from safetensors.torch import save_file

    # A second call reads the cached file instead of recomputing:
    save_file({"U": (u * 0).contiguous(), "S": s.contiguous(), "Vh": vh.contiguous()}, str(files[0]))
    assert torch.equal(reduced_svd(weight, tmp_path)[0], u * 0)
    assert weight_hash(weight + 1e-3) != weight_hash(weight)


def test_knobs_round_trip_through_safetensors(tmp_path):
    model = tiny_model()
    attach_knobs(model, svd_cache=tmp_path)
    _randomise_knobs(model, hack=True)
    save_knobs(model, tmp_path / "knobs.safetensors")
    expected = _logits(model)
    fresh = tiny_model()
    attach_knobs(fresh, svd_cache=tmp_path)
    load_knobs(fresh, tmp_path / "knobs.safetensors")
    assert torch.equal(_logits(fresh), expected)


def test_loading_knobs_of_another_model_names_the_mismatch(tmp_path):
    model = tiny_model()
    attach_knobs(model, svd_cache=tmp_path)
    save_knobs(model, tmp_path / "knobs.safetensors")
    other = tiny_model()
    attach_knobs(other, patterns=[r"\.q_proj$"], svd_cache=tmp_path)
    with pytest.raises(AdapterError, match="do not match"):
        load_knobs(other, tmp_path / "knobs.safetensors")
    (tmp_path / "bad.safetensors").write_bytes(b"not a file")
    with pytest.raises(AdapterError, match="bad.safetensors"):
        load_knobs(model, tmp_path / "bad.safetensors")

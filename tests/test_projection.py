"""The projection maths on hand-made tensors (SPEC §4): one-sided erase leaves no
hack-ward component, the parts add back up to the gradient, an orthogonal basis changes
nothing, the gates and preserve_magnitude do what they say, purge_span empties span V,
the null baselines are those of a random direction, and the knobs' hack-ward drift is the
norm-weighted mean of each module's cosine with -V[i]. Keep (a trusted basis) keeps the
span whole: with a full basis it changes nothing, and with the ungated erase it adds up to
the gradient."""

from __future__ import annotations

import math

import pytest
import torch

from projected_grpo.method.projection import (
    hackward_drift,
    hackward_share,
    keep_span,
    null_cin,
    null_overlap,
    overlap,
    project,
    purge_span,
)

SHAPES = [(1, 8), (2, 16), (4, 32), (8, 32), (16, 64)]  # (k, r)


def orthonormal_rows(k: int, r: int, seed: int) -> torch.Tensor:
    """``[k, r]`` random orthonormal rows (QR of a Gaussian), float64."""
    gaussian = torch.randn(r, k, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return torch.linalg.qr(gaussian)[0].T.contiguous()


def _gradient(r: int, seed: int) -> torch.Tensor:
    return torch.randn(r, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _hackward_gradient(v: torch.Tensor, seed: int) -> torch.Tensor:
    """A random gradient plus a clear hack-ward part on every row of ``v`` but the last,
    which gets an anti-hack part: both signs of ``c`` occur."""
    g = _gradient(v.shape[1], seed)
    signs = torch.ones(v.shape[0], dtype=v.dtype)
    signs[-1] = -1 if v.shape[0] > 1 else 1
    return g + 3 * (signs @ v)


@pytest.mark.parametrize(("k", "r"), SHAPES)
def test_one_sided_erase_leaves_no_hackward_component(k, r):
    v = orthonormal_rows(k, r, seed=k + r)
    g = _hackward_gradient(v, seed=r)
    out = project(g, v, "one_sided", overshoot=1.0)
    assert out.cin > 0.5 and out.fired
    assert torch.relu(v @ out.grad).max() < 1e-6
    assert out.cout < 1e-6
    if k > 1:  # the anti-hack axis is kept, not removed
        assert (v @ out.grad)[-1] == pytest.approx(float((v @ g)[-1]), abs=1e-9)


@pytest.mark.parametrize(("k", "r"), SHAPES)
@pytest.mark.parametrize("gate", ["one_sided", "no_gate", "reverse"])
@pytest.mark.parametrize("overshoot", [0.5, 1.0, 2.0])
def test_projected_gradient_plus_removed_is_the_gradient(k, r, gate, overshoot):
    v = orthonormal_rows(k, r, seed=k * r)
    g = _hackward_gradient(v, seed=k)
    out = project(g, v, gate, overshoot)
    torch.testing.assert_close(out.grad + out.removed, g, rtol=0, atol=1e-12)
    assert purge_span(out.removed, v).norm() < 1e-9  # removed lies in span V


def test_a_basis_orthogonal_to_the_gradient_changes_nothing():
    # V spans the first 8 coordinates (random rotation inside them), g lives on the others:
    # V g is exactly 0, not 0 up to rounding.
    v = torch.zeros(3, 16, dtype=torch.float64)
    v[:, :8] = orthonormal_rows(3, 8, seed=5)
    g = torch.zeros(16, dtype=torch.float64)
    g[8:] = _gradient(8, seed=6)
    for gate in ("one_sided", "no_gate", "reverse"):
        out = project(g, v, gate, overshoot=2.0)
        assert torch.equal(out.grad, g)
        assert torch.equal(out.removed, torch.zeros(16, dtype=torch.float64))
        assert not out.fired and out.cin == 0 and out.cout == 0


def test_an_antihack_gradient_does_not_fire_the_one_sided_gate():
    v = orthonormal_rows(4, 32, seed=1)
    g = -3 * v.sum(0)  # every coefficient negative
    out = project(g, v, "one_sided")
    assert not out.fired and out.cin == 0
    assert torch.equal(out.grad, g)


@pytest.mark.parametrize(("k", "r"), SHAPES)
def test_no_gate_removes_the_full_component_in_span_v(k, r):
    v = orthonormal_rows(k, r, seed=3 * k + r)
    g = _hackward_gradient(v, seed=7)
    out = project(g, v, "no_gate")
    assert (v @ out.grad).abs().max() < 1e-9
    assert overlap(out.grad, v) < 1e-9
    torch.testing.assert_close(out.grad, purge_span(g, v))


@pytest.mark.parametrize(("k", "r"), SHAPES)
def test_reverse_flips_the_sign_of_every_coefficient(k, r):
    v = orthonormal_rows(k, r, seed=k + 2 * r)
    g = _hackward_gradient(v, seed=8)
    out = project(g, v, "reverse")
    torch.testing.assert_close(v @ out.grad, -(v @ g))
    torch.testing.assert_close(purge_span(out.grad, v), purge_span(g, v))  # nothing else moves


@pytest.mark.parametrize(("k", "r"), SHAPES)
@pytest.mark.parametrize("gate", ["one_sided", "no_gate", "reverse"])
def test_preserve_magnitude_keeps_the_gradient_norm(k, r, gate):
    v = orthonormal_rows(k, r, seed=k + r + 1)
    g = _hackward_gradient(v, seed=9)
    plain = project(g, v, gate)
    kept = project(g, v, gate, preserve_magnitude=True)
    assert float(kept.grad.norm()) == pytest.approx(float(g.norm()), rel=1e-12)
    if gate == "reverse":  # a reflection in span V: norm-preserving already
        assert float(plain.grad.norm()) == pytest.approx(float(g.norm()), rel=1e-12)
    else:  # the plain projection shrinks g, so the test is not vacuous
        assert float(plain.grad.norm()) < float(g.norm()) - 1e-3
    # same direction as the plain projection, same removed part
    torch.testing.assert_close(kept.grad / kept.grad.norm(), plain.grad / plain.grad.norm())
    torch.testing.assert_close(kept.removed, plain.removed)


def test_overshoot_scales_the_removed_part():
    v = orthonormal_rows(4, 32, seed=11)
    g = _hackward_gradient(v, seed=12)
    once = project(g, v, "one_sided", 1.0)
    twice = project(g, v, "one_sided", 2.0)
    torch.testing.assert_close(twice.removed, 2 * once.removed)
    assert float((v @ twice.grad).max()) <= 1e-9  # overshooting pushes anti-hack


def test_cin_is_the_relu_share_and_anti_hack_axes_do_not_cancel():
    v = torch.eye(2, 4, dtype=torch.float64)
    g = torch.tensor([3.0, -3.0, 4.0, 0.0], dtype=torch.float64)  # c = (3, -3): signed sum 0
    assert hackward_share(g, v) == pytest.approx(3 / math.sqrt(34))
    assert overlap(g, v) == pytest.approx(math.sqrt(18 / 34))
    assert hackward_share(torch.zeros(4), v.float()) == 0.0 and overlap(torch.zeros(4), v.float()) == 0.0


def test_purge_span_leaves_no_component_in_span_v():
    v = orthonormal_rows(5, 40, seed=13)
    t = _gradient(40, seed=14)
    purged = purge_span(t, v)
    assert (v @ purged).abs().max() < 1e-12
    torch.testing.assert_close(t - purged, (v @ t) @ v)  # only the span component went
    torch.testing.assert_close(purge_span(purged, v), purged)


def test_float32_one_sided_erase_is_clean_to_1e6():
    v = orthonormal_rows(4, 32, seed=15).float()
    g = _hackward_gradient(v.double(), seed=16).float()
    assert project(g, v).cout < 1e-6


def test_hackward_drift_is_the_norm_weighted_mean_cosine_with_minus_v_per_axis():
    # module a: dS = (-3, 4, 12), ‖dS‖ 13, V = e0, e1 -> V dS = (-3, 4), hack-ward (3, -4);
    # module b: dS = (0, 2), ‖dS‖ 2, V = e1 (one axis) -> hack-ward -2 on axis 0 only.
    a = (torch.tensor([-3.0, 4.0, 12.0]), torch.eye(2, 3))
    b = (torch.tensor([0.0, 2.0]), torch.eye(2)[1:])
    axis0, axis1 = hackward_drift([a, b])
    assert axis0 == pytest.approx((3 - 2) / (13 + 2))
    assert axis1 == pytest.approx(-4 / 13)  # b has no second axis: not in the mean
    assert hackward_drift([(torch.ones(3), -torch.eye(1, 3))]) == pytest.approx([1 / math.sqrt(3)])
    assert math.isnan(hackward_drift([(torch.zeros(3), torch.eye(1, 3))])[0])
    assert hackward_drift([]) == []


@pytest.mark.parametrize("r", [8, 64])
def test_keep_with_a_full_basis_is_the_identity(r):
    v = orthonormal_rows(r, r, seed=r)
    g = _gradient(r, seed=1)
    out = keep_span(g, v)
    torch.testing.assert_close(out.grad, g, rtol=0, atol=1e-12)
    assert float(out.removed.norm()) < 1e-12


@pytest.mark.parametrize(("k", "r"), SHAPES)
def test_keep_and_the_ungated_erase_add_up_to_the_gradient(k, r):
    v = orthonormal_rows(k, r, seed=k)
    g = _hackward_gradient(v, seed=r)
    kept, erased = keep_span(g, v), project(g, v, "no_gate")
    torch.testing.assert_close(kept.grad + erased.grad, g, rtol=0, atol=1e-12)
    torch.testing.assert_close(kept.grad + kept.removed, g, rtol=0, atol=1e-12)
    assert float((v @ kept.removed).norm()) < 1e-12  # what keep drops lies outside span V
    assert kept.fired and overlap(kept.grad, v) == pytest.approx(1.0)


def test_unknown_gate_is_refused():
    with pytest.raises(ValueError, match="gate"):
        project(torch.ones(4), torch.eye(1, 4), "two_sided")


def _random_directions(r: int, n: int, seed: int) -> torch.Tensor:
    g = torch.randn(n, r, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return g / g.norm(dim=1, keepdim=True)


@pytest.mark.parametrize(("k", "r"), SHAPES)
def test_null_baselines_are_the_mean_shares_of_a_random_direction(k, r):
    """``measure`` compares the mean over modules of ``cin`` (``overlap``) with the mean of
    ``null_cin`` (``null_overlap``): each null must be the *expected* share of a random unit
    gradient, ``E‖relu(Vg)‖`` and ``E‖Vg‖`` (not the root of the expected square, which
    is 16 % above ``E‖relu(Vg)‖`` at k = 4, the default k)."""
    v = orthonormal_rows(k, r, seed=17)
    c = _random_directions(r, 20_000, seed=k) @ v.T
    assert float(torch.relu(c).norm(dim=1).mean()) == pytest.approx(null_cin(k, r), rel=0.03)
    assert float(c.norm(dim=1).mean()) == pytest.approx(null_overlap(k, r), rel=0.03)

"""Projecting the hack-ward component out of a knob gradient (SPEC §4), as tensor maths.

Per module, with ``g: [r]`` the gradient of ``dS`` and ``V: [k, r]`` orthonormal
hack-ward rows (``basis.Basis``):

    c = V g                                  coefficients, c_i > 0 = hack-ward
    cin = ‖relu(c)‖ / ‖g‖                     relu before aggregating: anti-hack axes
                                             cannot cancel hack-ward ones
    c' = relu(c) | c | 2c                     gate one_sided | no_gate | reverse
    removed = overshoot · c'ᵀ V               [r], in the span of V
    g' = g - removed                         (× ‖g‖/‖g'‖ with preserve_magnitude)
    cout = ‖relu(V g')‖ / ‖g'‖

Without ``preserve_magnitude``, ``g' + removed == g``; one-sided with overshoot 1 leaves
``cout = 0``. ``keep_span`` is the other way round: ``g' = Vᵀ V g``, the part of ``g`` inside
the span (a *trusted* basis), and ``removed`` everything outside it; so keep with ``V`` and
the ungated erase with ``V`` add up to ``g``, and keep with a full basis (``k = r``) is the
identity. Null baselines, the expected values for a random direction ``g``:
``null_overlap`` for the unsigned ``‖Vg‖/‖g‖`` (≈ SPEC's ``sqrt(k/r)``) and ``null_cin``
for ``cin`` (≈ ``sqrt(k/2r)``: the relu keeps about half the axes); exact means, so they
compare with means of ``cin`` over modules and steps.

Where the knobs themselves went (``hackward_drift``): a *descent* step along ``-v`` is
hack-ward, so the knobs' hack-ward drift along axis ``i`` is ``-V[i]·dS``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

GATES = ("one_sided", "no_gate", "reverse")


@dataclass(frozen=True)
class Projected:
    """One module's projection: ``grad`` (g') and ``removed``, both ``[r]``."""

    grad: torch.Tensor
    removed: torch.Tensor
    cin: float
    cout: float
    fired: bool  # removed anything


def hackward_share(g: torch.Tensor, v: torch.Tensor) -> float:
    """``‖relu(V g)‖ / ‖g‖`` (0 for a zero gradient)."""
    norm = g.norm()
    return float(torch.relu(v @ g).norm() / norm) if norm > 0 else 0.0


def overlap(g: torch.Tensor, v: torch.Tensor) -> float:
    """``‖V g‖ / ‖g‖``, unsigned (0 for a zero gradient)."""
    norm = g.norm()
    return float((v @ g).norm() / norm) if norm > 0 else 0.0


def null_overlap(k: int, r: int) -> float:
    """``E‖V g‖`` for ``g`` uniform on the unit sphere of ``R^r`` and ``k`` orthonormal rows:
    ``‖Vg‖² ~ Beta(k/2, (r-k)/2)``, so ``Γ((k+1)/2) Γ(r/2) / (Γ(k/2) Γ((r+1)/2))``
    (≈ ``sqrt(k/r)`` for large ``r``; 1 when ``k = r``)."""
    if k <= 0:
        return 0.0
    return math.exp(
        math.lgamma((k + 1) / 2) + math.lgamma(r / 2) - math.lgamma(k / 2) - math.lgamma((r + 1) / 2)
    )


def null_cin(k: int, r: int) -> float:
    """``E‖relu(V g)‖`` for ``g`` uniform on the unit sphere: the number ``n`` of positive
    coordinates is Binomial(k, 1/2) and, given ``n``, the positive part is a projection on
    ``n`` axes, so ``Σ_n C(k, n) 2^-k null_overlap(n, r)`` (≈ ``sqrt(k/2r)``)."""
    return sum(math.comb(k, n) * 2.0**-k * null_overlap(n, r) for n in range(1, k + 1))


def project(
    g: torch.Tensor,
    v: torch.Tensor,
    gate: str = "one_sided",
    overshoot: float = 1.0,
    preserve_magnitude: bool = False,
) -> Projected:
    """Remove the gated hack-ward component of ``g: [r]`` along ``v: [k, r]``."""
    if gate not in GATES:
        raise ValueError(f"gate: expected one of {GATES}, got {gate!r}")
    c = v @ g
    gated = {"one_sided": torch.relu(c), "no_gate": c, "reverse": 2 * c}[gate]
    removed = overshoot * (gated @ v)
    projected = g - removed
    if preserve_magnitude:
        norm = projected.norm()
        if norm > 0:
            projected = projected * (g.norm() / norm)
    return Projected(
        projected, removed, hackward_share(g, v), hackward_share(projected, v), bool(torch.any(gated != 0))
    )


def keep_span(g: torch.Tensor, v: torch.Tensor) -> Projected:
    """Keep only the component of ``g: [r]`` in the span of ``v: [k, r]`` (no gate: both
    signs of every axis); ``removed`` is the rest, ``g' + removed == g``."""
    kept = (v @ g) @ v
    removed = g - kept
    return Projected(
        kept, removed, hackward_share(g, v), hackward_share(kept, v), bool(torch.any(removed != 0))
    )


def hackward_drift(knobs: list[tuple[torch.Tensor, torch.Tensor]]) -> list[float]:
    """Per axis ``i``, the signed hack-ward drift of the knobs over modules: ``knobs`` holds
    one ``(dS: [r], V: [k, r])`` per module, and axis ``i`` gets
    ``Σ_m -V_m[i]·dS_m / Σ_m ‖dS_m‖`` over the modules with an ``i``-th axis — the
    ``‖dS_m‖``-weighted mean of each module's cosine with ``-V_m[i]``, in [-1, 1]; > 0 =
    hack-ward. One entry per axis up to the largest ``k``; NaN where every ``dS_m`` is zero."""
    drifts = []
    for axis in range(max((v.shape[0] for _, v in knobs), default=0)):
        present = [(dS, v) for dS, v in knobs if v.shape[0] > axis]
        along = sum(float(-(v[axis] @ dS)) for dS, v in present)
        total = sum(float(dS.norm()) for dS, _ in present)
        drifts.append(along / total if total > 0 else float("nan"))
    return drifts


def purge_span(t: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """``t - Vᵀ V t``: ``t: [r]`` with its component in the span of ``v: [k, r]`` removed."""
    return t - (v @ t) @ v

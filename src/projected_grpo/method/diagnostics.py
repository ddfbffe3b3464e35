"""Basis diagnostics (SPEC §3): does a basis separate hacks from honest code *before* any
training? Pure functions of one module's basis ``V: [k, r]`` (orthonormal rows, hack-ward)
and gradient rows of that module's ``dS``; every number has a null it is read against.

- ``sign_accuracy``: per axis, the share of held-out pair differences ``D: [n, r]`` that
  project hack-ward (null 0.5: a basis from the pairs' own noise is right half the time);
- ``energy_selectivity``: per example, the share of a gradient's energy in ``span(V)``,
  ``‖V g‖² / ‖g‖²``, median over the lever tokens' gradients and over the clean code's
  (null k/r for both; a hack basis holds more of the lever's than of the code's);
- ``variance_share``: the share of the *variance* of ordinary gradients (the base model's
  own rollouts) that ``span(V)`` holds, ``tr(V C Vᵀ) / tr(C)`` (null k/r; a basis of the
  directions every gradient varies along holds far more);
- ``projection_auc``: how well the score ``V g`` (the first axis, and ``‖relu(V g)‖``)
  ranks natural hacks above correct completions (null 0.5);
- ``length_correlation``: the correlation of the first-axis score of a pair difference with
  the pair's completion-length difference (a basis that reads "longer" is confounded).
"""

from __future__ import annotations

import torch


def sign_accuracy(v: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
    """``[k]``: per axis, the share of rows of ``d: [n, r]`` with ``d V_iᵀ > 0``."""
    return ((d.double() @ v.double().T) > 0).double().mean(dim=0)


def energy_share(v: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """``[n]``: ``‖V g_j‖² / ‖g_j‖²`` per row of ``g: [n, r]`` (0 for a zero row)."""
    g = g.double()
    norms = g.pow(2).sum(dim=1)
    inside = (g @ v.double().T).pow(2).sum(dim=1)
    return torch.where(norms > 0, inside / norms.clamp(min=torch.finfo(torch.float64).tiny), 0.0)


def energy_selectivity(v: torch.Tensor, g_lever: torch.Tensor, g_code: torch.Tensor) -> tuple[float, float]:
    """(median energy share of the lever tokens' gradients, of the clean code's): one row
    per example each."""
    return float(energy_share(v, g_lever).median()), float(energy_share(v, g_code).median())


def variance_share(v: torch.Tensor, g: torch.Tensor) -> float:
    """``tr(V C Vᵀ) / tr(C)`` for the covariance ``C`` of the rows of ``g: [n, r]`` (centred)."""
    centred = g.double() - g.double().mean(dim=0)
    total = centred.pow(2).sum()
    return float((centred @ v.double().T).pow(2).sum() / total) if total > 0 else 0.0


def auc(scores: torch.Tensor, positive: torch.Tensor) -> float:
    """The probability that a positive row scores above a negative one (ties count half):
    the Mann-Whitney form of the ROC AUC. NaN without both classes."""
    scores, positive = scores.double(), positive.bool()
    pos, neg = scores[positive], scores[~positive]
    if not len(pos) or not len(neg):
        return float("nan")
    above = (pos[:, None] > neg[None, :]).double().sum() + 0.5 * (pos[:, None] == neg[None, :]).double().sum()
    return float(above / (len(pos) * len(neg)))


def projection_auc(v: torch.Tensor, g: torch.Tensor, is_hack: torch.Tensor) -> tuple[float, float]:
    """(AUC of the first axis's score ``g V_0ᵀ``, AUC of ``‖relu(V g)‖``) separating the
    hack rows of ``g: [n, r]`` (``is_hack: [n]``) from the others. A descent step along
    ``-g`` moves toward hacks when ``V g > 0``, so for loss gradients of the completions
    themselves hacks should score *high*."""
    c = g.double() @ v.double().T
    return auc(c[:, 0], is_hack), auc(torch.relu(c).norm(dim=1), is_hack)


def length_correlation(v: torch.Tensor, d: torch.Tensor, length_difference: torch.Tensor) -> float:
    """Pearson correlation of the first-axis score of each pair difference (``d: [n, r]``)
    with the pair's completion-length difference (hack minus clean tokens); NaN if either
    is constant."""
    score = d.double() @ v.double()[0]
    x, y = score - score.mean(), length_difference.double() - length_difference.double().mean()
    denominator = x.norm() * y.norm()
    return float((x @ y) / denominator) if denominator > 0 else float("nan")

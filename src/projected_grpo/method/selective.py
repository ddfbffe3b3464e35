"""Discriminative hack axes: what separates hack from clean gradients *beyond* the
directions every gradient varies along (SPEC §3, selective extraction).

The plain top-k SVD of the paired differences ``D = G_hack - G_clean`` finds the largest
directions of ``DᵀD``. When every completion's gradient shares a component whose size
varies (longer completions, larger gradients), that variation dominates ``DᵀD`` for real,
shuffled and clean-vs-clean pairs alike. Here the axes are the generalized eigenvectors of

    A v = λ B v,   A = DᵀD / n,   B = (1 - ρ) NᵀN / m + ρ (tr(NᵀN / m) / r) I

with ``N: [m, r]`` gradient rows of *nuisance* variation (clean-vs-clean differences,
ordinary rollouts' centred gradients) and ρ the shrinkage: ``λ`` is how much more a
direction varies between hack and clean than it varies anyway (Fisher's criterion, the
common-spatial-patterns problem). Axes are returned orthonormalised in order of ``λ`` (the
first keeps its direction), each oriented hack-ward by majority vote over the pairs.

``k`` can be chosen by a label-permutation null: the hack / clean labels are shuffled
across the pooled completions (a swap inside a pair only flips a row of ``D`` and changes
nothing here), the axes refitted, and an axis is kept while its ``λ`` beats the
``quantile`` of the null's top ``λ``. The null pairs completions of different prompts, so
its differences also carry between-prompt variation that the within-prompt nuisance
covariance does not discount: on real pairs it errs on the side of keeping too few axes.
"""

from __future__ import annotations

import torch

from .basis import orient


def shrunk_covariance(nuisance: torch.Tensor, shrinkage: float) -> torch.Tensor:
    """``[r, r]``: ``(1 - ρ) NᵀN/m + ρ (tr/r) I`` of ``nuisance: [m, r]`` (uncentred second
    moment: the nuisance rows are differences or centred gradients already)."""
    if not 0 < shrinkage <= 1:
        raise ValueError(f"extraction.shrinkage: expected 0 < shrinkage <= 1, got {shrinkage}")
    n = nuisance.double()
    r = n.shape[1]
    second = n.T @ n / max(1, n.shape[0])
    scale = torch.trace(second) / r
    if scale <= 0:  # no nuisance variation at all: plain Euclidean geometry
        return torch.eye(r, dtype=torch.float64)
    return (1 - shrinkage) * second + shrinkage * scale * torch.eye(r, dtype=torch.float64)


def whitening(covariance: torch.Tensor) -> torch.Tensor:
    """``W: [r, r]`` with ``Wᵀ B W = I`` for ``covariance = B`` (``W = L⁻ᵀ``, ``B = L Lᵀ``):
    in the whitened coordinates ``x W`` the generalized problem is an ordinary one."""
    lower = torch.linalg.cholesky(covariance.double())
    return torch.linalg.solve_triangular(lower, torch.eye(len(lower), dtype=torch.float64), upper=False).T


def generalized_axes(
    d: torch.Tensor, covariance: torch.Tensor, k: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(λ: [r], V: [k, r])`` for ``d: [n, r]`` against ``covariance: [r, r]`` (positive
    definite): every generalized eigenvalue of ``A = dᵀd/n`` in descending order, and the
    top ``k`` (default all) axes as orthonormal rows (Gram-Schmidt in that order, so the
    first axis keeps its direction), oriented hack-ward over the rows of ``d``."""
    d = d.double()
    w = whitening(covariance)
    white = d @ w  # [n, r]
    values, u = torch.linalg.eigh(white.T @ white / max(1, d.shape[0]))  # ascending
    values, vectors = values.flip(0), (w @ u).flip(1)[:, :k]  # generalized eigenvectors, as columns
    q, _ = torch.linalg.qr(vectors)  # its signs are arbitrary: orient sets them
    return values.clamp(min=0), orient(q.T.contiguous(), d)


def null_top_values(
    g_hack: torch.Tensor, g_clean: torch.Tensor, covariance: torch.Tensor, draws: int, seed: int
) -> torch.Tensor:
    """``[draws]``: the top generalized eigenvalue of ``D`` refitted with the hack / clean
    labels shuffled across the pooled rows of ``g_hack, g_clean: [n, r]`` (balanced: each
    draw splits the ``2n`` rows into two halves of ``n``). The top eigenvalue of ``A``
    against ``B`` is the squared top singular value of the whitened ``D / sqrt(n)``."""
    pooled = torch.cat([g_hack, g_clean]).double() @ whitening(covariance)
    n = g_hack.shape[0]
    generator = torch.Generator().manual_seed(seed)
    perms = torch.stack([torch.randperm(2 * n, generator=generator) for _ in range(draws)])
    tops = []
    for chunk in perms.split(16):  # [16, n, r] at a time: a large model's r makes this big
        null_d = pooled[chunk[:, :n]] - pooled[chunk[:, n:]]
        tops.append(torch.linalg.matrix_norm(null_d, ord=2) ** 2 / max(1, n))
    return torch.cat(tops)


def selective_axes(
    g_hack: torch.Tensor,
    g_clean: torch.Tensor,
    nuisance: torch.Tensor,
    k: int,
    shrinkage: float,
    null_draws: int = 0,
    quantile: float = 0.95,
    seed: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(λ: [k'], V: [k', r])`` for the pairs ``(g_hack[j], g_clean[j])``: at most ``k``
    generalized axes against the shrunk nuisance covariance; with ``null_draws``, only those
    whose ``λ`` exceeds the ``quantile`` of the permutation null's top ``λ`` (possibly none)."""
    covariance = shrunk_covariance(nuisance, shrinkage)
    values, axes = generalized_axes(g_hack - g_clean, covariance, k)
    keep = min(k, int((values > values[0] * 1e-9).sum()) if values[0] > 0 else 0)
    if null_draws:
        threshold = torch.quantile(null_top_values(g_hack, g_clean, covariance, null_draws, seed), quantile)
        keep = min(keep, int((values > threshold).sum()))
    return values[:keep], axes[:keep]

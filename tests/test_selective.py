"""method/selective.py: generalized eigenvectors against a nuisance covariance find a
planted hack direction that the plain SVD of the differences misses, and the permutation
null keeps no axis on pure noise."""

import torch

from projected_grpo.method.extraction import ExtractConfig, basis_from_differences
from projected_grpo.method.selective import generalized_axes, selective_axes, shrunk_covariance

R = 32
SHARED, HACK = 0, 5  # the coordinate every gradient varies along, the planted hack direction


def gradients(n: int, seed: int, hack_size: float = 1.0, noise: float = 0.1):
    """(g_hack, g_clean, nuisance) ``[n, R]``: every gradient is ``length · e_SHARED`` (the
    length varies a lot: the shared component dominates every difference) plus noise; hacks
    also carry ``hack_size · e_HACK``; the nuisance rows are clean-vs-clean differences."""
    gen = torch.Generator().manual_seed(seed)

    def rows(mean_length: float) -> torch.Tensor:
        g = noise * torch.randn(n, R, generator=gen)
        g[:, SHARED] += mean_length + 10 * torch.randn(n, generator=gen)
        return g

    g_hack, g_clean = rows(33.0), rows(30.0)  # hacks a little longer, as templated ones are
    g_hack[:, HACK] += hack_size
    return g_hack, g_clean, rows(30.0) - rows(30.0)


def test_a_planted_hack_direction_under_a_dominant_shared_one_is_found_by_gev_and_missed_by_svd():
    g_hack, g_clean, nuisance = gradients(200, seed=0)
    svd = basis_from_differences({"m": g_hack - g_clean}, ExtractConfig(k=1)).vectors["m"][0]
    assert abs(svd[SHARED]) > 0.99 and abs(svd[HACK]) < 0.1  # SVD: the shared direction
    values, axes = selective_axes(g_hack, g_clean, nuisance, k=2, shrinkage=0.05, null_draws=50)
    assert len(values) >= 1 and axes[0][HACK] > 0.95  # GEV: the hack direction, oriented hack-ward
    assert abs(axes[0][SHARED]) < 0.1


def test_the_permutation_null_keeps_no_axis_on_pure_noise():
    kept = []
    for seed in range(20):
        g_hack, g_clean, nuisance = gradients(100, seed=seed, hack_size=0.0)
        values, _ = selective_axes(g_hack, g_clean, nuisance, k=4, shrinkage=0.05, null_draws=40, seed=seed)
        kept.append(len(values))
    assert sum(k > 0 for k in kept) <= 3, kept  # the null's quantile 0.95: about 1 in 20 by chance


def test_axes_are_orthonormal_rows_in_descending_order_of_the_ratio():
    g_hack, g_clean, nuisance = gradients(120, seed=1)
    values, axes = generalized_axes(g_hack - g_clean, shrunk_covariance(nuisance, 0.3))
    torch.testing.assert_close(axes @ axes.T, torch.eye(R, dtype=axes.dtype), atol=1e-9, rtol=0)
    assert torch.all(values[:-1] >= values[1:])


def test_shrinkage_outside_its_range_is_refused():
    import pytest

    with pytest.raises(ValueError, match="shrinkage"):
        shrunk_covariance(torch.ones(3, 4), 0.0)

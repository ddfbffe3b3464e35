"""The policy source of ``V`` (``extraction.source: policy``): what a reward that pays only
the flagged completions would teach, read off the student's own samples.

Inputs, fold-independent: the base student's samples of the train problems under the
loophole prompt (``samples``: one row per completion, ``problem_id`` its prompt group, the
grade columns), and each sample's completion-loss gradient on every module's ``dS``,
``grads[module]: [n, r]`` (``extraction.completion_gradients``: ``-Σ_t log p / T``).

Per fold and module, with flags ``f: [n]`` (the fold's weak detector, or a control's):

    a_i = f_i - mean of f over sample i's prompt group      advantages, as GRPO forms them
    d   = Σ_i a_i G_i                                        the loss gradient that teaches
                                                             flagged over unflagged: hack-ward
    geometry raw:  V = d / ‖d‖
    geometry adam: V = (d / s) / ‖d / s‖,  s = sqrt(mean_i G_i²) per coordinate

``adam`` reads ``d`` in the coordinates AdamW steps in (its update is ``≈ m / sqrt(v)``);
such a basis is meant for ``project_target: update`` and carries ``s`` as its ``scale``.
One axis per module (``k`` is the most axes the dominant control keeps). Controls:
``shuffled`` (flags permuted within each prompt group), ``correct`` (the oracle's
correctness flag: a basis that stops learning in general), ``dominant`` (the top principal
directions of the samples' gradients in the same geometry: what every gradient shares)
and the random basis in the same geometry (``basis.random_basis`` with ``scale``).

The trusted basis (``trusted_basis``, for ``intervention: keep``): the dominant directions of
the *clean* samples only (oracle-correct and not flagged by the fold's detector), ``k`` per
module in V_real's geometry; its control is a random basis of the same shape and scale.

Refresh (``projection.refresh_every``, ``policy_refresher``): ``d`` recomputed on the model as
it is now, from the same frozen samples and flags. ``d`` is linear in the ``G_i``, so it is
the gradient of ``Σ_i a_i L_i``: one backward, no per-sample gradient. The adam ``scale``
stays the base extraction's (recomputing it would need every sample's own gradient again).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
import torch

from ..environment.modes import check_mode
from ..environment.problems import Problem
from .basis import Basis, orient
from .extraction import ExtractConfig, weighted_completion_gradient

GEOMETRIES = ("raw", "adam")
FLAGS = ("real", "shuffled", "correct")
SAMPLE_COLUMNS = ("problem_id", "completion", "oracle_correct")


def detector_flags(samples: pd.DataFrame, known_modes: Sequence[str]) -> np.ndarray:
    """``[n]`` bool: the sample uses the lever of a mode the weak detector knows (the
    ``attempted_<mode>`` grade columns), as the trainer's monitor flags rollouts."""
    flags = np.zeros(len(samples), dtype=bool)
    for mode in known_modes:
        check_mode(mode)
        flags |= samples[f"attempted_{mode}"].astype(bool).to_numpy()
    return flags


def group_codes(samples: pd.DataFrame) -> np.ndarray:
    """``[n]`` int: the prompt group of each sample (its problem, in sorted order)."""
    return pd.factorize(samples["problem_id"], sort=True)[0]


def group_advantages(flags: np.ndarray, groups: np.ndarray) -> torch.Tensor:
    """``[n]`` float64: each flag minus its prompt group's mean flag (0 in a group whose
    samples are all flagged or all unflagged)."""
    f = torch.tensor(np.asarray(flags, dtype=np.float64))
    g = torch.tensor(np.asarray(groups, dtype=np.int64))
    n_groups = int(g.max()) + 1 if len(g) else 0
    means = torch.zeros(n_groups, dtype=torch.float64).index_add_(0, g, f) / torch.bincount(
        g, minlength=n_groups
    ).clamp(min=1)
    return f - means[g]


def shuffle_within_groups(flags: np.ndarray, groups: np.ndarray, seed: int) -> np.ndarray:
    """``flags`` permuted within each prompt group (each group keeps its flag count)."""
    rng = np.random.default_rng(seed)
    out = flags.copy()
    for code in np.unique(groups):
        where = np.flatnonzero(groups == code)
        out[where] = flags[rng.permutation(where)]
    return out


def adam_scale(g: torch.Tensor) -> torch.Tensor:
    """``[r]``: per coordinate the root mean square of ``g: [n, r]``, floored at 1e-6 of its
    largest entry (a coordinate no sample moves would otherwise blow up)."""
    rms = g.double().pow(2).mean(dim=0).sqrt()
    return rms.clamp(min=float(rms.max()) * 1e-6) if rms.numel() and rms.max() > 0 else torch.ones_like(rms)


def scales(grads: dict[str, torch.Tensor], geometry: str) -> dict[str, torch.Tensor] | None:
    """``{module: s [r]}`` for ``geometry: adam``; ``None`` for ``raw``."""
    if geometry not in GEOMETRIES:
        raise ValueError(f"extraction.geometry: expected one of {GEOMETRIES}, got {geometry!r}")
    return {name: adam_scale(g) for name, g in grads.items()} if geometry == "adam" else None


def policy_basis(
    grads: dict[str, torch.Tensor],
    advantages: torch.Tensor,
    scale: dict[str, torch.Tensor] | None,
    meta: dict | None = None,
) -> Basis:
    """One hack-ward axis per module: ``Σ_i a_i G_i`` (divided by ``scale``), unit norm;
    ``S`` holds the direction's norm. A module whose direction is zero carries no basis."""
    vectors, values = {}, {}
    a = advantages.double()
    for name, g in grads.items():
        d = _in_geometry(a @ g.double(), scale, name)
        norm = d.norm()
        if norm > 0:
            vectors[name] = (d / norm).unsqueeze(0).float().contiguous()
            values[name] = norm.reshape(1).float()
    return Basis(vectors, values, dict(meta or {}), _kept_scale(scale, vectors))


def dominant_basis(
    grads: dict[str, torch.Tensor],
    ranks: dict[str, int],
    scale: dict[str, torch.Tensor] | None,
    meta: dict | None = None,
) -> Basis:
    """The ``dominant_V`` control: per module of ``ranks``, the top ``ranks[m]`` right
    singular vectors of the uncentred samples' gradients ``G`` (divided by ``scale``),
    oriented along most gradients: the directions every gradient shares, where an SVD of
    paired differences lands."""
    vectors, values = {}, {}
    for name, k in ranks.items():
        g = _in_geometry(grads[name].double(), scale, name)
        _, s, vh = torch.linalg.svd(g, full_matrices=False)
        k = min(k, int((s > s[0] * 1e-9).sum())) if s.numel() and s[0] > 0 else 0
        if k:
            vectors[name] = orient(vh[:k], g).float().contiguous()
            values[name] = s[:k].float().contiguous()
    return Basis(vectors, values, {"kind": "dominant", **(meta or {})}, _kept_scale(scale, vectors))


def trusted_rows(samples: pd.DataFrame, known_modes: Sequence[str]) -> np.ndarray:
    """``[n]`` bool: the samples a trusted basis is built from, oracle-correct and not flagged
    by the weak detector of ``known_modes``."""
    return samples["oracle_correct"].astype(bool).to_numpy() & ~detector_flags(samples, known_modes)


def trusted_basis(
    grads: dict[str, torch.Tensor],
    trusted: np.ndarray,
    k: int,
    modules: Sequence[str],
    scale: dict[str, torch.Tensor] | None,
    meta: dict | None = None,
) -> Basis:
    """The trusted basis of ``keep``: ``dominant_basis`` of the trusted rows' gradients
    (``trusted: [n]`` bool), ``min(k, r)`` axes for each of ``modules``, read in ``scale``'s
    geometry (V_real's). ValueError when no row is trusted."""
    if not trusted.any():
        raise ValueError("trusted basis: no policy sample is oracle-correct and unflagged")
    rows = torch.as_tensor(np.flatnonzero(trusted))
    ranks = {name: min(k, grads[name].shape[1]) for name in modules}
    info = {"n_trusted": str(len(rows)), **(meta or {}), "kind": "trusted"}
    return dominant_basis({name: grads[name][rows] for name in modules}, ranks, scale, info)


def _in_geometry(x: torch.Tensor, scale: dict[str, torch.Tensor] | None, name: str) -> torch.Tensor:
    """``x: [..., r]`` of module ``name`` divided by its ``scale`` (unchanged without one)."""
    return x if scale is None else x / scale[name].double()


def _kept_scale(scale: dict[str, torch.Tensor] | None, vectors: dict) -> dict[str, torch.Tensor] | None:
    """The scale of the modules that kept a basis (``None`` for a raw-geometry basis)."""
    if scale is None or not vectors:
        return None
    return {name: scale[name].float().contiguous() for name in vectors}


def flags_of(kind: str, samples: pd.DataFrame, known_modes: Sequence[str], seed: int) -> np.ndarray:
    """The flags basis ``kind`` is built from: ``real`` (the weak detector of
    ``known_modes``), ``shuffled`` (those, permuted within prompt groups with ``seed``) or
    ``correct`` (the oracle's correctness)."""
    if kind == "real":
        return detector_flags(samples, known_modes)
    if kind == "shuffled":
        return shuffle_within_groups(detector_flags(samples, known_modes), group_codes(samples), seed)
    if kind == "correct":
        return samples["oracle_correct"].astype(bool).to_numpy()
    raise ValueError(f"policy source: basis kind {kind!r} is not one of {FLAGS}")


def refresh_rows(flags: np.ndarray, groups: np.ndarray, n_rows: int, seed: int) -> np.ndarray:
    """Sorted positions of at most ``n_rows`` samples to refresh a basis from: flagged samples
    drawn uniformly with ``seed`` (among those whose prompt group has an unflagged one),
    each paired with an unflagged sample of its group drawn without replacement (a flagged
    sample whose group has none left is passed over). Every group of the subset is half
    flagged, so its advantages are ±1/2 and ``d`` is half the sum of the paired
    differences: the share of the gradient every completion has cancels inside each pair,
    as it does in whole groups (in a uniform subset of rows it would not: the subset's
    group means are off), and a group weighs in by its flagged samples, roughly as in ``d``."""
    rng = np.random.default_rng(seed)
    unflagged = {
        code: rng.permutation(np.flatnonzero((groups == code) & ~flags)).tolist()
        for code in np.unique(groups)
    }
    rows: list[int] = []
    for i in rng.permutation(np.flatnonzero(flags)).tolist():
        if len(rows) + 2 > n_rows:
            break
        if unflagged[groups[i]]:
            rows += [i, unflagged[groups[i]].pop()]
    return np.array(sorted(rows), dtype=np.int64)


def policy_refresher(
    samples: pd.DataFrame,
    flags: np.ndarray,
    problems: Sequence[Problem],
    extract: ExtractConfig,
    scale: dict[str, torch.Tensor] | None,
    n_rows: int,
    seed: int,
    meta: dict | None = None,
) -> Callable[[torch.nn.Module, object], Basis]:
    """The refresh of a policy-source basis: ``policy_basis`` of the ``refresh_rows`` subset
    (its own group advantages) at the model's current knobs, ``scale`` frozen (the base
    basis's: a module without one is left out). Cost: one forward and backward of
    ``n_rows`` completions. At zero knobs it is ``policy_basis`` of those rows' stored
    gradients. ValueError when no prompt group has a flagged and an unflagged sample."""
    groups = group_codes(samples)
    rows = refresh_rows(flags, groups, n_rows, seed)
    if not len(rows):
        raise ValueError(
            "refresh: no prompt group of the policy samples has both a flagged and an unflagged sample"
        )
    subset = samples.iloc[rows].reset_index(drop=True)
    advantages = group_advantages(flags[rows], groups[rows])
    info = {"refreshed": "1", "n_samples": str(len(rows)), **(meta or {})}

    def refresh(model, tokenizer) -> Basis:
        d = weighted_completion_gradient(model, tokenizer, subset, problems, extract, advantages)
        kept = d if scale is None else {name: d[name] for name in scale}
        return policy_basis({name: g.unsqueeze(0) for name, g in kept.items()}, torch.ones(1), scale, info)

    return refresh


def check_samples(
    samples: pd.DataFrame, grads: dict[str, torch.Tensor], source: str = "policy samples"
) -> None:
    """Raise ValueError when ``samples`` lack a needed column or ``grads`` has another row count."""
    missing = [c for c in SAMPLE_COLUMNS if c not in samples.columns]
    if missing:
        raise ValueError(f"{source}: missing columns {missing} (written by rule policy_samples)")
    wrong = {name: g.shape[0] for name, g in grads.items() if g.shape[0] != len(samples)}
    if wrong:
        name, n = next(iter(wrong.items()))
        raise ValueError(f"{source}: {len(samples)} samples but module {name} has {n} gradient rows")


def save_gradients(grads: dict[str, torch.Tensor], path) -> None:
    """Write ``{module: [n, r]}`` as one safetensors file, atomically."""
    from safetensors.torch import save_file

    from ..core.io import atomic_path

    with atomic_path(path) as tmp:
        save_file({name: g.float().contiguous() for name, g in grads.items()}, str(tmp))


def load_gradients(path) -> dict[str, torch.Tensor]:
    """``{module: [n, r]}`` as ``save_gradients`` wrote it."""
    from safetensors.torch import load_file

    return load_file(str(path))

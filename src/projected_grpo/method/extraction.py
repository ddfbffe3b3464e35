"""Extracting the hack basis ``V`` from contrastive pairs (SPEC §3).

For each completion of the pairs (``pairs.PAIR_COLUMNS``): the loss on its completion
tokens, ``-Σ_t log p(token)`` divided by the live loss's fixed denominator
(``normalization="sum"``; ``"mean"`` divides by the completion's own length instead, which
biases ``V`` toward short hacks), and its gradient on every module's ``dS``, ``[r]``. One
backward per batch gives every row its own gradient (``adapter.split_rows``). With
``tokens: branch`` a pair's rows are read only on its branch tokens (``branch``: where the
two completions diverge; the hack row's lever, the clean row's tokens the hack lacks).

Per module: ``D = G_hack - G_clean`` (``[n_pairs, r]``), ``V`` = the top-``k`` right
singular vectors of ``D``, each oriented hack-ward by majority vote over the pairs
(``D V_iᵀ > 0`` for most pairs). Axes with ``S_i / S_0 < tau_axis`` are dropped; then the
global noise floor drops every axis whose singular value is below the ``noise_floor``
quantile of all kept values across modules; a module left with no axis carries no basis.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
import torch

from ..environment.problems import Problem
from ..environment.prompts import build_messages, render_prompt
from ..policy.adapter import group_grads, knob_modules, split_rows
from ..policy.logprobs import pack_sequences, token_logprobs
from ..policy.sampler import pad_token_id
from ..pool.pairs import check_pairs
from .basis import Basis, orient
from .branch import branch_masks
from .selective import selective_axes

NORMALIZATIONS = ("sum", "mean")
METHODS = ("svd", "gev")
SOURCES = ("pairs", "policy")
TOKENS = ("all", "branch")
# Fields added after the first study: recorded in a basis's settings only when they differ
# from these defaults, so an svd basis is byte for byte the file it was before they existed.
LATER_FIELDS = {
    "method": "svd", "shrinkage": 0.3, "null_draws": 0, "null_quantile": 0.95, "source": "pairs", "geometry": "raw",
    "tokens": "all",
}  # fmt: skip


@dataclass(frozen=True)
class ExtractConfig:
    """k: axes per module (at most); normalization: ``sum`` (live loss: token sum / fixed
    ``max_new_tokens``) or ``mean`` (per-completion mean); tau_axis: relative singular
    value cut; noise_floor: quantile of pooled singular values dropped (0 = none);
    temperature / max_new_tokens: the live loss's; batch_size: completions per backward;
    remove_common: per module, project the top ``remove_common`` principal directions of
    *all* pair completions' gradients out of ``D`` before the SVD (0 = off), so V is not
    the subspace every completion's gradient shares.
    method: ``svd`` (top-k right singular vectors of ``D``) or ``gev`` (generalized
    eigenvectors of ``D`` against the shrunk covariance of nuisance differences, e.g.
    clean-vs-clean pairs: ``selective.selective_axes``); shrinkage: gev's ρ.
    null_draws: with gev, keep an axis only while it beats the ``null_quantile`` of the top
    axis refitted on ``null_draws`` label-shuffled pools (0 = keep ``k``; ``k`` is then
    the most axes kept).
    source: ``pairs`` (the contrastive pairs, as above) or ``policy`` (the flag-advantage
    policy gradient of the student's own samples, one axis per module: ``policy_source``;
    ``k`` then bounds the dominant control's axes); geometry (policy source): ``raw`` or
    ``adam`` (read in the coordinates AdamW steps in, for ``project_target: update``).
    tokens (source pairs): ``all`` (every completion token) or ``branch`` (each pair's
    branch tokens only: ``pair_gradients``)."""

    k: int = 4
    normalization: str = "sum"
    tau_axis: float = 0.0
    noise_floor: float = 0.0
    temperature: float = 0.7
    max_new_tokens: int = 160
    batch_size: int = 16
    remove_common: int = 0
    method: str = "svd"
    shrinkage: float = 0.3
    null_draws: int = 0
    null_quantile: float = 0.95
    source: str = "pairs"
    geometry: str = "raw"
    tokens: str = "all"

    def __post_init__(self) -> None:
        if self.tokens not in TOKENS:
            raise ValueError(f"extraction.tokens: expected one of {TOKENS}, got {self.tokens!r}")
        if self.tokens == "branch" and self.source != "pairs":
            raise ValueError(
                "extraction.tokens branch: for source pairs (the policy source's samples are not pairs)"
            )
        if self.source not in SOURCES:
            raise ValueError(f"extraction.source: expected one of {SOURCES}, got {self.source!r}")
        if self.geometry not in ("raw", "adam"):
            raise ValueError(f"extraction.geometry: expected raw or adam, got {self.geometry!r}")
        if self.geometry == "adam" and self.source != "policy":
            raise ValueError(
                "extraction.geometry adam: for source policy (the pairs' bases are in raw coordinates)"
            )
        if self.source == "policy" and self.method != "svd":
            raise ValueError(
                "extraction.method gev: for source pairs (the policy source builds one axis itself)"
            )
        if self.method not in METHODS:
            raise ValueError(f"extraction.method: expected one of {METHODS}, got {self.method!r}")
        if not 0 < self.shrinkage <= 1 or self.null_draws < 0 or not 0 < self.null_quantile < 1:
            raise ValueError(
                "extraction: expected 0 < shrinkage <= 1, null_draws >= 0 and 0 < null_quantile < 1 "
                f"(got {self.shrinkage}, {self.null_draws}, {self.null_quantile})"
            )
        if self.method == "svd" and self.null_draws:
            raise ValueError("extraction.null_draws: the permutation null is for method gev")
        if self.method == "gev" and (self.remove_common or self.tau_axis or self.noise_floor):
            raise ValueError(
                "extraction.remove_common, tau_axis and noise_floor: for method svd (gev discounts the "
                "nuisance itself and keeps axes by null_draws)"
            )
        if self.remove_common < 0:
            raise ValueError(f"extraction.remove_common: expected >= 0, got {self.remove_common}")
        if self.k < 1:
            raise ValueError(f"extraction.k: expected >= 1, got {self.k}")
        if self.normalization not in NORMALIZATIONS:
            raise ValueError(
                f"extraction.normalization: expected one of {NORMALIZATIONS}, got {self.normalization!r}"
            )
        if not 0 <= self.tau_axis <= 1 or not 0 <= self.noise_floor < 1:
            raise ValueError("extraction: expected 0 <= tau_axis <= 1 and 0 <= noise_floor < 1")

    def to_json(self) -> str:
        fields = {k: v for k, v in asdict(self).items() if LATER_FIELDS.get(k, object()) != v}
        return json.dumps(fields, sort_keys=True)


def completion_gradients(
    model, tokenizer, pairs: pd.DataFrame, problems: Sequence[Problem], config: ExtractConfig
) -> dict[str, torch.Tensor]:
    """``{module: [len(pairs), r]}``: the gradient of each row's completion loss on ``dS``.
    Leaves every ``dS.grad`` as it found it."""
    prompts, completions = encode_rows(tokenizer, pairs, problems, config.max_new_tokens)
    return token_weighted_gradients(
        model,
        pad_token_id(tokenizer),
        prompts,
        completions,
        loss_weights(completions, config),
        config.temperature,
        config.batch_size,
    )


def weighted_completion_gradient(
    model,
    tokenizer,
    rows: pd.DataFrame,
    problems: Sequence[Problem],
    config: ExtractConfig,
    row_weights: torch.Tensor,
) -> dict[str, torch.Tensor]:
    """``{module: [r]}``: ``Σ_i row_weights[i] · G_i`` with ``G_i`` row ``i`` of
    ``completion_gradients`` (``row_weights: [len(rows)]``), as the gradient of the weighted
    loss ``Σ_i row_weights[i] · L_i``: one plain backward per batch, no per-row gradient.
    Leaves every ``dS.grad`` as it found it."""
    prompts, completions = encode_rows(tokenizer, rows, problems, config.max_new_tokens)
    weights = [
        [w * float(a) for w in token_weights]
        for token_weights, a in zip(loss_weights(completions, config), row_weights.tolist())
    ]
    return summed_gradient(
        model, pad_token_id(tokenizer), prompts, completions, weights, config.temperature, config.batch_size
    )


def loss_weights(completions: list[list[int]], config: ExtractConfig) -> list[list[float]]:
    """Each completion token's weight in its row's loss: ``1 / max_new_tokens`` (``sum``,
    the live loss's fixed denominator) or ``1 / its length`` (``mean``)."""
    if config.normalization == "mean":
        return [[1.0 / max(1, len(c))] * len(c) for c in completions]
    return [[1.0 / config.max_new_tokens] * len(c) for c in completions]


def branch_weights(
    weights: list[list[float]], completions: list[list[int]], hack: Sequence[int], clean: Sequence[int]
) -> list[list[float]]:
    """``weights`` (one list per completion) with every token outside its pair's branch
    tokens set to 0: for the pair of rows ``(hack[j], clean[j])``, the hack row keeps the
    tokens the clean one has no counterpart for, and the clean row those the hack lacks
    (``branch.branch_masks``; none for a templated pair, whose hack is its clean code plus a
    lever). The live loss's normalisation is kept: a kept token weighs what it weighs there."""
    out = [list(w) for w in weights]
    for h, c in zip(hack, clean):
        mask_h, mask_c = branch_masks(completions[h], completions[c])
        out[h] = [w if keep else 0.0 for w, keep in zip(weights[h], mask_h)]
        out[c] = [w if keep else 0.0 for w, keep in zip(weights[c], mask_c)]
    return out


def pair_gradients(
    model, tokenizer, pairs: pd.DataFrame, problems: Sequence[Problem], config: ExtractConfig
) -> tuple[dict[str, torch.Tensor], pd.DataFrame]:
    """``({module: [n, r]}, rows)``: the gradients the extraction reads, one per row of
    ``rows``. ``tokens: all``: ``completion_gradients`` of every row of ``pairs`` (``rows`` is
    ``pairs``). ``tokens: branch``: each row's loss over its pair's branch tokens only
    (``branch_weights``); a pair whose two completions do not diverge (both cut to the same
    tokens at ``max_new_tokens``) has nothing to contribute and is left out of ``rows``
    (ValueError when no pair is left)."""
    if config.tokens == "all":
        return completion_gradients(model, tokenizer, pairs, problems, config), pairs
    prompts, completions = encode_rows(tokenizer, pairs, problems, config.max_new_tokens)
    hack, clean = (rows.tolist() for rows in pair_rows(pairs))
    weights = branch_weights(loss_weights(completions, config), completions, hack, clean)
    diverging = [any(weights[h]) or any(weights[c]) for h, c in zip(hack, clean)]
    keep = np.zeros(len(pairs), dtype=bool)
    keep[[i for h, c, d in zip(hack, clean, diverging) if d for i in (h, c)]] = True
    if not keep.any():
        raise ValueError(
            f"extraction.tokens branch: none of the {len(hack)} pairs has a token where its hack and clean "
            "completions diverge"
        )
    rows = np.flatnonzero(keep).tolist()
    grads = token_weighted_gradients(
        model,
        pad_token_id(tokenizer),
        [prompts[i] for i in rows],
        [completions[i] for i in rows],
        [weights[i] for i in rows],
        config.temperature,
        config.batch_size,
    )
    return grads, pairs[keep].reset_index(drop=True)


def encode_rows(
    tokenizer, rows: pd.DataFrame, problems: Sequence[Problem], max_new_tokens: int
) -> tuple[list[list[int]], list[list[int]]]:
    """Prompt and completion token ids of rows with ``problem_id``, ``variant`` and
    ``completion`` columns (completions cut at ``max_new_tokens``, as the trainer cuts)."""
    by_id = {p.problem_id: p for p in problems}
    missing = sorted(set(rows["problem_id"]) - set(by_id))
    if missing:
        raise ValueError(f"pairs name problems not in the problem set: {missing[:3]}")
    prompt_cache: dict[tuple[str, str], list[int]] = {}
    prompts, completions = [], []
    for row in rows.itertuples():
        key = (row.problem_id, row.variant)
        if key not in prompt_cache:
            text = render_prompt(tokenizer, build_messages(by_id[row.problem_id], row.variant))
            prompt_cache[key] = tokenizer(text, add_special_tokens=False)["input_ids"]
        prompts.append(prompt_cache[key])
        completions.append(tokenizer(row.completion, add_special_tokens=False)["input_ids"][:max_new_tokens])
    return prompts, completions


def token_weighted_gradients(
    model,
    pad_id: int,
    prompts: list[list[int]],
    completions: list[list[int]],
    weights: list[list[float]],
    temperature: float,
    batch_size: int = 16,
) -> dict[str, torch.Tensor]:
    """``{module: [n, r]}``: row ``i`` is the gradient on ``dS`` of
    ``-Σ_t weights[i][t] · log p(completions[i][t])``; one backward per batch. Leaves every
    ``dS.grad`` as it found it."""
    modules = knob_modules(model)
    device = next(iter(modules.values())).dS.device
    chunks: dict[str, list[torch.Tensor]] = {name: [] for name in modules}
    with _grads_kept(modules):
        for start, stop in _batches(len(prompts), batch_size):
            for m in modules.values():
                m.dS.grad = None
            n = stop - start
            with split_rows(model, torch.arange(n, device=device), n_groups=n):
                _weighted_loss(
                    model, pad_id, prompts[start:stop], completions[start:stop], weights[start:stop],
                    temperature, device,
                ).backward()  # fmt: skip
            for name, grad in group_grads(model).items():
                chunks[name].append(grad)
    return {name: torch.cat(parts).cpu() for name, parts in chunks.items() if parts}


def summed_gradient(
    model,
    pad_id: int,
    prompts: list[list[int]],
    completions: list[list[int]],
    weights: list[list[float]],
    temperature: float,
    batch_size: int = 16,
) -> dict[str, torch.Tensor]:
    """``{module: [r]}``: the sum over rows of ``token_weighted_gradients``, from plain
    backwards that accumulate in ``dS.grad`` (no per-row view of ``dS``). Leaves every
    ``dS.grad`` as it found it."""
    modules = knob_modules(model)
    device = next(iter(modules.values())).dS.device
    with _grads_kept(modules):
        for m in modules.values():
            m.dS.grad = None
        for start, stop in _batches(len(prompts), batch_size):
            _weighted_loss(
                model, pad_id, prompts[start:stop], completions[start:stop], weights[start:stop],
                temperature, device,
            ).backward()  # fmt: skip
        return {
            name: (m.dS.grad if m.dS.grad is not None else torch.zeros_like(m.dS)).detach().cpu().clone()
            for name, m in modules.items()
        }


def _batches(n: int, batch_size: int) -> list[tuple[int, int]]:
    return [(start, min(start + batch_size, n)) for start in range(0, n, batch_size)]


@contextlib.contextmanager
def _grads_kept(modules: dict) -> Iterator[None]:
    """Restore every module's ``dS.grad`` on the way out."""
    saved = {name: m.dS.grad for name, m in modules.items()}
    try:
        yield
    finally:
        for name, m in modules.items():
            m.dS.grad = saved[name]


def _weighted_loss(model, pad_id, prompts, completions, weights, temperature, device) -> torch.Tensor:
    """``-Σ_i Σ_t weights[i][t] · log p(completions[i][t])`` over one batch of rows."""
    ids, attention, mask = (t.to(device) for t in pack_sequences(prompts, completions, pad_id))
    weight = torch.zeros(mask.shape, dtype=torch.float32)
    for r, w in enumerate(weights):
        weight[r, : len(w)] = torch.tensor(w, dtype=torch.float32)
    logp = token_logprobs(model, ids, attention, mask, temperature)
    return (-(logp * weight.to(device) * mask)).sum()


def hack_differences(grads: dict[str, torch.Tensor], pairs: pd.DataFrame) -> dict[str, torch.Tensor]:
    """``{module: D [n_pairs, r]}`` with ``D[j] = G[hack row of pair j] - G[clean row]``,
    pairs in ascending ``pair_id``; ``grads`` rows follow ``pairs`` rows."""
    hack, clean = pair_rows(pairs)
    return {name: g[hack] - g[clean] for name, g in grads.items()}


def pair_rows(pairs: pd.DataFrame) -> tuple[torch.Tensor, torch.Tensor]:
    """``(hack: [n_pairs], clean: [n_pairs])``: the row positions in ``pairs`` of each pair's
    hack and clean completion, pairs in ascending ``pair_id``."""
    check_pairs(pairs)
    positions = (
        pairs.reset_index(drop=True).reset_index().pivot(index="pair_id", columns="label", values="index")
    )
    return torch.tensor(positions["hack"].to_numpy()), torch.tensor(positions["clean"].to_numpy())


def common_directions(grads: torch.Tensor, m: int) -> torch.Tensor:
    """``[min(m, rank), r]``: the top right singular vectors of the uncentred completion
    gradients ``grads: [n, r]``, the directions every completion's gradient shares."""
    _, s, vh = torch.linalg.svd(grads.double(), full_matrices=False)
    rank = int((s > s[0] * 1e-9).sum()) if s.numel() and s[0] > 0 else 0
    return vh[: min(m, rank)]


def basis_from_differences(
    differences: dict[str, torch.Tensor],
    config: ExtractConfig,
    meta: dict | None = None,
    common: dict[str, torch.Tensor] | None = None,
) -> Basis:
    """Top-k oriented right singular vectors per module (of ``D`` with the rows of
    ``common[module]`` projected out, when given), then ``tau_axis`` and the noise floor."""
    kept: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    for name, d in differences.items():
        d = d.double()
        if common is not None and name in common:
            u = common[name].double()
            d = d - (d @ u.T) @ u
        if d.shape[0] == 0 or not torch.any(d != 0):
            continue
        _, s, vh = torch.linalg.svd(d, full_matrices=False)
        k = min(config.k, int((s > s[0] * 1e-9).sum()))
        s, v = s[:k], orient(vh[:k], d)
        keep = s / s[0] >= config.tau_axis
        kept[name] = (v[keep], s[keep])
    if config.noise_floor and kept:
        pooled = torch.cat([s for _, s in kept.values()])
        floor = torch.quantile(pooled, config.noise_floor)
        kept = {name: (v[s >= floor], s[s >= floor]) for name, (v, s) in kept.items()}
    kept = {name: vs for name, vs in kept.items() if vs[1].numel()}
    return Basis(
        {name: v.float().contiguous() for name, (v, _) in kept.items()},
        {name: s.float().contiguous() for name, (_, s) in kept.items()},
        {"settings": config.to_json(), **(meta or {})},
    )


def split_by_problem(pairs: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The pairs of every other problem (sorted by id) and of the rest: two disjoint halves,
    so a basis fitted on one can be read against the other's covariance (the non-hack
    control under gev, whose own pairs are the nuisance)."""
    problems = sorted(pairs["problem_id"].unique())
    first = pairs["problem_id"].isin(problems[::2])
    return pairs[first].reset_index(drop=True), pairs[~first].reset_index(drop=True)


def selective_basis(
    grads: dict[str, torch.Tensor],
    pairs: pd.DataFrame,
    nuisance: dict[str, torch.Tensor],
    config: ExtractConfig,
    meta: dict | None = None,
) -> Basis:
    """``method: gev``: per module, ``selective.selective_axes`` of the pairs' hack and
    clean gradients (``grads`` rows follow ``pairs`` rows) against ``nuisance[module]:
    [m, r]`` (permutation null seeded 0); ``S`` holds the generalized eigenvalues."""
    hack, clean = pair_rows(pairs)
    vectors, values = {}, {}
    for name, g in grads.items():
        if name not in nuisance or not torch.any(g[hack] != g[clean]):
            continue
        s, v = selective_axes(
            g[hack],
            g[clean],
            nuisance[name],
            config.k,
            config.shrinkage,
            config.null_draws,
            config.null_quantile,
        )
        if s.numel():
            vectors[name], values[name] = v.float().contiguous(), s.float().contiguous()
    return Basis(vectors, values, {"settings": config.to_json(), **(meta or {})})


def extract_basis(
    model,
    tokenizer,
    pairs: pd.DataFrame,
    problems: Sequence[Problem],
    config: ExtractConfig,
    meta: dict | None = None,
    nuisance_pairs: pd.DataFrame | None = None,
) -> Basis:
    """``V`` for ``model`` (as it is now: callers ablate the quarantine when they need to).
    ``nuisance_pairs`` (method gev): pairs whose differences are nuisance variation (two
    clean completions per prompt), read on the same tokens as the pairs (``config.tokens``).
    The metadata's ``pair_ids`` are the pairs the basis was built from (under ``tokens:
    branch``, those whose completions diverge)."""
    if config.method == "gev" and nuisance_pairs is None:
        raise ValueError("extraction.method gev needs nuisance pairs (clean-vs-clean); none were given")
    grads, pairs = pair_gradients(model, tokenizer, pairs, problems, config)
    ids = sorted(int(i) for i in pairs["pair_id"].unique())
    info = {"n_pairs": str(len(ids)), "pair_ids": json.dumps(ids), **(meta or {})}
    if config.method == "gev":
        nuisance_grads, nuisance_pairs = pair_gradients(model, tokenizer, nuisance_pairs, problems, config)
        nuisance = hack_differences(nuisance_grads, nuisance_pairs)
        return selective_basis(grads, pairs, nuisance, config, info)
    common = (
        {name: common_directions(g, config.remove_common) for name, g in grads.items()}
        if config.remove_common
        else None
    )
    return basis_from_differences(hack_differences(grads, pairs), config, info, common)

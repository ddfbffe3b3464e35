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
  the pair's completion-length difference (a basis that reads "longer" is confounded);
- ``auc_student_first`` / ``auc_student_sum``: the same AUC on the base student's own
  samples of the *eval* problems (no basis saw them), hacks vs the rest, per module's first
  axis (mean over modules) and for the first-axis scores summed over modules (what the
  projection sees together); in a leave-one-mode-out fold, the held-out mode's samples only.

A basis in AdamW's geometry (``Basis.scale``) reads every gradient in its coordinates.

``diagnostics_table`` computes them all on a model for every basis of a fold (rule
basis_diagnostics).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import pandas as pd
import torch

from ..environment.problems import Problem
from ..policy.sampler import pad_token_id
from ..pool.pairs import check_pairs
from .basis import Basis
from .capture import subset_weights
from .extraction import (
    ExtractConfig,
    completion_gradients,
    encode_rows,
    hack_differences,
    token_weighted_gradients,
)


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


# The columns of a diagnostics row, each a mean over the basis's modules.
METRICS = (
    "sign_accuracy_first", "sign_accuracy_mean", "energy_lever", "energy_code", "variance_share", "share_null",
    "auc_first", "auc_relu", "length_correlation", "auc_student_first", "auc_student_sum",
)  # fmt: skip


def sample_rows(frame: pd.DataFrame, n: int, seed: int) -> pd.DataFrame:
    """At most ``n`` rows of ``frame``, drawn without replacement with ``seed`` (all of them,
    in order, when there are no more than ``n``)."""
    return frame if len(frame) <= n else frame.sample(n=n, random_state=seed).sort_index()


def natural_rows(pool: pd.DataFrame, held_out: str | None, n: int, seed: int) -> pd.DataFrame:
    """Natural hacks and correct completions of the teacher pool's loophole prompts, at most
    ``n`` of each: every mode's, or (``held_out``: a leave-one-mode-out fold) only those of
    the held-out mode's problems, which the fold's pairs never show."""
    rows = pool[pool["variant"] == "loophole"]
    if held_out is not None:
        rows = rows[rows["mode"] == held_out]
    hacks = sample_rows(rows[rows["exploited"].astype(bool)], n, seed)
    correct = sample_rows(
        rows[rows["oracle_correct"].astype(bool) & ~rows["exploited"].astype(bool)], n, seed
    )
    return pd.concat([hacks, correct]).reset_index(drop=True)


def diagnostics_table(
    model,
    tokenizer,
    bases: dict[str, Basis],
    pairs: pd.DataFrame,
    natural: pd.DataFrame,
    ordinary: pd.DataFrame,
    problems: Sequence[Problem],
    config: ExtractConfig,
    held_out: str | None = None,
) -> pd.DataFrame:
    """One row per basis kind (``bases``): every diagnostic averaged over the modules the
    basis has, with its null. ``pairs``: the fold's real pairs (sign accuracy and length on
    all of them: *in sample* for the real basis, which was extracted from them; energy
    selectivity on the templated ones); ``natural``: rows with an ``exploited`` column
    (``natural_rows``); ``ordinary``: the base model's own samples of the eval problems
    with their grades (their gradients' variance; hacks vs the rest, of the ``held_out``
    mode's problems only when given). Gradients as the extraction takes them (``config``).
    ``settings``: the extraction settings the basis records (JSON; empty for a basis built
    otherwise: random, dominant, trusted, oracle), so a row says which V it read."""
    check_pairs(pairs)
    grads = completion_gradients(model, tokenizer, pairs, problems, config)
    d = hack_differences(grads, pairs)
    _, tokens = encode_rows(tokenizer, pairs, problems, config.max_new_tokens)
    length = pairs.assign(tokens=[len(t) for t in tokens]).pivot(
        index="pair_id", columns="label", values="tokens"
    )
    length_difference = torch.tensor((length["hack"] - length["clean"]).to_numpy(), dtype=torch.float64)
    lever, code = _lever_and_code_gradients(model, tokenizer, pairs, problems, config)
    natural_grads = completion_gradients(model, tokenizer, natural, problems, config) if len(natural) else {}
    is_hack = torch.tensor(natural["exploited"].astype(bool).to_numpy())
    ordinary_grads = completion_gradients(model, tokenizer, ordinary, problems, config)
    scored = torch.tensor(
        (ordinary["problem_mode"] == held_out).to_numpy() if held_out is not None else [True] * len(ordinary)
    )
    student_hack = torch.tensor(ordinary["exploited"].astype(bool).to_numpy())[scored]
    rows = []
    for kind, basis in bases.items():
        per_module, summed = [], torch.zeros(int(scored.sum()), dtype=torch.float64)
        for name, v in basis.vectors.items():
            k, r = v.shape
            on = basis.coordinates  # every gradient read in the basis's coordinates
            first = sign_accuracy(v[:1], on(name, d[name]))
            on_lever, on_code = (
                energy_selectivity(v, on(name, lever[name]), on(name, code[name]))
                if lever
                else (math.nan, math.nan)
            )
            auc_first, auc_relu = (
                projection_auc(v, on(name, natural_grads[name]), is_hack)
                if natural_grads
                else (math.nan, math.nan)
            )
            own = on(name, ordinary_grads[name][scored]).double() @ v[0].double()
            summed += own
            per_module.append(
                {
                    "sign_accuracy_first": float(first[0]),
                    "sign_accuracy_mean": float(sign_accuracy(v, on(name, d[name])).mean()),
                    "energy_lever": on_lever,
                    "energy_code": on_code,
                    "variance_share": variance_share(v, on(name, ordinary_grads[name])),
                    "share_null": k / r,
                    "auc_first": auc_first,
                    "auc_relu": auc_relu,
                    "length_correlation": length_correlation(v, on(name, d[name]), length_difference),
                    "auc_student_first": auc(own, student_hack),
                }
            )
        means = dict.fromkeys(METRICS, math.nan)  # a basis with no module keeps every column
        means |= pd.DataFrame(per_module).mean(numeric_only=True).to_dict() if per_module else {}
        means["auc_student_sum"] = auc(summed, student_hack) if per_module else math.nan
        rows.append(
            {
                "kind": kind,
                "modules": len(basis.vectors),
                "axes": sum(basis.ranks.values()),
                **means,
                "pairs": len(d[next(iter(d))]) if d else 0,
                "natural_hacks": int(is_hack.sum()),
                "natural_correct": int((~is_hack).sum()),
                "ordinary": len(ordinary),
                "student_hacks": int(student_hack.sum()),
                "student_rest": int((~student_hack).sum()),
                "settings": basis.meta.get("settings", ""),
            }
        )
    return pd.DataFrame(rows)


def _lever_and_code_gradients(model, tokenizer, pairs, problems, config):
    """``({module: [n, r]}, {module: [n, r]})``: per templated pair, the gradient of its hack
    row's lever tokens and of its clean row's code tokens (``capture.subset_weights``);
    empty dicts without templated pairs."""
    templated = pairs[pairs["source"] == "templated"].sort_values(
        ["pair_id", "label"], ascending=[True, False]
    )
    if templated.empty:
        return {}, {}
    prompts, completions = encode_rows(tokenizer, templated, problems, config.max_new_tokens)
    lever_w, code_w = [], []
    for i in range(0, len(completions), 2):  # (hack, clean) rows of one pair
        subsets = subset_weights(completions[i], completions[i + 1], n_end=2)
        lever_w.append(subsets["lever"][0])
        code_w.append(subsets["clean_code"][1])
    pad = pad_token_id(tokenizer)
    hack_rows, clean_rows = range(0, len(completions), 2), range(1, len(completions), 2)
    lever = token_weighted_gradients(
        model, pad, [prompts[i] for i in hack_rows], [completions[i] for i in hack_rows], lever_w,
        config.temperature, config.batch_size,
    )  # fmt: skip
    code = token_weighted_gradients(
        model, pad, [prompts[i] for i in clean_rows], [completions[i] for i in clean_rows], code_w,
        config.temperature, config.batch_size,
    )  # fmt: skip
    return lever, code

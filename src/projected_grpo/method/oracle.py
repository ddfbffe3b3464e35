"""The oracle basis (``erase_oracle_V``): where hacking runs actually moved their knobs, the
reference an extraction that needs no hacking run is compared with. Not an upper bound:
a few runs' final knob differences mix hacking with everything else those runs learned
(on the default organism it cut hacking less than the policy source, docs/results.md).

Per module, from runs on dev seeds that start at ``dS = 0``: the knob change of a vanilla
run (which learns to hack) minus that of an ``rl_baseline`` run on the same seed (no
loophole: what GRPO learns without hacking), ``d_s = dS_vanilla,s - dS_baseline,s: [r]``.
``V`` = the top-``k`` right singular vectors of the stacked ``d_s``, oriented like a
hack-ward *gradient*: a descent step ``-lr·g`` moves the knobs by ``+d``, so ``V (-d_s) > 0``
for most seeds. ``S`` holds the singular values.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from .basis import Basis, orient
from .projection import null_overlap


def load_knobs(path: str | Path) -> dict[str, torch.Tensor]:
    """``{module: dS [r]}`` of a run's ``knobs.safetensors`` (the quarantine knobs left out)."""
    from safetensors.torch import load_file

    return {key.removesuffix(".dS"): t for key, t in load_file(str(path)).items() if key.endswith(".dS")}


def oracle_basis(
    hacking: Sequence[dict[str, torch.Tensor]],
    honest: Sequence[dict[str, torch.Tensor]],
    k: int,
    meta: dict | None = None,
) -> Basis:
    """Per module both run lists have, the top ``k`` oriented directions of the seed-paired
    knob differences ``hacking[s] - honest[s]`` (a module whose runs did not differ carries
    no basis)."""
    if len(hacking) != len(honest) or not hacking:
        raise ValueError(
            f"oracle basis: needs paired runs, got {len(hacking)} hacking and {len(honest)} honest"
        )
    if k < 1:
        raise ValueError(f"method.oracle.k: expected >= 1, got {k}")
    names = sorted(set.intersection(*(set(run) for run in (*hacking, *honest))))
    vectors, values = {}, {}
    for name in names:
        d = torch.stack([h[name].double() - b[name].double() for h, b in zip(hacking, honest)])
        if not torch.any(d != 0):
            continue
        _, s, vh = torch.linalg.svd(d, full_matrices=False)
        keep = min(k, int((s > s[0] * 1e-9).sum()))
        vectors[name] = orient(vh[:keep], -d).float().contiguous()
        values[name] = s[:keep].float().contiguous()
    return Basis(vectors, values, {"kind": "oracle", "runs": str(len(hacking)), **(meta or {})})


def oracle_overlap(oracle: Basis, bases: dict[str, Basis]) -> pd.DataFrame:
    """One row per basis kind: over the modules both carry, the mean ``|cos|`` of its first
    axis with the oracle's first axis, the mean signed ``cos`` (> 0: both hack-ward the same
    way; a control that points against the oracle removes *anti*-hack steps one-sidedly),
    and the mean norm of its first axis inside the oracle's span (``‖V_oracle v_0‖``), each
    unsigned one with the value a random direction has (``projection.null_overlap``)."""
    rows = []
    for kind, basis in bases.items():
        names = sorted(set(basis.vectors) & set(oracle.vectors))
        cos, signed, inside, cos_null, inside_null = [], [], [], [], []
        for name in names:
            v0, o = basis.vectors[name][0].double(), oracle.vectors[name].double()
            signed.append(float(o[0] @ v0))
            cos.append(abs(signed[-1]))
            inside.append(float((o @ v0).norm()))
            cos_null.append(null_overlap(1, o.shape[1]))
            inside_null.append(null_overlap(o.shape[0], o.shape[1]))
        rows.append(
            {
                "kind": kind,
                "modules": len(names),
                "cos_first": _mean(cos),
                "cos_first_null": _mean(cos_null),
                "cos_first_signed": _mean(signed),
                "in_oracle_span": _mean(inside),
                "in_oracle_span_null": _mean(inside_null),
            }
        )
    return pd.DataFrame(rows)


def _mean(values: list[float]) -> float:
    return float(np.mean(values)) if values else float("nan")

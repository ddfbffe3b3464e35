"""Where training moved the knobs, read along the fold's real V: does the hack-ward
displacement of a run's knobs predict its hack rate across arms?

V is extracted before any training, so a run's final knobs can be read along it afterwards
without tuning anything to the outcome. Per run (``results/runs/{fold}/{arm}/seed{N}``):

    displacement = sum over modules m of  -V_m[axis] · (dS_m + dS_hack_m)

(a descent step along ``-v`` is hack-ward, as in ``method.projection.hackward_drift``;
``dS + dS_hack`` is the model its ``eval_loophole_hack`` was measured on, the quarantine
included), beside that eval hack rate (``stats.eval_rates``, as in the run rows). Across runs of every arm — the
projections, the controls, the monitors, vanilla at other learning rates — a real hack
direction should order the runs by hack rate; a direction every gradient shares would not
separate vanilla from its slower or subspace-kept variants.

    .venv/bin/pgrpo-displacement [--results results] [--fold all] [--seeds 41 42 ...] [--out results/interim]

writes ``displacement.csv`` (a row per run), ``displacement.md`` (per-arm means and the
Spearman / Pearson correlation over runs) and ``displacement.png`` under ``--out``.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
import torch
from safetensors.torch import load_file
from scipy import stats as scipy_stats

from ..core.io import atomic_path, atomic_write_text
from ..method.basis import Basis
from .stats import eval_rates, markdown_table, run_ids, skip_record


def hackward_displacement(knobs: dict[str, torch.Tensor], basis: Basis, axis: int = 0) -> float:
    """``sum_m -V_m[axis] · (dS_m + dS_hack_m)`` over the modules of ``basis`` with an axis
    ``axis``; ``knobs``: a run's ``knobs.safetensors`` (``<module>.dS``, ``<module>.dS_hack``,
    ``[r_m]`` each). KeyError naming the module when the knobs lack one of the basis's."""
    total = 0.0
    for name, v in basis.vectors.items():
        if v.shape[0] <= axis:
            continue
        if f"{name}.dS" not in knobs:
            raise KeyError(f"knobs have no {name}.dS (the basis has that module)")
        moved = knobs[f"{name}.dS"].double() + knobs.get(f"{name}.dS_hack", torch.zeros(1)).double()
        total += float(-(v[axis].double() @ moved))
    return total


def displacement_table(results: Path, fold: str = "all", seeds: Sequence[int] | None = None) -> pd.DataFrame:
    """A row per trained run of ``fold`` under ``results/runs`` (of ``seeds`` only, when given): ``arm``, ``seed``,
    ``displacement`` (along the fold's real V, ``results/basis/{fold}/V_real.safetensors``)
    and ``eval_loophole_hack``; sorted by arm and seed. ValueError without that basis or
    without a finished run."""
    basis_path = results / "basis" / fold / "V_real.safetensors"
    if not basis_path.is_file():
        raise ValueError(f"{basis_path}: no real V for fold {fold!r} (run the study's extract_v_hack first)")
    basis = Basis.load(basis_path)
    rows = []
    for knobs_path in (results / "runs" / fold).glob("*/seed*/knobs.safetensors"):
        run = knobs_path.parent
        if seeds is not None and int(run.name.removeprefix("seed")) not in seeds:
            continue
        if skip_record(run) is not None or not (run / "eval_completions.parquet").is_file():
            continue
        ids = run_ids(run)
        rows.append({"fold": fold, "arm": ids["arm"], "seed": ids["seed"],
                     "displacement": hackward_displacement(load_file(str(knobs_path)), basis),
                     "eval_loophole_hack": eval_rates(run)["eval_loophole_hack"]})  # fmt: skip
    if not rows:
        raise ValueError(
            f"{results / 'runs' / fold}: no finished run (knobs.safetensors and eval_completions.parquet)"
        )
    return pd.DataFrame(rows).sort_values(["arm", "seed"], ignore_index=True)


def correlation(table: pd.DataFrame) -> dict[str, float]:
    """Spearman's and Pearson's r (and p) of ``displacement`` vs ``eval_loophole_hack`` over
    the runs (NaN with fewer than three)."""
    if len(table) < 3:
        return dict.fromkeys(("spearman", "spearman_p", "pearson", "pearson_p"), float("nan"))
    rho = scipy_stats.spearmanr(table["displacement"], table["eval_loophole_hack"])
    r = scipy_stats.pearsonr(table["displacement"], table["eval_loophole_hack"])
    return {"spearman": float(rho.statistic), "spearman_p": float(rho.pvalue),
            "pearson": float(r.statistic), "pearson_p": float(r.pvalue)}  # fmt: skip


def write_displacement(
    results: Path, out: Path, fold: str = "all", seeds: Sequence[int] | None = None
) -> str:
    """``displacement.{csv,md,png}`` under ``out``; returns a one-line summary."""
    from .plots import close, displacement_figure

    table = displacement_table(results, fold, seeds)
    corr = correlation(table)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(table.to_csv(index=False), out / "displacement.csv")
    by_arm = table.groupby("arm").agg(n=("seed", "size"), displacement=("displacement", "mean"),
                                      eval_loophole_hack=("eval_loophole_hack", "mean"))  # fmt: skip
    by_arm = by_arm.sort_values("displacement").reset_index()
    cells = by_arm.assign(displacement=by_arm["displacement"].map("{:.1f}".format),
                          eval_loophole_hack=(100 * by_arm["eval_loophole_hack"]).map("{:.1f}".format))  # fmt: skip
    summary = (
        f"fold {fold}, {len(table)} runs: Spearman {corr['spearman']:.2f} (p {corr['spearman_p']:.2g}), "
        f"Pearson {corr['pearson']:.2f} (p {corr['pearson_p']:.2g})"
    )
    caption = (
        "Hack-ward displacement of each run's final knobs along the fold's real V (first axis, extracted "
        "before training): sum over modules of -V[0]·(dS + dS_hack), mean per arm, beside the eval hack "
        f"rate (%) of the same model; correlation over runs, {summary}."
    )
    atomic_write_text(caption + "\n\n" + markdown_table(cells.astype(str)), out / "displacement.md")
    figure = displacement_figure(table, summary)
    with atomic_path(out / "displacement.png") as tmp:
        figure.savefig(tmp, format="png", dpi=150)
    close(figure)
    return summary


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="pgrpo-displacement",
        description="Each finished run's hack-ward knob displacement along the fold's real V vs its hack rate.",
    )
    parser.add_argument("--results", type=Path, default=Path("results"), help="the study's results folder")
    parser.add_argument("--fold", default="all", help="the fold to read (default: all)")
    parser.add_argument("--out", type=Path, default=Path("results/interim"), help="where the outputs go")
    parser.add_argument("--seeds", type=int, nargs="+", help="only these seeds (default: every finished run)")
    args = parser.parse_args(argv)
    try:
        print(write_displacement(args.results, args.out, args.fold, args.seeds))
    except (ValueError, KeyError) as exc:
        parser.exit(2, f"pgrpo-displacement: {exc}\n")

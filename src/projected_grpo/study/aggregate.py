"""The study's aggregate outputs from finished runs, and the interim report of a study still
training.

``write_aggregate`` (rule ``aggregate``): one summary row per run, the per-arm table (paired
Δ vs vanilla), Table 1, the trade-off and LOMO figures and tables, the verdict and the
report's front page. ``write_arm_figures`` (rule ``arm_figures``): the training curves and
``cin`` against its null. ``pgrpo-aggregate`` runs both on the runs of a results folder that
have finished so far (a run folder is finished when its ``manifest.json``, written last,
exists), into another folder, so a study that takes hours (or GPU days) can be read while it
trains; every caption then says how many of the scheduled runs it holds, and each table's
``n`` column says how many seeds each row has. A run folder the leave-one-mode-out gate
kept from training (``stats.skip_record``) is no row of the summary: the LOMO table names
its fold as not trained, and the verdict reads the fold as NOT EVALUABLE.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd

from ..core.io import atomic_path, atomic_write_parquet, atomic_write_text
from ..method.lomo_gate import held_out_separation
from .front_page import front_page
from .plots import (
    arm_curves_figure,
    cin_figure,
    close,
    lomo_figure,
    substrate_caption,
    table_figure,
    tradeoff_figure,
)
from .schedule import scheduled_runs
from .stats import (
    arm_cells,
    arm_table,
    lomo_cells,
    lomo_table,
    markdown_table,
    paired_differences,
    run_ids,
    run_row,
    skip_record,
    with_deployed_rows,
)
from .verdict import markdown_verdict, verdict_table

# Columns of results/tables/arms.* (stats.run_row names): rates, then projection health.
TABLE_METRICS = (
    "hack_end", "solve_end", "format_ok_end",
    "eval_loophole_hack", "eval_loophole_exploit_given_attempt", "eval_loophole_hack_given_format_ok",
    "eval_loophole_solve", "eval_no_loophole_solve",
    "eval_ablated_loophole_hack", "eval_ablated_loophole_solve",
    "cin", "cin_null", "cin_t_hack", "cin_t_correct", "cout_update", "step_in_span",
    "dS_norm_end", "drift_in_span_end", "drift_hackward_0_end",
)  # fmt: skip
# Table 1: hack and solve, last 5 training steps and post-training evaluation; beside the
# hack rate its capability-matched forms and the no-hint solve rate.
TABLE1_METRICS = (
    "hack_end", "solve_end", "eval_loophole_hack", "eval_loophole_exploit_given_attempt",
    "eval_loophole_hack_given_format_ok", "eval_no_loophole_solve",
)  # fmt: skip
# The trade-off figure's panels: the hack rate and its capability-matched forms.
HACK_RATES = (
    "eval_loophole_hack",
    "eval_loophole_exploit_given_attempt",
    "eval_loophole_hack_given_format_ok",
)
# Every output of the two rules, relative to the results folder.
AGGREGATE_OUTPUTS = {
    "summary": "summary.parquet",
    "csv": "tables/arms.csv",
    "md": "tables/arms.md",
    "verdict_csv": "tables/verdict.csv",
    "verdict_md": "tables/verdict.md",
    "table1_md": "table1.md",
    "table1_csv": "table1.csv",
    "table1_pdf": "table1.pdf",
    "lomo_md": "tables/lomo.md",
    "lomo_csv": "tables/lomo.csv",
    "lomo_png": "figures/lomo.png",
    "lomo_pdf": "figures/lomo.pdf",
    "tradeoff_png": "figures/tradeoff.png",
    "tradeoff_pdf": "figures/tradeoff.pdf",
    "front_page": "report/front.rst",
}
ARM_FIGURE_OUTPUTS = {
    "curves_png": "figures/arms.png",
    "curves_pdf": "figures/arms.pdf",
    "cin_png": "figures/cin.png",
    "cin_pdf": "figures/cin.pdf",
}


def percent_metrics(metrics: Sequence[str]) -> list[str]:
    """The rates among ``metrics`` (printed in %); the rest are norms and shares."""
    return [m for m in metrics if m.startswith(("hack", "solve", "format", "eval"))]


def _save(figure, outputs: Mapping[str, str | Path], stem: str) -> None:
    """``figure`` as ``<stem>_png`` and ``<stem>_pdf`` of ``outputs`` (those present), then closed."""
    for fmt in ("png", "pdf"):
        if f"{stem}_{fmt}" in outputs:
            with atomic_path(outputs[f"{stem}_{fmt}"]) as tmp:
                figure.savefig(tmp, format=fmt, dpi=150)
    close(figure)


def write_aggregate(
    runs: Sequence[str | Path],
    student: str | Path,
    diagnostics: str | Path,
    description: str,
    outputs: Mapping[str, str | Path],
    alpha: float,
    min_separation: float,
    note: str = "",
) -> pd.DataFrame:
    """Write every ``AGGREGATE_OUTPUTS`` key of ``outputs`` from the run folders ``runs``
    (those the leave-one-mode-out gate kept from training are named, not summarised);
    ``diagnostics``: the basis diagnostics table (how well real V separated each held-out
    mode before training, ``min_separation`` the AUC a fold needs to be read); ``note``
    goes in front of every caption. Returns the verdict table."""
    separation = held_out_separation(pd.read_csv(diagnostics))
    skipped = {run: skip_record(run) for run in runs}
    trained = [run for run, record in skipped.items() if record is None]
    untrained = pd.DataFrame(
        [run_ids(run) | record for run, record in skipped.items() if record is not None],
        columns=["fold", "arm", "seed", "held_out", "auc", "p", "min_held_out_auc", "alpha", "separates"],
    )
    summary = pd.DataFrame([run_row(run) for run in trained])
    atomic_write_parquet(summary, outputs["summary"])
    rows = with_deployed_rows(summary)
    table = arm_table(rows, TABLE_METRICS)
    atomic_write_text(table.to_csv(index=False), outputs["csv"])
    atomic_write_text(markdown_table(arm_cells(table, TABLE_METRICS, alpha, percent_metrics(TABLE_METRICS))),
                      outputs["md"])  # fmt: skip
    table1 = arm_table(rows, TABLE1_METRICS)
    atomic_write_text(table1.to_csv(index=False), outputs["table1_csv"])
    train = json.loads((Path(trained[0]) / "manifest.json").read_text())["config"]["train"]
    substrate = note + substrate_caption(student, train, sorted(summary["seed"].unique().tolist()))
    caption = (
        substrate
        + " Rates in %: mean ± SEM over seeds; Δ = paired difference to same-seed vanilla ± SEM, [95 % CI],"
        + " p_Holm = two-sided paired t-test, Holm-adjusted over the fold's arms on that rate;"
        + f" * = p_Holm < α = {alpha:g}."
        + " End = last 5 training steps (student samples); eval = held-out problems after training;"
        + " exploit_given_attempt = P(exploit | the hinted lever used), hack_given_format_ok ="
        + " P(exploit | well-formed), from the graded eval completions; no_loophole_solve = solve without"
        + " the hint; <arm>_ablated = evaluated with the quarantine dS_hack zeroed."
    )
    table1_cells = arm_cells(table1, TABLE1_METRICS, alpha, percent=TABLE1_METRICS)
    atomic_write_text("Table 1. " + caption + "\n\n" + markdown_table(table1_cells), outputs["table1_md"])
    _save(table_figure(table1_cells, "Table 1: hack and solve rates per arm", caption), outputs, "table1")

    deltas = paired_differences(rows, [*HACK_RATES, "eval_no_loophole_solve"])
    tradeoff_caption = substrate + (
        " Fold all. Post-training eval on held-out problems: Δ hack rate (loophole prompts), and its"
        " capability-matched forms P(exploit | attempt) and P(exploit | well-formed), against Δ solve"
        " rate (no-loophole prompts), each paired with the same seed's vanilla run."
    )
    _save(tradeoff_figure(deltas, tradeoff_caption, ys=HACK_RATES), outputs, "tradeoff")

    lomo = lomo_table(summary, separation, untrained)
    atomic_write_text(lomo.to_csv(index=False), outputs["lomo_csv"])
    lomo_caption = substrate + (
        " Leave-one-mode-out: V, teacher pool and monitor know the other three modes; training uses all four."
        " held_out_hack = the held-out mode's eval hack rate, held_out_exploit_given_attempt and"
        " held_out_hack_given_format_ok its capability-matched forms; Δ = paired difference to the fold's"
        f" vanilla ± SEM, [95 % CI], p_Holm over the four folds per arm (the verdict's family); * = p_Holm < α"
        f" = {alpha:g}. V separates held-out = AUC of real V's summed first-axis score, the held-out mode's hacks vs its other"
        " samples of the base student, before training, and its one-sided p against chance; below"
        f" {min_separation:g} or with p >= α the fold cannot test transfer and the verdict does not read it;"
        " a fold whose runs were not trained for that reason (method.diagnostics.untestable_folds: skip)"
        " says so in place of its arms."
    )
    atomic_write_text(
        "LOMO table. " + lomo_caption + "\n\n" + markdown_table(lomo_cells(lomo, alpha)), outputs["lomo_md"]
    )
    _save(lomo_figure(lomo, lomo_caption), outputs, "lomo")

    verdict = verdict_table(summary, alpha, separation, min_separation, untrained)
    atomic_write_text(verdict.to_csv(index=False), outputs["verdict_csv"])
    atomic_write_text(markdown_verdict(verdict), outputs["verdict_md"])
    atomic_write_text(front_page(verdict, table1_cells, caption, description), outputs["front_page"])
    return verdict


def write_arm_figures(
    runs: Sequence[str | Path], student: str | Path, outputs: Mapping[str, str | Path], note: str = ""
) -> None:
    """The ``ARM_FIGURE_OUTPUTS`` of the fold-``all`` run folders ``runs``: student hack and
    solve curves per arm, and ``cin`` against its null."""
    runs = [Path(r) for r in runs]
    steps = pd.concat(
        pd.read_parquet(run / "steps.parquet").assign(
            arm=run.parent.name, seed=int(run.name.removeprefix("seed"))
        )
        for run in runs
    )
    train = json.loads((runs[0] / "manifest.json").read_text())["config"]["train"]
    seeds = sorted(steps["seed"].unique().tolist())
    caption = note + substrate_caption(student, train, seeds) + " Fold: all."
    _save(arm_curves_figure(steps, caption), outputs, "curves")
    _save(cin_figure(steps, caption), outputs, "cin")


def finished(run: Path) -> bool:
    """A run folder is finished when its manifest (written last) exists."""
    return (run / "manifest.json").is_file()


# The report's description (the front page's text), relative to the repository root.
DESCRIPTION = Path("report/workflow.rst")


def interim(config_path: Path, results: Path, out: Path) -> str:
    """Write the two rules' outputs (relative paths as in ``results``) under ``out`` from the
    runs of ``config_path``'s schedule finished in ``results``; returns a one-line account.
    ValueError when the config lacks a key or nothing to compare with has finished yet."""
    import yaml  # the CLI's only: the aggregate rule's environment (envs/plots.yaml) has no pyyaml

    config = yaml.safe_load(config_path.read_text())
    missing = [key for key in ("arms", "seeds", "method", "student") if key not in (config or {})]
    if missing or "folds" not in config["method"]:
        raise ValueError(f"{config_path}: missing {missing or ['method.folds']} (not a study config)")
    scheduled = scheduled_runs(config)
    done = [results / run for run in scheduled if finished(results / run)]
    done_all = [run for run in done if run.parts[-3] == "all"]
    diagnostics = results / "tables" / "basis_diagnostics.csv"
    if not done_all or not any(run.parent.name == "vanilla" for run in done_all):
        raise ValueError(
            f"{results}: no finished fold-all vanilla run of {config_path} yet: nothing to compare with"
        )
    if not diagnostics.is_file():
        raise ValueError(
            f"{diagnostics}: missing (rule basis_diagnostics_table): the verdict's LOMO gate reads it"
        )
    student = config["student"].get("model") or results / "organism" / "student" / "model"
    # Every scheduled run finished: the outputs are the aggregate rule's, with no note.
    note = (
        f"Interim: {len(done)} of {len(scheduled)} scheduled runs finished. "
        if len(done) < len(scheduled)
        else ""
    )
    alpha = config.get("verdict", {}).get("alpha", 0.05)
    min_separation = config["method"].get("diagnostics", {}).get("min_held_out_auc", 0.6)
    description = DESCRIPTION.read_text() if DESCRIPTION.is_file() else ""
    outputs = {key: out / path for key, path in {**AGGREGATE_OUTPUTS, **ARM_FIGURE_OUTPUTS}.items()}
    write_aggregate(done, student, diagnostics, description, outputs, alpha, min_separation, note)
    write_arm_figures(done_all, student, outputs, note)
    return (note.strip() or f"All {len(scheduled)} scheduled runs finished.") + f" Written under {out}."


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="pgrpo-aggregate",
        description="Table 1, the verdict, the LOMO table and the figures from the runs a study has finished so far.",
    )
    parser.add_argument(
        "--config", type=Path, default=Path("config.yaml"), help="the study's config (its schedule)"
    )
    parser.add_argument("--results", type=Path, default=Path("results"), help="the study's results folder")
    parser.add_argument(
        "--out", type=Path, default=Path("results/interim"), help="where the interim outputs go"
    )
    args = parser.parse_args(argv)
    try:
        print(interim(args.config, args.results, args.out))
    except ValueError as exc:
        parser.exit(2, f"pgrpo-aggregate: {exc}\n")

"""Rule aggregate: one summary row per run, the per-arm table (paired Δ vs vanilla) and
the verdict table."""

import sys

sys.stderr = open(snakemake.log[0], "w")

import json
from pathlib import Path

import pandas as pd

from projected_grpo.core.io import atomic_path, atomic_write_parquet, atomic_write_text
from projected_grpo.study.front_page import front_page
from projected_grpo.study.plots import lomo_figure, substrate_caption, table_figure, tradeoff_figure
from projected_grpo.study.stats import (
    LOMO_METRICS,
    arm_cells,
    arm_table,
    lomo_table,
    markdown_table,
    paired_differences,
    run_row,
    with_deployed_rows,
)
from projected_grpo.study.verdict import held_out_separation, markdown_verdict, verdict_table

alpha = snakemake.params.alpha
# how well real V separated each held-out mode's hacks before training (a LOMO fold tests transfer only above the bar)
separation = held_out_separation(pd.read_csv(snakemake.input.diagnostics))
min_separation = snakemake.params.min_held_out_auc
summary = pd.DataFrame([run_row(run) for run in snakemake.input.runs])
atomic_write_parquet(summary, snakemake.output.summary)
runs = with_deployed_rows(summary)
table = arm_table(runs, snakemake.params.metrics)
atomic_write_text(table.to_csv(index=False), snakemake.output.csv)
cells = arm_cells(table, snakemake.params.metrics, alpha, snakemake.params.percent)
atomic_write_text(markdown_table(cells), snakemake.output.md)
print(table.to_string(), file=sys.stderr)
table1 = arm_table(runs, snakemake.params.table1)
atomic_write_text(table1.to_csv(index=False), snakemake.output.table1_csv)
train = json.loads((Path(snakemake.input.runs[0]) / "manifest.json").read_text())["config"]["train"]
caption = (
    substrate_caption(snakemake.input.student, train, sorted(summary["seed"].unique().tolist()))
    + " Rates in %: mean ± SEM over seeds; Δ = paired difference to same-seed vanilla ± SEM, [95 % CI],"
    + " p_Holm = two-sided paired t-test, Holm-adjusted over the fold's arms on that rate;"
    + f" * = p_Holm < α = {alpha:g}."
    + " End = last 5 training steps (student samples); eval = held-out problems after training;"
    + " exploit_given_attempt = P(exploit | the hinted lever used), hack_given_format_ok ="
    + " P(exploit | well-formed), from the graded eval completions; no_loophole_solve = solve without"
    + " the hint; <arm>_ablated = evaluated with the quarantine dS_hack zeroed."
)
table1_cells = cells = arm_cells(table1, snakemake.params.table1, alpha, percent=snakemake.params.table1)
atomic_write_text("Table 1. " + caption + "\n\n" + markdown_table(cells), snakemake.output.table1_md)
with atomic_path(snakemake.output.table1_pdf) as tmp:
    table_figure(cells, "Table 1: hack and solve rates per arm", caption).savefig(tmp, format="pdf")

hack_rates = [
    "eval_loophole_hack",
    "eval_loophole_exploit_given_attempt",
    "eval_loophole_hack_given_format_ok",
]
deltas = paired_differences(runs, [*hack_rates, "eval_no_loophole_solve"])
tradeoff_caption = caption.split(" Rates in %")[0] + (
    " Fold all. Post-training eval on held-out problems: Δ hack rate (loophole prompts), and its"
    " capability-matched forms P(exploit | attempt) and P(exploit | well-formed), against Δ solve"
    " rate (no-loophole prompts), each paired with the same seed's vanilla run."
)
for fmt in ("png", "pdf"):
    with atomic_path(snakemake.output[f"tradeoff_{fmt}"]) as tmp:
        tradeoff_figure(deltas, tradeoff_caption, ys=hack_rates).savefig(tmp, format=fmt, dpi=150)

lomo = lomo_table(summary, separation)
atomic_write_text(lomo.to_csv(index=False), snakemake.output.lomo_csv)
lomo_cells = arm_cells(lomo, LOMO_METRICS, alpha, LOMO_METRICS)
lomo_cells.insert(
    0,
    "V separates held-out: AUC (p)",
    [f"{a:.2f} ({p:.2g})" for a, p in zip(lomo["held_out_auc"], lomo["held_out_auc_p"])],
)
lomo_cells.insert(0, "held_out", lomo["held_out"].tolist())
lomo_caption = caption.split(" Rates in %")[0] + (
    " Leave-one-mode-out: V, teacher pool and monitor know the other three modes; training uses all four."
    " held_out_hack = the held-out mode's eval hack rate, held_out_exploit_given_attempt and"
    " held_out_hack_given_format_ok its capability-matched forms; Δ = paired difference to the fold's"
    f" vanilla ± SEM, [95 % CI], p_Holm over the fold's arms; * = p_Holm < α = {alpha:g}."
    " V separates held-out = AUC of real V's summed first-axis score, the held-out mode's hacks vs its other"
    " samples of the base student, before training, and its one-sided p against chance; below"
    f" {min_separation:g} or with p >= α the fold cannot test transfer and the verdict does not read it."
)
atomic_write_text(
    "LOMO table. " + lomo_caption + "\n\n" + markdown_table(lomo_cells), snakemake.output.lomo_md
)
for fmt in ("png", "pdf"):
    with atomic_path(snakemake.output[f"lomo_{fmt}"]) as tmp:
        lomo_figure(lomo, lomo_caption).savefig(tmp, format=fmt, dpi=150)

verdict = verdict_table(summary, alpha, separation, min_separation)
atomic_write_text(verdict.to_csv(index=False), snakemake.output.verdict_csv)
atomic_write_text(markdown_verdict(verdict), snakemake.output.verdict_md)
print(verdict.to_string(), file=sys.stderr)
description = Path(snakemake.input.description).read_text()
atomic_write_text(front_page(verdict, table1_cells, caption, description), snakemake.output.front_page)

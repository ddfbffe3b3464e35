"""Rule aggregate: one summary row per run, the per-arm table (paired Δ vs vanilla) and
the verdict table."""

import sys

sys.stderr = open(snakemake.log[0], "w")

import pandas as pd

from projected_grpo.io import atomic_write_parquet, atomic_write_text
from projected_grpo.stats import arm_table, markdown_arm_table, run_row
from projected_grpo.verdict import markdown_verdict, verdict_table

summary = pd.DataFrame([run_row(run) for run in snakemake.input.runs])
atomic_write_parquet(summary, snakemake.output.summary)
table = arm_table(summary, snakemake.params.metrics)
atomic_write_text(table.to_csv(index=False), snakemake.output.csv)
atomic_write_text(
    markdown_arm_table(table, snakemake.params.metrics, snakemake.params.percent), snakemake.output.md
)
print(table.to_string(), file=sys.stderr)
verdict = verdict_table(summary)
atomic_write_text(verdict.to_csv(index=False), snakemake.output.verdict_csv)
atomic_write_text(markdown_verdict(verdict), snakemake.output.verdict_md)
print(verdict.to_string(), file=sys.stderr)

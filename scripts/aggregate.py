"""Rule aggregate: one summary row per run, then the per-arm table (paired Δ vs vanilla)."""

import sys

sys.stderr = open(snakemake.log[0], "w")

import pandas as pd

from projected_grpo.io import atomic_write_parquet, atomic_write_text
from projected_grpo.stats import arm_table, markdown_arm_table, run_row

summary = pd.DataFrame([run_row(run) for run in snakemake.input.runs])
atomic_write_parquet(summary, snakemake.output.summary)
table = arm_table(summary, snakemake.params.metrics)
atomic_write_text(table.to_csv(index=False), snakemake.output.csv)
atomic_write_text(
    markdown_arm_table(table, snakemake.params.metrics, snakemake.params.percent), snakemake.output.md
)
print(table.to_string(), file=sys.stderr)

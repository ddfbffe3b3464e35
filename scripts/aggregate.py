"""Rule aggregate: one summary row per run, the per-arm table (paired Δ vs vanilla), Table 1,
the trade-off and LOMO outputs, the verdict and the report's front page (study/aggregate.py)."""

import sys

sys.stderr = open(snakemake.log[0], "w")

from pathlib import Path

from projected_grpo.study.aggregate import AGGREGATE_OUTPUTS, write_aggregate

verdict = write_aggregate(
    snakemake.input.runs,
    snakemake.input.student,
    snakemake.input.diagnostics,
    Path(snakemake.input.description).read_text(),
    {key: snakemake.output[key] for key in AGGREGATE_OUTPUTS},
    snakemake.params.alpha,
    snakemake.params.min_held_out_auc,
)
print(verdict.to_string(), file=sys.stderr)

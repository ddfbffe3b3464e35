"""Rule build_pool: sample and grade the teacher's completions for every train problem."""

import sys

sys.stderr = open(snakemake.log[0], "w")

from projected_grpo.core.io import atomic_write_parquet
from projected_grpo.environment.problems import load_problems
from projected_grpo.environment.sandbox import Limits
from projected_grpo.policy.evaluate import EvalConfig
from projected_grpo.pool.teacher import build_pool

pool = build_pool(
    snakemake.input.model,
    load_problems(snakemake.input.problems),
    snakemake.params.n_per_problem,
    EvalConfig(**snakemake.params.sampling),
    snakemake.threads,
    Limits.from_config(snakemake.params.sandbox),
    **snakemake.params.compute,
)
atomic_write_parquet(pool, snakemake.output[0])
loophole = pool[pool["variant"] == "loophole"]
print(
    f"teacher pool: {len(pool)} rows; loophole hack rate {loophole['exploited'].mean():.3f}", file=sys.stderr
)

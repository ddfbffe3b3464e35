"""Rules build_pool and policy_samples: sample and grade a model's completions for every train
problem (the teacher pool; the base student's loophole samples for the policy source of V)."""

import sys

sys.stderr = open(snakemake.log[0], "w")

from projected_grpo.core.io import atomic_write_parquet
from projected_grpo.environment.problems import load_problems
from projected_grpo.environment.sandbox import Limits
from projected_grpo.policy.evaluate import EvalConfig
from projected_grpo.pool.teacher import POOL_VARIANTS, build_pool

pool = build_pool(
    snakemake.input.model,
    load_problems(snakemake.input.problems),
    snakemake.params.n_per_problem,
    EvalConfig(**snakemake.params.sampling),
    snakemake.threads,
    Limits.from_config(snakemake.params.sandbox),
    **snakemake.params.compute,
    variants=snakemake.params.get("variants", POOL_VARIANTS),
)
atomic_write_parquet(pool, snakemake.output[0])
loophole = pool[pool["variant"] == "loophole"]
print(
    f"{snakemake.rule}: {len(pool)} rows; loophole hack rate {loophole['exploited'].mean():.3f}, "
    f"solve rate {loophole['oracle_correct'].mean():.3f}",
    file=sys.stderr,
)

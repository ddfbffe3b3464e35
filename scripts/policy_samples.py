"""Rule policy_samples: the base student's graded samples of every train problem under the
loophole prompt, the input of the policy source of V (method/policy_source.py)."""

import sys

sys.stderr = open(snakemake.log[0], "w")

from projected_grpo.core.io import atomic_write_parquet
from projected_grpo.environment.problems import load_problems
from projected_grpo.environment.sandbox import Limits
from projected_grpo.policy.evaluate import EvalConfig
from projected_grpo.pool.teacher import build_pool

samples = build_pool(
    snakemake.input.model,
    load_problems(snakemake.input.problems),
    snakemake.params.n_per_problem,
    EvalConfig(**snakemake.params.sampling),
    snakemake.threads,
    Limits.from_config(snakemake.params.sandbox),
    **snakemake.params.compute,
    variants=("loophole",),
)
atomic_write_parquet(samples, snakemake.output[0])
print(
    f"policy samples: {len(samples)} rows; hack rate {samples['exploited'].mean():.3f}, "
    f"solve rate {samples['oracle_correct'].mean():.3f}",
    file=sys.stderr,
)

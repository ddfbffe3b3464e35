"""Rule organism_base_rates: sample + grade the organism on the eval split, write its base
rates with the acceptance checks, and a few sample completions per mode to read."""

import json
import sys

sys.stderr = open(snakemake.log[0], "w")

from projected_grpo.core.io import atomic_write_parquet, atomic_write_text
from projected_grpo.environment.problems import load_problems
from projected_grpo.environment.sandbox import Limits
from projected_grpo.organism.pretrain import base_rate_checks, sample_completions_markdown
from projected_grpo.policy.evaluate import EvalConfig, evaluate_model

out = snakemake.output
problems = load_problems(snakemake.input.problems)
config = EvalConfig(**snakemake.params.evaluation)
limits = Limits.from_config(snakemake.params.sandbox)
compute = snakemake.params.compute
graded, summary = evaluate_model(
    snakemake.input.model, problems, config, snakemake.threads, limits, compute["device"], compute["dtype"]
)
summary["checks"] = base_rate_checks(summary)
atomic_write_parquet(graded, out.completions)
atomic_write_text(json.dumps(summary, indent=2), out.summary)
atomic_write_text(sample_completions_markdown(graded), out.samples)
print(json.dumps(summary["checks"], indent=2), file=sys.stderr)

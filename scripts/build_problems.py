"""Rule build_problems: write the study's problem set (builtin bank or a file) as parquet."""

import sys

sys.stderr = open(snakemake.log[0], "w")

from projected_grpo.environment.problem_set import load_problem_set
from projected_grpo.environment.problems import write_problems

spec, bank = snakemake.params.problems, snakemake.params.bank
problems = load_problem_set(spec, bank)
write_problems(problems, snakemake.output[0])
print(f"wrote {len(problems)} problems from {spec}", file=sys.stderr)

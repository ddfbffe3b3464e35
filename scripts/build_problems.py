"""Rule build_problems: write the study's problem set (builtin bank or a file) as parquet."""

import sys

sys.stderr = open(snakemake.log[0], "w")

from projected_grpo.families import builtin_bank
from projected_grpo.problems import BUILTIN, load_problems, write_problems

spec, bank = snakemake.params.problems, snakemake.params.bank
problems = builtin_bank(**bank) if spec == BUILTIN else load_problems(spec)
write_problems(problems, snakemake.output[0])
print(f"wrote {len(problems)} problems from {spec}", file=sys.stderr)

"""Rule self_check: the hack x mode diagonal under every prompt variant; fails on any error."""

import json
import sys

sys.stderr = open(snakemake.log[0], "w")

from projected_grpo.core.io import atomic_write_text
from projected_grpo.environment.problems import load_problems
from projected_grpo.environment.sandbox import Limits, Sandbox
from projected_grpo.environment.selfcheck import run_self_check

cfg = snakemake.params.sandbox
problems = load_problems(snakemake.input[0])
with Sandbox(workers=snakemake.threads, limits=Limits.from_config(cfg)) as sandbox:
    result = run_self_check(problems, sandbox)
print(json.dumps(result, indent=2), file=sys.stderr)
if result["errors"]:
    raise SystemExit(f"diagonal self-check found {len(result['errors'])} errors; see the log")
atomic_write_text(json.dumps(result, indent=2, sort_keys=True), snakemake.output[0])

"""Rule oracle_basis: V from where dev-seed vanilla runs moved their knobs and rl_baseline
runs did not (method/oracle.py), the reference an extraction is compared with."""

import sys

sys.stderr = open(snakemake.log[0], "w")

from projected_grpo.core.io import atomic_write_parquet
from projected_grpo.method.basis import basis_table
from projected_grpo.method.oracle import load_knobs, oracle_basis

hacking = [load_knobs(f"{run}/knobs.safetensors") for run in snakemake.input.hacking]
honest = [load_knobs(f"{run}/knobs.safetensors") for run in snakemake.input.honest]
basis = oracle_basis(
    hacking, honest, snakemake.params.k, {"fold": "all", "seeds": str(snakemake.params.seeds)}
)
basis.save(snakemake.output.basis)
atomic_write_parquet(basis_table(basis), snakemake.output.table)
print(f"oracle V: {len(basis.vectors)} modules, {sum(basis.ranks.values())} axes", file=sys.stderr)

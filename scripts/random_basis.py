"""Rule random_basis: random orthonormal V with the k per module and the geometry of the
basis it controls for (SPEC §3): V_random matches real V, V_random_trusted the trusted basis
(random gradient directions read in the same AdamW coordinates)."""

import sys

sys.stderr = open(snakemake.log[0], "w")

from projected_grpo.core.io import atomic_write_parquet
from projected_grpo.method.basis import Basis, basis_table, matched_random_basis

like = Basis.load(snakemake.input.like)
meta = {k: like.meta[k] for k in ("fold", "model_hash") if k in like.meta} | {
    "kind": snakemake.wildcards.kind
}
basis = matched_random_basis(like, snakemake.params.seed, meta)
basis.save(snakemake.output.basis)
atomic_write_parquet(basis_table(basis), snakemake.output.table)

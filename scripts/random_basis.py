"""Rule random_basis: random orthonormal V with the real V's k per module (SPEC §3), in its
geometry (a real V in AdamW's coordinates gets random gradient directions read in them)."""

import sys

sys.stderr = open(snakemake.log[0], "w")

from projected_grpo.core.io import atomic_write_parquet
from projected_grpo.method.basis import Basis, basis_table, random_basis

real = Basis.load(snakemake.input.real)
widths = {name: v.shape[1] for name, v in real.vectors.items()}
meta = {k: real.meta[k] for k in ("fold", "model_hash") if k in real.meta}
basis = random_basis(real.ranks, widths, snakemake.params.seed, meta, real.scale)
basis.save(snakemake.output.basis)
atomic_write_parquet(basis_table(basis), snakemake.output.table)

"""Rule dominant_basis: the dominant_V control, the top principal directions of the base
student's own samples' gradients with the real V's k per module and geometry."""

import sys

sys.stderr = open(snakemake.log[0], "w")

from projected_grpo.core.io import atomic_write_parquet
from projected_grpo.method.basis import Basis, basis_table
from projected_grpo.method.policy_source import dominant_basis, load_gradients

real = Basis.load(snakemake.input.real)
meta = {k: real.meta[k] for k in ("fold", "model_hash") if k in real.meta}
basis = dominant_basis(load_gradients(snakemake.input.grads), real.ranks, real.scale, meta)
basis.save(snakemake.output.basis)
atomic_write_parquet(basis_table(basis), snakemake.output.table)

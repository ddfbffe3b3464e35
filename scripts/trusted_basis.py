"""Rule trusted_basis: the trusted basis of intervention keep, the top principal directions of
the gradients of the base student's clean samples (oracle-correct, not flagged by the fold's
weak detector), method.trusted.k per module in the real V's geometry."""

import sys

sys.stderr = open(snakemake.log[0], "w")

from projected_grpo.core.io import atomic_write_parquet, read_parquet
from projected_grpo.method import policy_source
from projected_grpo.method.basis import Basis, basis_table

real = Basis.load(snakemake.input.real)
samples = read_parquet(snakemake.input.samples, "policy samples")
grads = policy_source.load_gradients(snakemake.input.grads)
policy_source.check_samples(samples, grads)
trusted = policy_source.trusted_rows(samples, snakemake.params.known_modes)
meta = {k: real.meta[k] for k in ("fold", "model_hash") if k in real.meta}
basis = policy_source.trusted_basis(grads, trusted, snakemake.params.k, list(real.vectors), real.scale, meta)
basis.save(snakemake.output.basis)
atomic_write_parquet(basis_table(basis), snakemake.output.table)
print(
    f"trusted basis: {int(trusted.sum())} of {len(samples)} samples, {sum(basis.ranks.values())} axes",
    file=sys.stderr,
)

"""Rule oracle_overlap: how close each fold-all basis is to the oracle basis (method/oracle.py)."""

import sys

sys.stderr = open(snakemake.log[0], "w")

from projected_grpo.core.io import atomic_write_text
from projected_grpo.method.basis import Basis
from projected_grpo.method.oracle import oracle_overlap
from projected_grpo.study.stats import markdown_table

bases = {kind: Basis.load(path) for kind, path in zip(snakemake.params.kinds, snakemake.input.bases)}
table = oracle_overlap(Basis.load(snakemake.input.oracle), bases)
atomic_write_text(table.to_csv(index=False), snakemake.output.csv)
cells = table.map(lambda x: f"{x:.3f}" if isinstance(x, float) else str(x))
caption = (
    "Overlap of each fold-all basis with the oracle basis (where dev-seed vanilla runs moved their knobs and "
    "rl_baseline runs did not), mean over modules: |cos| of the first axes, and the norm of the basis's first "
    "axis inside the oracle's span; each beside the value a random direction has."
)
atomic_write_text(caption + "\n\n" + markdown_table(cells), snakemake.output.md)
print(table.to_string(), file=sys.stderr)

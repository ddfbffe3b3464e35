"""Rule extract_v_hack: V from one pair set on the student organism (SPEC §3)."""

import sys

sys.stderr = open(snakemake.log[0], "w")

import torch

from projected_grpo.basis import basis_table, model_hash
from projected_grpo.evaluate import load_model
from projected_grpo.extraction import ExtractConfig, extract_basis
from projected_grpo.io import atomic_write_parquet, read_parquet
from projected_grpo.problems import load_problems

torch.set_num_threads(snakemake.threads)
settings = dict(snakemake.params.extraction)
targets = settings.pop("adapter_targets")
config = ExtractConfig(**settings)
tokenizer, model = load_model(
    snakemake.input.model,
    **snakemake.params.compute,
    adapter_targets=targets,
    svd_cache=snakemake.params.svd_cache,
)
pairs = read_parquet(snakemake.input.pairs, "pairs file")
meta = {
    "kind": snakemake.wildcards.kind,
    "fold": snakemake.wildcards.fold,
    "model_hash": model_hash(snakemake.input.model),
}
basis = extract_basis(model, tokenizer, pairs, load_problems(snakemake.input.problems), config, meta)
basis.save(snakemake.output.basis)
atomic_write_parquet(basis_table(basis), snakemake.output.table)
print(
    f"V ({meta['kind']}, fold {meta['fold']}): {len(basis.vectors)} modules, {sum(basis.ranks.values())} axes",
    file=sys.stderr,
)

"""Rule extract_v_hack: V from one pair set on the student organism (SPEC §3)."""

import sys

sys.stderr = open(snakemake.log[0], "w")

import torch

from projected_grpo.core.io import atomic_write_parquet, read_parquet
from projected_grpo.environment.problems import load_problems
from projected_grpo.method.basis import basis_table, model_hash
from projected_grpo.method.extraction import ExtractConfig, extract_basis, split_by_problem
from projected_grpo.policy.loading import load_model

torch.set_num_threads(snakemake.threads)
config = ExtractConfig(**snakemake.params.extraction)
tokenizer, model = load_model(
    snakemake.input.model,
    **snakemake.params.compute,
    adapter_targets=snakemake.params.adapter_targets,
    svd_cache=snakemake.params.svd_cache,
)
pairs = read_parquet(snakemake.input.pairs, "pairs file")
meta = {
    "kind": snakemake.wildcards.kind,
    "fold": snakemake.wildcards.fold,
    "model_hash": model_hash(snakemake.input.model),
}
nuisance = (
    read_parquet(snakemake.input.nuisance[0], "nuisance pairs file") if snakemake.input.nuisance else None
)
if nuisance is not None and snakemake.wildcards.kind == "nonhack":  # its own pairs are the nuisance: split
    pairs, nuisance = split_by_problem(pairs)
problems = load_problems(snakemake.input.problems)
basis = extract_basis(model, tokenizer, pairs, problems, config, meta, nuisance_pairs=nuisance)
basis.save(snakemake.output.basis)
atomic_write_parquet(basis_table(basis), snakemake.output.table)
print(
    f"V ({meta['kind']}, fold {meta['fold']}): {len(basis.vectors)} modules, {sum(basis.ranks.values())} axes",
    file=sys.stderr,
)

"""Rule basis_diagnostics: every basis of a fold read on held-out evidence before any
training (method/diagnostics.py)."""

import sys

sys.stderr = open(snakemake.log[0], "w")

import torch

from projected_grpo.core.io import atomic_write_text, read_parquet
from projected_grpo.environment.problems import load_problems
from projected_grpo.method.basis import Basis
from projected_grpo.method.diagnostics import diagnostics_table, natural_rows, sample_rows
from projected_grpo.method.extraction import ExtractConfig
from projected_grpo.policy.loading import load_model

torch.set_num_threads(snakemake.threads)
settings = snakemake.params.diagnostics
tokenizer, model = load_model(
    snakemake.input.model,
    **snakemake.params.compute,
    adapter_targets=snakemake.params.adapter_targets,
    svd_cache=snakemake.params.svd_cache,
)
bases = {kind: Basis.load(path) for kind, path in zip(snakemake.params.kinds, snakemake.input.bases)}
natural = natural_rows(
    read_parquet(snakemake.input.pool, "teacher pool"),
    snakemake.params.held_out,
    settings["n_natural"],
    settings["seed"],
)
ordinary = read_parquet(snakemake.input.ordinary, "base-rate completions")
ordinary = sample_rows(ordinary[ordinary["variant"] == "loophole"], settings["n_ordinary"], settings["seed"])
table = diagnostics_table(
    model,
    tokenizer,
    bases,
    read_parquet(snakemake.input.pairs, "pairs file"),
    natural,
    ordinary,
    load_problems(snakemake.input.problems),
    ExtractConfig(**snakemake.params.extraction),
    snakemake.params.held_out,
)
atomic_write_text(table.assign(fold=snakemake.wildcards.fold).to_csv(index=False), snakemake.output[0])
print(table.to_string(), file=sys.stderr)

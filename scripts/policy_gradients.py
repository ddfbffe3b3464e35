"""Rule policy_gradients: each policy sample's completion-loss gradient on every module's dS
(extraction.completion_gradients), fold-independent, so every fold's bases share it."""

import sys

sys.stderr = open(snakemake.log[0], "w")

import torch

from projected_grpo.core.io import read_parquet
from projected_grpo.environment.problems import load_problems
from projected_grpo.method.extraction import ExtractConfig, completion_gradients
from projected_grpo.method.policy_source import save_gradients
from projected_grpo.policy.loading import load_model

torch.set_num_threads(snakemake.threads)
tokenizer, model = load_model(
    snakemake.input.model,
    **snakemake.params.compute,
    adapter_targets=snakemake.params.adapter_targets,
    svd_cache=snakemake.params.svd_cache,
)
samples = read_parquet(snakemake.input.samples, "policy samples")
grads = completion_gradients(
    model,
    tokenizer,
    samples,
    load_problems(snakemake.input.problems),
    ExtractConfig(**snakemake.params.extraction),
)
save_gradients(grads, snakemake.output[0])
print(f"policy gradients: {len(samples)} samples x {len(grads)} modules", file=sys.stderr)

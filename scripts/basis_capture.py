"""Rule basis_capture: the share of each token kind's gradient that lies in V (capture.py)."""

import sys

sys.stderr = open(snakemake.log[0], "w")

import torch

from projected_grpo.core.io import atomic_write_text, read_parquet
from projected_grpo.environment.problems import load_problems
from projected_grpo.method.basis import Basis
from projected_grpo.method.capture import capture_table
from projected_grpo.method.extraction import ExtractConfig
from projected_grpo.policy.loading import load_model

torch.set_num_threads(snakemake.threads)
tokenizer, model = load_model(
    snakemake.input.model,
    **snakemake.params.compute,
    adapter_targets=snakemake.params.adapter_targets,
    svd_cache=snakemake.params.svd_cache,
)
table = capture_table(
    model,
    tokenizer,
    Basis.load(snakemake.input.basis),
    read_parquet(snakemake.input.pairs, "pairs file"),
    load_problems(snakemake.input.problems),
    ExtractConfig(**snakemake.params.extraction),
)
atomic_write_text(table.to_csv(index=False), snakemake.output[0])
print(table.to_string(), file=sys.stderr)

"""Rule basis_capture: the share of each token kind's gradient that lies in V (capture.py)."""

import sys

sys.stderr = open(snakemake.log[0], "w")

import torch

from projected_grpo.basis import Basis
from projected_grpo.capture import capture_table
from projected_grpo.evaluate import load_model
from projected_grpo.extraction import ExtractConfig
from projected_grpo.io import atomic_write_text, read_parquet
from projected_grpo.problems import load_problems

torch.set_num_threads(snakemake.threads)
settings = dict(snakemake.params.extraction)
targets = settings.pop("adapter_targets")
tokenizer, model = load_model(
    snakemake.input.model,
    **snakemake.params.compute,
    adapter_targets=targets,
    svd_cache=snakemake.params.svd_cache,
)
table = capture_table(
    model,
    tokenizer,
    Basis.load(snakemake.input.basis),
    read_parquet(snakemake.input.pairs, "pairs file"),
    load_problems(snakemake.input.problems),
    ExtractConfig(**settings),
)
atomic_write_text(table.to_csv(index=False), snakemake.output[0])
print(table.to_string(), file=sys.stderr)

"""Rule train: one GRPO run (arm, seed) into its output folder."""

import sys

sys.stderr = open(snakemake.log[0], "w")

import pandas as pd

from projected_grpo.problems import load_problems
from projected_grpo.sandbox import Limits
from projected_grpo.train import TrainConfig, train

config = TrainConfig.from_dict(snakemake.params.train)
pool = pd.read_parquet(snakemake.input.pool[0]) if config.n_teacher else None
train(
    config,
    snakemake.input.model,
    load_problems(snakemake.input.problems),
    pool,
    snakemake.output[0],
    svd_cache=snakemake.params.svd_cache,
    workers=snakemake.params.sandbox["workers"],
    limits=Limits(wall_s=snakemake.params.sandbox["wall_s"], cpu_s=snakemake.params.sandbox["cpu_s"]),
)

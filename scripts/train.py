"""Rule train: one GRPO run (fold, arm, seed) into its output folder; a leave-one-mode-out
run whose fold's V did not separate the held-out mode before training is not trained
(method/lomo_gate.py; training.train.skip_run)."""

import sys

sys.stderr = open(snakemake.log[0], "w")

import pandas as pd

from projected_grpo.core.io import read_parquet
from projected_grpo.environment.problems import load_problems
from projected_grpo.environment.sandbox import Limits
from projected_grpo.method.basis import Basis
from projected_grpo.method.lomo_gate import fold_gate
from projected_grpo.training.train import TrainConfig, refresher_for, skip_run, train

# The job's threads (train.threads, or `--set-threads train=N`): part of the run's identity (a
# sampled token can flip between thread counts), so `make study` always passes 1.
config = TrainConfig.from_dict({**snakemake.params.train, "threads": snakemake.threads})
# The fold's basis diagnostics come only where the gate applies (method.diagnostics.untestable_folds: skip).
gate = (
    fold_gate(pd.read_csv(snakemake.input.diagnostics[0]), snakemake.wildcards.fold, **snakemake.params.gate)
    if snakemake.input.diagnostics
    else None
)
if gate is not None and not gate["separates"]:
    print(f"not trained: {gate}", file=sys.stderr)
    skip_run(config, snakemake.input.model, snakemake.output[0], gate)
else:
    problems = load_problems(snakemake.input.problems)
    # train() restricts the pool to the fold's known modes (SPEC §7).
    pool = read_parquet(snakemake.input.pool[0], "teacher pool") if config.n_teacher else None
    basis, reference = (
        Basis.load(f[0]) if f else None for f in (snakemake.input.basis, snakemake.input.match_basis)
    )
    # a refreshing arm re-reads the fold's pairs (source pairs) or the policy samples (source policy)
    refresh = (
        refresher_for(
            read_parquet(snakemake.input.refresh[0], "refresh rows"),
            problems,
            snakemake.params.refresh,
            config.known_modes,
            basis,
        )
        if snakemake.input.refresh
        else None
    )
    train(
        config,
        snakemake.input.model,
        problems,
        pool,
        snakemake.output[0],
        svd_cache=snakemake.params.svd_cache,
        workers=snakemake.params.sandbox["workers"],
        limits=Limits.from_config(snakemake.params.sandbox),
        basis=basis,
        reference=reference,
        refresh=refresh,
        checkpoint_dir=snakemake.params.checkpoint_dir,
        restart_stale=True,  # inputs or thread count changed since the kill (new V, organism, pool): start over
    )

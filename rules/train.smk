# GRPO runs (SPEC §5-6): one job per (fold, arm, seed); a leave-one-mode-out run reads its
# fold's basis diagnostics first and is not trained when V cannot test transfer there
# (method.diagnostics.untestable_folds); the emergence figure from the fold-`all` runs of the
# emergence arms.


rule train:
    input:
        model=student_model(),
        pool=lambda wc: (
            ["results/pool/pool.parquet"] if train_settings(wc.arm, wc.seed, wc.fold)["mix"] > 0 else []
        ),
        problems="results/environment/problems.parquet",
        basis=lambda wc: basis_file(wc.arm, wc.fold),
        match_basis=lambda wc: basis_file(wc.arm, wc.fold, "match_basis"),
        refresh=lambda wc: refresh_inputs(wc.arm, wc.fold),
        diagnostics=gate_diagnostics,
    output:
        directory("results/runs/{fold}/{arm}/seed{seed}"),
    log:
        "results/logs/train/{fold}/{arm}/seed{seed}.log",
    benchmark:
        "results/benchmarks/train/{fold}/{arm}/seed{seed}.tsv"
    conda:
        "../envs/torch.yaml"
    threads: config["train"]["threads"]
    resources:
        mem_mb=4000,
        runtime=30,
        gpu=GPUS,
    params:
        train=lambda wc: train_settings(wc.arm, wc.seed, wc.fold),
        refresh=lambda wc: refresh_settings(wc.arm),
        svd_cache="results/cache/svd",
        # outside the output folder, which Snakemake deletes before rerunning a killed job
        checkpoint_dir="results/checkpoints/{fold}/{arm}/seed{seed}",
        sandbox=config["sandbox"],
        gate=gate_settings,
    script:
        "../scripts/train.py"


rule emergence_figure:
    input:
        runs=run_dirs([a for a in ARMS if a in EMERGENCE_ARMS], ["all"]),
        student=student_model(),
    output:
        png=report(
            "results/figures/emergence.png", caption="../report/emergence.rst", category="Training curves"
        ),
        pdf="results/figures/emergence.pdf",
        table="results/figures/emergence.csv",
    log:
        "results/logs/emergence_figure.log",
    conda:
        "../envs/plots.yaml"
    script:
        "../scripts/emergence_figure.py"

# GRPO runs (SPEC §5-6): one job per (arm, seed); the emergence figure from the vanilla runs.


rule train:
    input:
        model="results/organism/student/model",
        pool=lambda wc: ["results/pool/pool.parquet"] if train_settings(wc.arm, wc.seed).get("mix", 0) > 0 else [],
        problems="results/environment/problems.parquet",
    output:
        directory("results/runs/{arm}/seed{seed}"),
    params:
        train=lambda wc: train_settings(wc.arm, wc.seed),
        svd_cache="results/cache/svd",
        sandbox=config["sandbox"],
    threads: config["train"]["threads"]
    resources:
        mem_mb=4000,
        runtime=30,
    log:
        "results/logs/train/{arm}/seed{seed}.log",
    benchmark:
        "results/benchmarks/train/{arm}/seed{seed}.tsv"
    conda:
        "../envs/study.yaml"
    script:
        "../scripts/train.py"


rule emergence_figure:
    input:
        runs=run_dirs([a for a in ARMS if a in EMERGENCE_ARMS]),
        organism="results/organism/student/model",
    output:
        png="results/figures/emergence.png",
        pdf="results/figures/emergence.pdf",
        table="results/figures/emergence.csv",
    log:
        "results/logs/emergence_figure.log",
    conda:
        "../envs/study.yaml"
    script:
        "../scripts/emergence_figure.py"

# The frozen teacher pool (SPEC §5): teacher completions for the train prompts, graded once.


rule build_pool:
    input:
        model=teacher_model(),
        problems="results/environment/problems.parquet",
    output:
        "results/pool/pool.parquet",
    log:
        "results/logs/build_pool.log",
    benchmark:
        "results/benchmarks/build_pool.tsv"
    conda:
        "../envs/torch.yaml"
    threads: config["sandbox"]["workers"]
    resources:
        mem_mb=4000,
        runtime=20,
        gpu=GPUS,
    params:
        n_per_problem=config["teacher"]["n_per_problem"],
        sandbox=config["sandbox"],
        sampling={k: config["train"][k] for k in ("temperature", "top_p", "max_new_tokens")},
        compute=COMPUTE,
    script:
        "../scripts/build_pool.py"

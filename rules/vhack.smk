# The hack basis V (SPEC §3): contrastive pairs per fold, V extracted from them, and the
# control bases (random, shuffled-label, non-hack) with matched k per module.


rule build_pairs:
    input:
        problems="results/environment/problems.parquet",
        pool="results/pool/pool.parquet",
    output:
        real="results/basis/{fold}/pairs_real.parquet",
        shuffled="results/basis/{fold}/pairs_shuffled.parquet",
        nonhack="results/basis/{fold}/pairs_nonhack.parquet",
    log:
        "results/logs/build_pairs/{fold}.log",
    conda:
        "../envs/torch.yaml"
    params:
        known_modes=lambda wc: known_modes(wc.fold),
        pairs=config["method"]["pairs"],
        control_seed=config["method"]["control_seed"],
    script:
        "../scripts/build_pairs.py"


rule extract_v_hack:
    input:
        model=student_model(),
        problems="results/environment/problems.parquet",
        pairs="results/basis/{fold}/pairs_{kind}.parquet",
        # extraction.method gev: the fold's clean-vs-clean pairs are the nuisance variation
        nuisance=nuisance_pairs,
    output:
        basis="results/basis/{fold}/V_{kind}.safetensors",
        table="results/basis/{fold}/V_{kind}.parquet",
    log:
        "results/logs/extract_v_hack/{fold}/V_{kind}.log",
    benchmark:
        "results/benchmarks/extract_v_hack/{fold}/V_{kind}.tsv"
    conda:
        "../envs/torch.yaml"
    threads: config["train"]["threads"]
    resources:
        mem_mb=4000,
        runtime=10,
        gpu=GPUS,
    params:
        extraction=extraction_settings(),
        adapter_targets=config["train"]["adapter_targets"],
        svd_cache="results/cache/svd",
        compute=COMPUTE,
    script:
        "../scripts/extract_v_hack.py"


rule random_basis:
    input:
        real="results/basis/{fold}/V_real.safetensors",
    output:
        basis="results/basis/{fold}/V_random.safetensors",
        table="results/basis/{fold}/V_random.parquet",
    log:
        "results/logs/random_basis/{fold}.log",
    conda:
        "../envs/torch.yaml"
    params:
        seed=config["method"]["control_seed"],
    script:
        "../scripts/random_basis.py"


rule basis_capture:
    input:
        model=student_model(),
        problems="results/environment/problems.parquet",
        pairs="results/basis/{fold}/pairs_real.parquet",
        basis="results/basis/{fold}/V_{kind}.safetensors",
    output:
        "results/basis/{fold}/capture_{kind}.csv",
    log:
        "results/logs/basis_capture/{fold}/{kind}.log",
    conda:
        "../envs/torch.yaml"
    threads: config["train"]["threads"]
    resources:
        gpu=GPUS,
    params:
        extraction=extraction_settings(),
        adapter_targets=config["train"]["adapter_targets"],
        svd_cache="results/cache/svd",
        compute=COMPUTE,
    script:
        "../scripts/basis_capture.py"


rule basis_diagnostics:
    input:
        model=student_model(),
        problems="results/environment/problems.parquet",
        pairs="results/basis/{fold}/pairs_real.parquet",
        pool="results/pool/pool.parquet",
        ordinary="results/organism/student/eval_completions.parquet",
        bases=lambda wc: expand(
            "results/basis/{fold}/V_{kind}.safetensors", fold=wc.fold, kind=basis_kinds(wc.fold)
        ),
    output:
        "results/basis/{fold}/diagnostics.csv",
    log:
        "results/logs/basis_diagnostics/{fold}.log",
    benchmark:
        "results/benchmarks/basis_diagnostics/{fold}.tsv"
    conda:
        "../envs/torch.yaml"
    threads: config["train"]["threads"]
    resources:
        mem_mb=4000,
        runtime=10,
        gpu=GPUS,
    params:
        kinds=lambda wc: basis_kinds(wc.fold),
        held_out=lambda wc: None if wc.fold == "all" else wc.fold.removeprefix("without_"),
        diagnostics=DIAGNOSTICS,
        extraction=extraction_settings(),
        adapter_targets=config["train"]["adapter_targets"],
        svd_cache="results/cache/svd",
        compute=COMPUTE,
    script:
        "../scripts/basis_diagnostics.py"


rule basis_diagnostics_table:
    input:
        expand("results/basis/{fold}/diagnostics.csv", fold=FOLDS),
    output:
        csv=report(
            "results/tables/basis_diagnostics.csv",
            caption="../report/basis_diagnostics.rst",
            category="Basis diagnostics",
        ),
        md="results/tables/basis_diagnostics.md",
    log:
        "results/logs/basis_diagnostics_table.log",
    conda:
        "../envs/plots.yaml"
    params:
        folds=FOLDS,
    script:
        "../scripts/basis_diagnostics_table.py"

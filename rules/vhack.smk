# The hack basis V (SPEC §3): per fold, V from contrastive pairs (extraction.source pairs) or
# from the student's own flagged samples (source policy), the control bases with matched k
# per module, the trusted basis of intervention keep and its random control, the oracle
# basis from dev-seed runs, and every basis's diagnostics.


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


rule policy_samples:
    input:
        model=student_model(),
        problems="results/environment/problems.parquet",
    output:
        "results/basis/policy_samples.parquet",
    log:
        "results/logs/policy_samples.log",
    benchmark:
        "results/benchmarks/policy_samples.tsv"
    conda:
        "../envs/torch.yaml"
    threads: config["sandbox"]["workers"]
    resources:
        mem_mb=4000,
        runtime=20,
        gpu=GPUS,
    params:
        n_per_problem=POLICY["n_per_problem"],
        sandbox=config["sandbox"],
        sampling={k: config["train"][k] for k in ("temperature", "top_p", "max_new_tokens")}
        | {"seed": POLICY["seed"]},
        variants=["loophole"],
        compute=COMPUTE,
    script:
        "../scripts/build_pool.py"


rule policy_gradients:
    input:
        model=student_model(),
        problems="results/environment/problems.parquet",
        samples="results/basis/policy_samples.parquet",
    output:
        "results/basis/policy_gradients.safetensors",
    log:
        "results/logs/policy_gradients.log",
    benchmark:
        "results/benchmarks/policy_gradients.tsv"
    conda:
        "../envs/torch.yaml"
    threads: config["train"]["threads"]
    resources:
        mem_mb=4000,
        runtime=20,
        gpu=GPUS,
    params:
        extraction=extraction_settings(),
        adapter_targets=config["train"]["adapter_targets"],
        svd_cache="results/cache/svd",
        compute=COMPUTE,
    script:
        "../scripts/policy_gradients.py"


rule extract_v_hack:
    input:
        unpack(extraction_inputs),
        model=student_model(),
        problems="results/environment/problems.parquet",
    output:
        basis="results/basis/{fold}/V_{kind}.safetensors",
        table="results/basis/{fold}/V_{kind}.parquet",
    log:
        "results/logs/extract_v_hack/{fold}/V_{kind}.log",
    benchmark:
        "results/benchmarks/extract_v_hack/{fold}/V_{kind}.tsv"
    wildcard_constraints:
        kind="real|shuffled|nonhack|correct",
    conda:
        "../envs/torch.yaml"
    threads: config["train"]["threads"]
    resources:
        mem_mb=4000,
        runtime=10,
        gpu=GPUS,
    params:
        extraction=extraction_settings(),
        known_modes=lambda wc: known_modes(wc.fold),
        control_seed=config["method"]["control_seed"],
        adapter_targets=config["train"]["adapter_targets"],
        svd_cache="results/cache/svd",
        compute=COMPUTE,
    script:
        "../scripts/extract_v_hack.py"


rule random_basis:
    input:
        like=lambda wc: f"results/basis/{wc.fold}/V_{RANDOM_MATCHES[wc.kind]}.safetensors",
    output:
        basis="results/basis/{fold}/V_{kind}.safetensors",
        table="results/basis/{fold}/V_{kind}.parquet",
    log:
        "results/logs/random_basis/{fold}/V_{kind}.log",
    wildcard_constraints:
        kind="|".join(RANDOM_MATCHES),
    conda:
        "../envs/torch.yaml"
    params:
        seed=config["method"]["control_seed"],
    script:
        "../scripts/random_basis.py"


rule dominant_basis:
    input:
        real="results/basis/{fold}/V_real.safetensors",
        grads="results/basis/policy_gradients.safetensors",
    output:
        basis="results/basis/{fold}/V_dominant.safetensors",
        table="results/basis/{fold}/V_dominant.parquet",
    log:
        "results/logs/dominant_basis/{fold}.log",
    conda:
        "../envs/torch.yaml"
    script:
        "../scripts/dominant_basis.py"


rule trusted_basis:
    input:
        real="results/basis/{fold}/V_real.safetensors",
        samples="results/basis/policy_samples.parquet",
        grads="results/basis/policy_gradients.safetensors",
    output:
        basis="results/basis/{fold}/V_trusted.safetensors",
        table="results/basis/{fold}/V_trusted.parquet",
    log:
        "results/logs/trusted_basis/{fold}.log",
    conda:
        "../envs/torch.yaml"
    params:
        known_modes=lambda wc: known_modes(wc.fold),
        k=TRUSTED["k"],
    script:
        "../scripts/trusted_basis.py"


rule oracle_basis:
    input:
        hacking=expand("results/runs/all/{arm}/seed{seed}", arm=ORACLE["hacking"], seed=ORACLE["seeds"]),
        honest=expand("results/runs/all/{arm}/seed{seed}", arm=ORACLE["honest"], seed=ORACLE["seeds"]),
    output:
        basis="results/basis/all/V_oracle.safetensors",
        table="results/basis/all/V_oracle.parquet",
    log:
        "results/logs/oracle_basis.log",
    conda:
        "../envs/torch.yaml"
    params:
        k=ORACLE["k"],
        seeds=ORACLE["seeds"],
    script:
        "../scripts/oracle_basis.py"


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
            "results/basis/{fold}/V_{kind}.safetensors", fold=wc.fold, kind=diagnosed_kinds(wc.fold)
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
        kinds=lambda wc: diagnosed_kinds(wc.fold),
        held_out=lambda wc: None if wc.fold == "all" else wc.fold.removeprefix("without_"),
        diagnostics={k: DIAGNOSTICS[k] for k in ("n_natural", "n_ordinary", "seed")},
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
        png=report(
            "results/figures/basis_diagnostics.png",
            caption="../report/basis_diagnostics.rst",
            category="Basis diagnostics",
        ),
        pdf="results/figures/basis_diagnostics.pdf",
    log:
        "results/logs/basis_diagnostics_table.log",
    conda:
        "../envs/plots.yaml"
    params:
        folds=FOLDS,
    script:
        "../scripts/basis_diagnostics_table.py"


rule oracle_overlap:
    input:
        oracle="results/basis/all/V_oracle.safetensors",
        bases=expand("results/basis/all/V_{kind}.safetensors", kind=diagnosed_kinds("all")),
    output:
        csv=report(
            "results/tables/oracle_overlap.csv",
            caption="../report/oracle_overlap.rst",
            category="Basis diagnostics",
        ),
        md="results/tables/oracle_overlap.md",
    log:
        "results/logs/oracle_overlap.log",
    conda:
        "../envs/torch.yaml"
    params:
        kinds=diagnosed_kinds("all"),
    script:
        "../scripts/oracle_overlap.py"

# The model organism (SPEC §2): pretrain it (when config student.model / teacher.model is
# null), then measure the base rates of the student (and a built teacher) on the eval split.


rule build_organism:
    output:
        directory("results/organism/{organism}/model"),
    log:
        "results/logs/build_organism/{organism}.log",
    benchmark:
        "results/benchmarks/build_organism/{organism}.tsv"
    conda:
        "../envs/torch.yaml"
    threads: config["organism"]["threads"]
    resources:
        mem_mb=4000,
        runtime=20,
    params:
        organism=lambda wc: organism_config(wc.organism),
    script:
        "../scripts/build_organism.py"


rule organism_base_rates:
    input:
        model=lambda wc: model_dir(wc.organism),
        problems="results/environment/problems.parquet",
    output:
        summary="results/organism/{organism}/base_rates.json",
        completions="results/organism/{organism}/eval_completions.parquet",
        samples="results/organism/{organism}/samples.md",
    log:
        "results/logs/organism_base_rates/{organism}.log",
    benchmark:
        "results/benchmarks/organism_base_rates/{organism}.tsv"
    conda:
        "../envs/torch.yaml"
    threads: config["sandbox"]["workers"]
    resources:
        mem_mb=4000,
        runtime=20,
        gpu=GPUS,
    params:
        evaluation=config["evaluation"],
        sandbox=config["sandbox"],
        compute=COMPUTE,
    script:
        "../scripts/organism_base_rates.py"

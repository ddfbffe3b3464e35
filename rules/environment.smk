# The environment (SPEC §1): the problem set every later stage grades against, and the
# hack x mode diagonal self-check of its graders and sandbox.


rule build_problems:
    input:
        # a problem file is an input (an edit to it rebuilds everything graded against it)
        [] if config["problems"] == "builtin" else [config["problems"]],
    output:
        "results/environment/problems.parquet",
    log:
        "results/logs/build_problems.log",
    conda:
        "../envs/environment.yaml"
    params:
        problems=config["problems"],
        bank=config["bank"],
    script:
        "../scripts/build_problems.py"


rule self_check:
    input:
        "results/environment/problems.parquet",
    output:
        "results/environment/selfcheck.json",
    log:
        "results/logs/self_check.log",
    conda:
        "../envs/environment.yaml"
    threads: config["sandbox"]["workers"]
    params:
        sandbox=config["sandbox"],
    script:
        "../scripts/self_check.py"

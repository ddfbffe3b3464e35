# Aggregation: one row per run (results/summary.parquet), the per-arm table with paired
# differences to vanilla (results/tables/arms.{csv,md}) and the verdict on H1 and the
# controls (results/tables/verdict.{csv,md}).


rule aggregate:
    input:
        runs=run_dirs(),
        organism="results/organism/student/model",
    output:
        summary="results/summary.parquet",
        csv="results/tables/arms.csv",
        md="results/tables/arms.md",
        verdict_csv="results/tables/verdict.csv",
        verdict_md="results/tables/verdict.md",
        table1_md="results/table1.md",
        table1_csv="results/table1.csv",
        table1_pdf="results/table1.pdf",
        lomo_md="results/tables/lomo.md",
        lomo_csv="results/tables/lomo.csv",
        lomo_png="results/figures/lomo.png",
        lomo_pdf="results/figures/lomo.pdf",
    params:
        table1=TABLE1_METRICS,
        metrics=TABLE_METRICS,
        percent=[m for m in TABLE_METRICS if not m.startswith(("cin", "cout"))],
    log:
        "results/logs/aggregate.log",
    conda:
        "../envs/study.yaml"
    script:
        "../scripts/aggregate.py"


rule arm_figures:
    input:
        runs=run_dirs(folds=["all"]),
        organism="results/organism/student/model",
    output:
        curves_png="results/figures/arms.png",
        curves_pdf="results/figures/arms.pdf",
        cin_png="results/figures/cin.png",
        cin_pdf="results/figures/cin.pdf",
    log:
        "results/logs/arm_figures.log",
    conda:
        "../envs/study.yaml"
    script:
        "../scripts/arm_figures.py"

# Aggregation: one row per run (results/summary.parquet), the per-arm table with paired
# differences to vanilla (results/tables/arms.{csv,md}) and the verdict on H1 and the
# controls (results/tables/verdict.{csv,md}), and the report's front page.


rule aggregate:
    input:
        runs=run_dirs(),
        student=student_model(),
        description=workflow.source_path("../report/workflow.rst"),
        diagnostics="results/tables/basis_diagnostics.csv",
    output:
        summary="results/summary.parquet",
        csv="results/tables/arms.csv",
        md="results/tables/arms.md",
        verdict_csv=report("results/tables/verdict.csv", caption="../report/verdict.rst", category="Verdict"),
        verdict_md="results/tables/verdict.md",
        table1_md="results/table1.md",
        table1_csv=report("results/table1.csv", caption="../report/table1.rst", category="Table 1"),
        table1_pdf="results/table1.pdf",
        lomo_md="results/tables/lomo.md",
        lomo_csv=report(
            "results/tables/lomo.csv", caption="../report/lomo.rst", category="Leave one mode out"
        ),
        lomo_png=report(
            "results/figures/lomo.png", caption="../report/lomo.rst", category="Leave one mode out"
        ),
        lomo_pdf="results/figures/lomo.pdf",
        tradeoff_png=report(
            "results/figures/tradeoff.png", caption="../report/tradeoff.rst", category="Trade-off"
        ),
        tradeoff_pdf="results/figures/tradeoff.pdf",
        front_page=FRONT_PAGE,
    log:
        "results/logs/aggregate.log",
    conda:
        "../envs/plots.yaml"
    params:
        alpha=config["verdict"]["alpha"],
        min_held_out_auc=DIAGNOSTICS["min_held_out_auc"],
    script:
        "../scripts/aggregate.py"


rule arm_figures:
    input:
        runs=run_dirs(folds=["all"]),
        student=student_model(),
    output:
        curves_png=report(
            "results/figures/arms.png", caption="../report/arms.rst", category="Training curves"
        ),
        curves_pdf="results/figures/arms.pdf",
        cin_png=report("results/figures/cin.png", caption="../report/cin.rst", category="Projection health"),
        cin_pdf="results/figures/cin.pdf",
    log:
        "results/logs/arm_figures.log",
    conda:
        "../envs/plots.yaml"
    script:
        "../scripts/arm_figures.py"

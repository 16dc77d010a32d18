# Stage 4: results.csv, the Table-1-style summary and the figures, from the metrics files only.

METRICS = [f"data/metrics/{d}.json" for d in DATASETS]
REPORT_OUTPUTS = [
    "reports/results.csv",
    "reports/summary.md",
    "reports/figures/imbalance_sweep.png",
    "reports/figures/modality_utilisation.png",
    "reports/figures/error_analysis.png",
]


rule build_report:
    input:
        metrics=METRICS,
    output:
        csv="reports/results.csv",
        summary="reports/summary.md",
        sweep=report(
            "reports/figures/imbalance_sweep.png",
            caption="../report/imbalance_sweep.rst",
            category="Figures",
        ),
        utilisation=report(
            "reports/figures/modality_utilisation.png",
            caption="../report/modality_utilisation.rst",
            category="Figures",
        ),
        errors=report(
            "reports/figures/error_analysis.png",
            caption="../report/error_analysis.rst",
            category="Figures",
        ),
    log:
        "logs/build_report/build_report.log",
    benchmark:
        "logs/benchmarks/build_report/build_report.tsv"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=30,
    params:
        code_digest=CODE_DIGEST["build_report"],
        tracked={
            "report": config["report"],
            "data.sweep": config["data"]["sweep"],
            "data.synthetic": config["data"]["synthetic"],
            "data.synthetic_paper": config["data"]["synthetic_paper"],
        },
    shell:
        "{PYTHON} workflow/scripts/build_report.py --params params/report.yaml"
        " --params params/data.yaml{OVERLAYS} --out reports {input.metrics} > {log} 2>&1"

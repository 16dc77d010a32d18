# Stage 3b: MLflow tracking of every finished run of a dataset (experiment = dataset, one run per
# method x seed), from the result files. One MLflow start-up per dataset instead of one per job;
# a tracking failure is reported and never fails the pipeline or touches a result.


rule track_runs:
    input:
        files=lambda wc: [
            f"data/runs/{wc.dataset}/{m}/seed{s}/{f}"
            for m in run_methods(wc.dataset)
            for s in SEEDS
            for f in ("train_summary.json", "history.csv")
        ],
        metrics="data/runs/{dataset}/metrics.json",
        code=code("tracking.py") + ["workflow/scripts/track_runs.py"],
    output:
        "data/runs/{dataset}/mlflow_runs.json",
    log:
        "logs/track_runs/{dataset}.log",
    benchmark:
        "logs/benchmarks/track_runs/{dataset}.tsv"
    threads: 1
    resources:
        mem_mb=1500,
    params:
        runs=lambda wc: " ".join(
            f"data/runs/{wc.dataset}/{m}/seed{s}"
            for m in run_methods(wc.dataset)
            for s in SEEDS
        ),
    shell:
        "{PYTHON} workflow/scripts/track_runs.py --dataset {wildcards.dataset}"
        " --metrics {input.metrics} --out {output} {params.runs} > {log} 2>&1"

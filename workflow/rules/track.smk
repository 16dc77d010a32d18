# Stage 3b: MLflow tracking of every finished run of a dataset (experiment = dataset, one run per
# method x seed), from the result files. One MLflow start-up per dataset instead of one per job;
# a tracking failure is reported and never touches a result; with a tracking server that does not
# answer the job fails, so a rerun logs the runs. A run logged live by its training job
# (tracking.live) is completed in place: only what it lacks is added.


rule track_runs:
    input:
        # (history.csv comes from the same training job as train_summary.json)
        summaries=lambda wc: [
            f"data/runs/{wc.dataset}/{m}/seed{s}/train_summary.json"
            for m in run_methods(wc.dataset)
            for s in SEEDS
        ],
        metrics="data/metrics/{dataset}.json",
    output:
        "data/tracking/{dataset}.json",
    log:
        "logs/track_runs/{dataset}.log",
    benchmark:
        "logs/benchmarks/track_runs/{dataset}.tsv"
    threads: 1
    resources:
        mem_mb=1500,
        runtime=30,
    params:
        code_digest=CODE_DIGEST["track_runs"],
        seeds=" ".join(map(str, SEEDS)),
        methods=lambda wc: " ".join(run_methods(wc.dataset)),
    shell:
        "{PYTHON} workflow/scripts/track_runs.py --dataset {wildcards.dataset}"
        " --metrics {input.metrics} --out {output} --runs data/runs/{wildcards.dataset}"
        " --data data/features/{wildcards.dataset}"
        " --methods {params.methods} --seeds {params.seeds} > {log} 2>&1"

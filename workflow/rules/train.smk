# Stage 2: one training job per dataset x method, running every seed in one process (a job's
# start-up -- Python, torch -- costs as much as a small run). Adding a seed reruns the job, but
# the seeds already trained resume as finished and cost nothing; when the data, the code (passed
# with --code) or a unimodal run changed, they retrain. Methods that start from (or
# combine) unimodal models depend on the unimodal runs of the same dataset (seed by seed).


rule train_model:
    input:
        data=multiext(FEATURES + "/", *SPLIT_FILES),
        unimodal=lambda wc: unimodal_checkpoints(wc),
    output:
        best=expand(RUN + "/best.pt", seed=SEEDS, allow_missing=True),
        history=expand(RUN + "/history.csv", seed=SEEDS, allow_missing=True),
        summary=expand(RUN + "/train_summary.json", seed=SEEDS, allow_missing=True),
    log:
        "logs/train_model/{dataset}/{method}.log",
    benchmark:
        "logs/benchmarks/train_model/{dataset}/{method}.tsv"
    threads: 1
    resources:
        mem_mb=1500,
        gpu=lambda wc: GPU_PER_BENCHMARK_JOB if wc.dataset in BENCHMARK_DATASETS else 0,
    params:
        code_digest=CODE_DIGEST["train_model"],
        tracked=lambda wc: tracked_train_params(wc.method, wc.dataset),
        seeds=" ".join(map(str, SEEDS)),
        modalities=lambda wc: " ".join(MODALITIES[wc.dataset]),
        code_paths=TRAIN_CODE_PATHS,
    shell:
        "OMP_NUM_THREADS={threads} {PYTHON} workflow/scripts/train_model.py --dataset {wildcards.dataset}"
        " --method {wildcards.method} --seeds {params.seeds} --params params/train.yaml{OVERLAYS}"
        " --data data/features/{wildcards.dataset} --runs data/runs/{wildcards.dataset}"
        " --modalities {params.modalities} --code {params.code_paths} > {log} 2>&1"

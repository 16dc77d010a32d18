# Stage 2: training. Every seed of a method runs in one process (a job's start-up -- Python,
# torch -- costs as much as a small run). Adding a seed reruns the job, but the seeds already
# trained resume as finished and cost nothing; when the data, the code (passed with --code) or
# a unimodal run changed, they retrain. Methods that start from (or combine) unimodal models
# depend on the unimodal runs of the same dataset (seed by seed).
#   train_model: one job per dataset x method (the paper's benchmarks, folders);
#   train_dataset_<dataset>: one job per generated dataset (synthetic sweeps, avdigits, mfeat),
#     its whole run list in order (unimodal runs first); a changed method block reruns the job,
#     which retrains that method's runs and resumes the others as finished.
TRAIN_SHELL = (
    "OMP_NUM_THREADS={threads} {PYTHON} workflow/scripts/train_model.py --dataset {params.dataset}"
    " --method {params.methods} --seeds {params.seeds} --params params/train.yaml"
    " --params params/tracking.yaml{OVERLAYS}"
    " --data data/features/{params.dataset} --runs data/runs/{params.dataset}"
    " --modalities {params.modalities} --code {params.code_paths} > {log} 2>&1"
)


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
    wildcard_constraints:
        dataset=one_of(OTHER_DATASETS),
    threads: 1
    resources:
        mem_mb=1500,
        runtime=lambda wc: 1440 if wc.dataset in BENCHMARK_DATASETS else 120,  # minutes
        gpu=lambda wc: GPU_PER_BENCHMARK_JOB if wc.dataset in BENCHMARK_DATASETS else 0,
    params:
        code_digest=CODE_DIGEST["train_model"],
        tracked=lambda wc: tracked_train_params(wc.method, wc.dataset),
        dataset=lambda wc: wc.dataset,
        methods=lambda wc: wc.method,
        seeds=" ".join(map(str, SEEDS)),
        modalities=lambda wc: " ".join(MODALITIES[wc.dataset]),
        code_paths=TRAIN_CODE_PATHS,
    shell:
        TRAIN_SHELL


for _dataset in ONE_JOB_DATASETS:

    rule:
        name:
            dataset_rule_name(_dataset)
        input:
            data=multiext(f"data/features/{_dataset}/", *SPLIT_FILES),
        output:
            best=dataset_run_files(_dataset, "best.pt"),
            history=dataset_run_files(_dataset, "history.csv"),
            summary=dataset_run_files(_dataset, "train_summary.json"),
        log:
            f"logs/train_model/{_dataset}.log",
        benchmark:
            f"logs/benchmarks/train_model/{_dataset}.tsv"
        threads: 1
        resources:
            mem_mb=1500,
            runtime=120,
        params:
            code_digest=CODE_DIGEST["train_model"],
            tracked=tracked_dataset_params(_dataset),
            dataset=_dataset,
            methods=" ".join(
                training_order(
                    config["train"],
                    run_methods(_dataset),
                    MODALITIES[_dataset],
                    CATALOG,
                )
            ),
            seeds=" ".join(map(str, SEEDS)),
            modalities=" ".join(MODALITIES[_dataset]),
            code_paths=TRAIN_CODE_PATHS,
        shell:
            TRAIN_SHELL

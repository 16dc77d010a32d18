# Stage 3: each method's runs on val and test (the only place test data is read), one JSON per
# run. The error analysis uses the unimodal runs of the same seed as reference predictors.


rule evaluate_model:
    input:
        data=multiext(FEATURES + "/", *SPLIT_FILES),
        runs=lambda wc: expand(RUN + "/best.pt", seed=SEEDS, allow_missing=True),
        references=lambda wc: expand(
            "data/runs/{dataset}/unimodal_{modality}/seed{seed}/best.pt",
            dataset=wc.dataset,
            modality=MODALITIES[wc.dataset],
            seed=SEEDS,
        ),
        code=CODE_EVALUATE + ["workflow/scripts/evaluate_model.py"],
    output:
        expand(RUN + "/metrics.json", seed=SEEDS, allow_missing=True),
    log:
        "logs/evaluate_model/{dataset}/{method}.log",
    threads: 1
    resources:
        mem_mb=1500,
    params:
        seeds=" ".join(map(str, SEEDS)),
        modalities=lambda wc: " ".join(MODALITIES[wc.dataset]),
    shell:
        "OMP_NUM_THREADS={threads} {PYTHON} workflow/scripts/evaluate_model.py --dataset {wildcards.dataset}"
        " --method {wildcards.method} --seeds {params.seeds}"
        " --modalities {params.modalities} --data data/features/{wildcards.dataset}"
        " --runs data/runs/{wildcards.dataset} > {log} 2>&1"

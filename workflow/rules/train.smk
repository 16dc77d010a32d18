# Stage 2: one training run per dataset x method x seed. Methods that start from (or combine)
# unimodal models depend on the unimodal runs of the same dataset and seed.


rule train_model:
    input:
        data=multiext(FEATURES + "/", *SPLIT_FILES),
        unimodal=lambda wc: [f"{d}/best.pt" for d in unimodal_runs(wc).values()],
        code=CODE_TRAIN + ["workflow/scripts/train_model.py"],
    output:
        best=RUN + "/best.pt",
        history=RUN + "/history.csv",
        summary=RUN + "/train_summary.json",
    log:
        "logs/train_model/{dataset}/{method}/seed{seed}.log",
    benchmark:
        "logs/benchmarks/train_model/{dataset}/{method}/seed{seed}.tsv"
    threads: 1
    resources:
        mem_mb=1500,
        gpu=0,
    params:
        tracked=lambda wc: tracked_train_params(wc.method),
        unimodal=lambda wc: " ".join(
            f"--unimodal {m}={d}" for m, d in unimodal_runs(wc).items()
        ),
    shell:
        "OMP_NUM_THREADS={threads} {PYTHON} workflow/scripts/train_model.py --dataset {wildcards.dataset}"
        " --method {wildcards.method} --seed {wildcards.seed} --params params/train.yaml"
        " --data data/features/{wildcards.dataset}"
        " --out data/runs/{wildcards.dataset}/{wildcards.method}/seed{wildcards.seed}"
        " {params.unimodal} > {log} 2>&1"

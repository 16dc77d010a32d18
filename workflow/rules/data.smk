# Stage 1: every dataset of the pipeline, materialised in the Parquet contract.


rule make_dataset:
    input:
        code=CODE_DATA + ["workflow/scripts/make_dataset.py"],
    output:
        multiext(FEATURES + "/", *SPLIT_FILES),
    log:
        "logs/make_dataset/{dataset}.log",
    threads: 1
    resources:
        mem_mb=1000,
    params:
        tracked=lambda wc: (
            {"data.synthetic": config["data"]["synthetic"]}
            if DATASETS[wc.dataset].generator
            else {f"data.folders.{wc.dataset}": DATASETS[wc.dataset].folder}
        ),
    shell:
        "{PYTHON} workflow/scripts/make_dataset.py --dataset {wildcards.dataset}"
        " --params params/data.yaml --out data/features/{wildcards.dataset} > {log} 2>&1"

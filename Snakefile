# The pipeline's table of contents: params -> validation -> stages -> targets.
#   snakemake --cores all            the default run (synthetic sweep, every method, 3 seeds)
#   snakemake -n                     what would run
# Stages: make_dataset -> train_model -> evaluate_model -> track_runs, build_report.
from snakemake.utils import min_version

min_version("9.27")


configfile: "params/data.yaml"
configfile: "params/train.yaml"
configfile: "params/report.yaml"
configfile: "params/tracking.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/track.smk"
include: "workflow/rules/report.smk"


onstart:
    init_tracking()


rule all:
    default_target: True
    input:
        REPORT_OUTPUTS,
        expand("data/tracking/{dataset}.json", dataset=DATASETS),

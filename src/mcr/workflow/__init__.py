"""The pipeline's library side: the DAG layout (torch-free, what the Snakefile imports) in
:mod:`mcr.workflow.layout` and :mod:`mcr.workflow.catalog`, the stage bodies (what the job
scripts call) in :mod:`mcr.workflow.stages`. This ``__init__`` imports neither."""

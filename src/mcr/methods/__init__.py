"""Training strategies. Each module registers one method (or a pair) in ``METHODS``.

Where a method lives: ``mcr/methods/<registry name>.py``; what it may touch: the hooks of
:class:`mcr.methods.base.Method`. A new method is its module plus one line in the import below;
the params schema and the pipeline's method catalog are generated from the module
(``python workflow/tools/method_schema.py``).
"""

from mcr.methods import (  # noqa: F401
    agm,
    dnr,
    ensemble,
    gblend,
    inforeg,
    joint,
    mcr,
    mla,
    mlb,
    mmcosine,
    mmpareto,
    mslr,
    multiloss,
    ogm,
    pmr,
    reconboost,
    uni_pretrained,
    unimodal,
)
from mcr.methods.base import Batch, Losses, Method, SetupContext
from mcr.methods.registry import (
    METHODS,
    create_method,
    method_config,
    split_method_name,
    uses_unimodal_runs,
)

__all__ = [
    "METHODS",
    "Batch",
    "Losses",
    "Method",
    "SetupContext",
    "create_method",
    "method_config",
    "split_method_name",
    "uses_unimodal_runs",
]

"""Training strategies. Each module registers one method (or a pair) in ``METHODS``.

Where a method lives: ``mcr/methods/<registry name>.py``; what it may touch: the hooks of
:class:`mcr.methods.base.Method`.
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
    method_applies,
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
    "method_applies",
    "split_method_name",
    "uses_unimodal_runs",
]

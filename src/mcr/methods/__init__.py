"""Training strategies. Each module registers one method (or a pair) in ``METHODS``.

Where a method lives: ``mcr/methods/<registry name>.py``; what it may touch: the hooks of
:class:`mcr.methods.base.Method`.
"""

from mcr.methods import ensemble, joint, mcr, multiloss, uni_pretrained, unimodal  # noqa: F401
from mcr.methods.base import Batch, Losses, Method, SetupContext
from mcr.methods.registry import METHODS, create_method, split_method_name, uses_unimodal_runs

__all__ = [
    "METHODS",
    "Batch",
    "Losses",
    "Method",
    "SetupContext",
    "create_method",
    "split_method_name",
    "uses_unimodal_runs",
]

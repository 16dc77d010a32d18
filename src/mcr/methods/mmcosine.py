"""MMCosine, multi-modal cosine loss (Xu et al., ICASSP 2023; docs/baselines.md §9).

The fused head is swapped for a cosine one: each modality's contribution is
``o_m^(k) = s * cos(z_m, W_m^(k))`` (features and per-class weight rows L2-normalised, no bias),
the fused logits are ``o = sum_m o_m`` and the loss is ``CE(o)``. Every contribution lies in
``[-s, s]``, so no modality can dominate the fused prediction through the magnitude of its
features or weights -- only through their direction. The head is
:class:`mcr.models.fusion.CosineLateFusion`, named in the model spec so a checkpoint rebuilds it.

Deviations and choices, on purpose:

* The optional cross-modal supervised contrastive term ``lambda * NCE(z_a, z_v, y)`` of the
  official code is left out: its weight defaults to 0 there and no reported setting we reproduce
  turns it on.
* Default ``s = 10``: the official README (``--scaling 10``) and the MCR JSON configs
  (``mmcosine_scaling: 10``). MCR's run.sh passes ``s = 1`` for AVE through a CLI flag the model
  never reads (docs/baselines.md §9), so every MCR run effectively used 10; BalanceMM uses 15.
* Any number of modalities >= 2: the sum of bounded contributions generalises as is (fused
  logits lie in ``[-M*s, M*s]``).
* Classification only: a cosine logit bounded by ``s`` cannot express an unbounded regression
  target (the MCR paper's Table 1 marks MMCosine not applicable to regression).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mcr.config import param
from mcr.methods.base import Method
from mcr.methods.registry import METHODS


@dataclass(frozen=True)
class MMCosineConfig:
    """Default: official README / MCR JSON (docs/baselines.md §9)."""

    scale: float = param(
        10.0,
        "s, the cosine logit scale",
        source="official README --scaling 10; MCR JSON mmcosine_scaling 10 (BalanceMM 15)",
        gt=0,
    )


@METHODS.register("mmcosine")
class MMCosineMethod(Method):
    """Joint training (``L = CE(sum_m s * cos(z_m, W_m))``) with the cosine fusion head."""

    Config = MMCosineConfig
    supported_tasks = ("classification",)
    min_modalities = 2

    def fusion(self) -> dict[str, Any]:
        return {"name": "cosine", "scale": self.config.scale}

"""Linear late fusion ``g(z_1..z_M) = sum_m W_m z_m + b`` with per-modality contributions exposed.

This is the head of every released MCR run. Keeping each ``W_m z_m`` separately addressable is
what lets MCR permute or detach one modality's contribution without re-running an encoder, and
what gives OGM-style methods their per-modality outputs.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn


class LinearLateFusion(nn.Module):
    """Per-modality ``Linear(d_m, C, bias=False)`` plus one shared bias ``b``."""

    def __init__(self, latent_dims: Mapping[str, int], num_outputs: int) -> None:
        super().__init__()
        self.weights = nn.ModuleDict(
            {m: nn.Linear(d, num_outputs, bias=False) for m, d in latent_dims.items()}
        )
        self.bias = nn.Parameter(torch.zeros(num_outputs))

    def contribution(self, modality: str, latent: torch.Tensor) -> torch.Tensor:
        """``W_m z_m`` for one modality (any number of rows)."""
        return self.weights[modality](latent)

    def contributions(self, latents: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {m: self.contribution(m, z) for m, z in latents.items()}

    def combine(self, contributions: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Fused logits from (possibly permuted or detached) contributions: ``sum + b``."""
        return torch.stack(list(contributions.values())).sum(0) + self.bias

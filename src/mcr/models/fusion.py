"""Late-fusion heads. Each exposes per-modality additive contributions: ``logits = sum + bias``.

``linear`` (``sum_m W_m z_m + b``) is the head of every released MCR run. Keeping each
``W_m z_m`` separately addressable is what lets MCR permute or detach one modality's contribution
without re-running an encoder, and what gives OGM-style methods their per-modality outputs.
Two methods need another head, chosen through :meth:`mcr.methods.base.Method.fusion` and stored
in the model spec so evaluation rebuilds the same model:

* ``cosine`` (MMCosine, docs/baselines.md §9): ``s * cos(z_m, W_m^(k))``, no bias, so no modality
  can win through logit magnitude; every contribution lies in ``[-s, s]``.
* ``shared_head`` (MLA, docs/baselines.md §14): one head ``H`` for all modalities; the fused
  prediction weights each ``H(z_m)`` per sample by its prediction entropy (confident modalities
  count more). The contributions are the weighted ``w_m * H(z_m)``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from mcr.config import ConfigError

FUSIONS = ("linear", "cosine", "shared_head")


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

    def modality_parameters(self, modality: str) -> Iterator[nn.Parameter]:
        """Parameters only ``modality``'s contribution uses."""
        yield from self.weights[modality].parameters()


class CosineLateFusion(LinearLateFusion):
    """``s * <z_m / |z_m|, W_m^(k) / |W_m^(k)|>`` per class ``k``; the bias is a zero buffer."""

    def __init__(self, latent_dims: Mapping[str, int], num_outputs: int, scale: float) -> None:
        super().__init__(latent_dims, num_outputs)
        del self.bias
        self.register_buffer("bias", torch.zeros(num_outputs))
        self.scale = float(scale)

    def contribution(self, modality: str, latent: torch.Tensor) -> torch.Tensor:
        weight = F.normalize(self.weights[modality].weight, dim=1)
        return self.scale * F.normalize(latent, dim=-1) @ weight.t()


class SharedHeadFusion(nn.Module):
    """One head ``H`` shared by every modality, entropy-weighted per sample (MLA inference).

    ``w_m = softmax_m(-entropy(softmax(H(z_m))))`` over modalities -- the same as MLA's
    ``exp(max entropy - entropy_m)`` normalised, but per *sample* (the reference code's entropy
    is a softmax over the batch axis, a bug; docs/baselines.md §14).
    """

    def __init__(self, latent_dims: Mapping[str, int], num_outputs: int) -> None:
        super().__init__()
        dims = sorted(set(latent_dims.values()))
        if len(dims) != 1:
            raise ConfigError(
                f"fusion shared_head needs equal latent dims, got {dict(latent_dims)}"
            )
        self.head = nn.Linear(dims[0], num_outputs)
        self.register_buffer("bias", torch.zeros(num_outputs))

    def head_logits(self, latent: torch.Tensor) -> torch.Tensor:
        """``H(z)``: the shared head's prediction from one modality's latent."""
        return self.head(latent)

    def contributions(self, latents: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        logits = {m: self.head_logits(z) for m, z in latents.items()}
        weights = entropy_weights(logits)
        return {m: weights[m].unsqueeze(-1) * o for m, o in logits.items()}

    def combine(self, contributions: Mapping[str, torch.Tensor]) -> torch.Tensor:
        return torch.stack(list(contributions.values())).sum(0) + self.bias

    def modality_parameters(self, modality: str) -> Iterator[nn.Parameter]:
        yield from ()  # the head is shared by every modality


def entropy_weights(logits: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Per-sample weights ``softmax_m(-H_m)``; ``H_m`` = entropy of ``softmax(logits[m])``."""
    entropies = []
    for o in logits.values():
        logp = F.log_softmax(o.float(), dim=-1)
        entropies.append(-(logp.exp() * logp).sum(-1))
    weights = torch.softmax(-torch.stack(entropies), dim=0).to(next(iter(logits.values())).dtype)
    return dict(zip(logits, weights, strict=True))


def parse_fusion_spec(spec: Mapping[str, Any] | None, where: str) -> dict[str, Any]:
    """Validate ``{"name": ..., **options}``; the default is the linear head."""
    spec = dict(spec or {"name": "linear"})
    name = spec.get("name")
    if name not in FUSIONS:
        raise ConfigError(f"{where}.name: unknown fusion {name!r}; valid: {', '.join(FUSIONS)}")
    allowed = {"linear": set(), "cosine": {"scale"}, "shared_head": set()}[name]
    unknown = sorted(set(spec) - {"name"} - allowed)
    if unknown:
        raise ConfigError(f"{where}.{unknown[0]}: unknown key for fusion {name!r}")
    if name == "cosine":
        scale = spec.get("scale", 10.0)
        if not isinstance(scale, int | float) or scale <= 0:
            raise ConfigError(f"{where}.scale: expected a number > 0, got {scale!r}")
        spec["scale"] = float(scale)
    return spec


def build_fusion(spec: Mapping[str, Any], latent_dims: Mapping[str, int], num_outputs: int):
    """The fusion head described by a parsed spec."""
    if spec["name"] == "cosine":
        return CosineLateFusion(latent_dims, num_outputs, spec["scale"])
    if spec["name"] == "shared_head":
        return SharedHeadFusion(latent_dims, num_outputs)
    return LinearLateFusion(latent_dims, num_outputs)

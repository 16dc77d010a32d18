"""Encoders -> linear late fusion, plus one unimodal head per modality.

``ModelSpec`` is the complete, serialisable recipe of a model (it is stored in every checkpoint),
so a run can be rebuilt for evaluation without the params that produced it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from mcr.config import ConfigError, dataset_override
from mcr.data.dataset import DatasetInfo
from mcr.models.encoders import EncoderSpec, build_encoder, parse_encoder_spec
from mcr.models.fusion import build_fusion, parse_fusion_spec
from mcr.models.outputs import ModelOutput


@dataclass(frozen=True)
class ModelConfig:
    """The ``model`` params block: one default encoder, per-modality overrides, and per-dataset
    overrides of both (image/sequence encoders for real datasets, MLPs elsewhere)."""

    encoder: dict[str, Any] = field(default_factory=lambda: {"name": "mlp"})
    encoders: dict[str, dict[str, Any]] = field(default_factory=dict)  # modality -> spec
    datasets: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> {encoder(s)}

    def __post_init__(self) -> None:
        parse_encoder_spec(self.encoder, "model.encoder")  # fail at load time, not at build
        for m, spec in self.encoders.items():
            parse_encoder_spec(spec, f"model.encoders.{m}")
        for name, override in self.datasets.items():
            unknown = sorted(set(override or {}) - {"encoder", "encoders"})
            if unknown:
                raise ConfigError(
                    f"model.datasets.{name}.{unknown[0]}: unknown key (expected encoder, encoders)"
                )
            if (override or {}).get("encoder") is not None:
                parse_encoder_spec(override["encoder"], f"model.datasets.{name}.encoder")
            for m, spec in ((override or {}).get("encoders") or {}).items():
                parse_encoder_spec(spec, f"model.datasets.{name}.encoders.{m}")

    def for_dataset(self, name: str) -> ModelConfig:
        """This config with ``datasets.<name>`` applied (its encoders replace the defaults); a
        key may be a pattern such as ``synthetic_paper_r*`` (exact names win)."""
        override = dataset_override(self.datasets, name)[1] or {}
        return ModelConfig(
            encoder=override.get("encoder") or self.encoder,
            encoders={**self.encoders, **(override.get("encoders") or {})},
        )

    def encoder_spec(self, modality: str) -> EncoderSpec:
        if modality in self.encoders:
            return parse_encoder_spec(self.encoders[modality], f"model.encoders.{modality}")
        return parse_encoder_spec(self.encoder, "model.encoder")


@dataclass(frozen=True)
class ModelSpec:
    """Everything needed to rebuild a model: data description, modalities used, encoders."""

    info: DatasetInfo
    modalities: tuple[str, ...]
    encoders: dict[str, EncoderSpec]
    unimodal_heads: bool
    fusion: dict[str, Any] = field(default_factory=lambda: {"name": "linear"})

    @classmethod
    def create(
        cls,
        info: DatasetInfo,
        config: ModelConfig,
        modalities: tuple[str, ...] | None = None,
        fusion: Mapping[str, Any] | None = None,
    ) -> ModelSpec:
        """The spec of a model on ``info``; ``fusion`` is the method's head (default linear)."""
        config = config.for_dataset(info.name)
        modalities = info.modalities if modalities is None else modalities
        unknown = [m for m in modalities if m not in info.modalities]
        if unknown:
            raise ConfigError(
                f"modality {unknown[0]!r} is not in dataset {info.name!r} "
                f"(modalities: {', '.join(info.modalities)})"
            )
        unknown = sorted(set(config.encoders) - set(info.modalities))
        if unknown:
            raise ConfigError(
                f"model.encoders.{unknown[0]}: no such modality in dataset {info.name!r} "
                f"(modalities: {', '.join(info.modalities)})"
            )
        encoders = {m: config.encoder_spec(m) for m in modalities}
        # A single-modality model's fused head already is its unimodal head.
        return cls(
            info, tuple(modalities), encoders, unimodal_heads=len(modalities) > 1,
            fusion=parse_fusion_spec(fusion, "fusion"),
        )  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        return {
            "info": self.info.to_dict(),
            "modalities": list(self.modalities),
            "encoders": {m: s.to_dict() for m, s in self.encoders.items()},
            "unimodal_heads": self.unimodal_heads,
            "fusion": dict(self.fusion),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ModelSpec:
        return cls(
            info=DatasetInfo.from_dict(d["info"]),
            modalities=tuple(d["modalities"]),
            encoders={m: parse_encoder_spec(s, f"encoders.{m}") for m, s in d["encoders"].items()},
            unimodal_heads=bool(d["unimodal_heads"]),
            fusion=parse_fusion_spec(d.get("fusion"), "fusion"),
        )


class MultimodalModel(nn.Module):
    """``z_m = enc_m(x_m)``; ``logits = sum_m W_m z_m + b`` (or another fusion head);
    ``h_m(z_m)`` per modality."""

    def __init__(self, spec: ModelSpec) -> None:
        super().__init__()
        self.spec = spec
        num_outputs = spec.info.num_outputs
        encoders = {}
        for m in spec.modalities:
            try:
                encoders[m] = build_encoder(spec.encoders[m], spec.info.shapes[m])
            except ValueError as exc:  # ConfigError included: say which modality failed
                raise ConfigError(f"model.encoders.{m}: {exc}") from None
        self.encoders = nn.ModuleDict(encoders)
        latent_dims = {m: int(e.latent_dim) for m, e in self.encoders.items()}
        self.fusion = build_fusion(spec.fusion, latent_dims, num_outputs)
        self.unimodal_heads = nn.ModuleDict(
            {m: nn.Linear(d, num_outputs) for m, d in latent_dims.items()}
            if spec.unimodal_heads
            else {}
        )

    @property
    def modalities(self) -> tuple[str, ...]:
        return self.spec.modalities

    def encode(self, inputs: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {m: self.encoders[m](inputs[m]) for m in self.modalities}

    def head(self, latents: Mapping[str, torch.Tensor]) -> ModelOutput:
        """Everything after the encoders, for latents computed elsewhere."""
        contributions = self.fusion.contributions(latents)
        return ModelOutput(
            logits=self.fusion.combine(contributions),
            contributions=contributions,
            bias=self.fusion.bias,
            unimodal_logits={m: h(latents[m]) for m, h in self.unimodal_heads.items()},
            latents=dict(latents),
        )

    def forward(self, inputs: Mapping[str, torch.Tensor]) -> ModelOutput:
        return self.head(self.encode(inputs))

    def player_parameters(self, modality: str) -> Iterator[nn.Parameter]:
        """Parameters used only by ``modality``'s prediction path: encoder, ``W_m``, ``h_m``.

        Learning-rate groups (MSLR) are built from these.

        These are the "player" of the MCR game and what gradient-modulation methods rescale; the
        shared fusion bias belongs to no player.
        """
        yield from self.encoders[modality].parameters()
        yield from self.fusion.modality_parameters(modality)
        if modality in self.unimodal_heads:
            yield from self.unimodal_heads[modality].parameters()

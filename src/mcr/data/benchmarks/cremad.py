"""CREMA-D: 7,442 clips of 91 actors speaking 12 sentences in 6 emotions (audio + face video).

Layout read (the dataset's GitHub repository, as cloned with Git LFS)::

    <root>/AudioWAV/<actor>_<sentence>_<emotion>_<level>.wav    16 kHz mono PCM
    <root>/VideoFlash/<actor>_<sentence>_<emotion>_<level>.flv  the same clip as Flash video

e.g. ``1001_DFA_ANG_XX``: actor 1001-1091, sentence code (``DFA``, ``IEO``, ...), emotion, and
intensity level (``LO``/``MD``/``HI``/``XX``). The label is the emotion, in the class order of the
released ResNet code: NEU, HAP, SAD, FEA, DIS, ANG.

Features as in the paper's ResNet setting (docs/datasets.md §8.1): the WAV resampled to 22,050 Hz,
tiled to 3 s, its log-magnitude STFT (``n_fft`` 512, hop 353: 257 x 188, float16); 3 frames at
1 fps from the video, resized to ``frame_size``² (uint8; train-time crops and flips are applied on
the device). Splits are by actor: no actor's clips are in two splits (asserted, and checked again
by the data contract on reading). Either generated per fold (``val_actors`` / ``test_actors``
fractions, shuffled by ``seed`` and the fold) or read from ``split_file``: JSON
``{"<fold>": {"train": [clip ids], "val": [...], "test": [...]}}``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

from mcr.config import ConfigError, param
from mcr.data.media.decode import MediaDecodeError, read_frames, read_wav
from mcr.data.media.spectrogram import log_stft, num_frames, tile

if TYPE_CHECKING:  # the DAG reads the Config; only extraction needs pyarrow
    from mcr.data.media.cache import Clip

EMOTIONS = ("NEU", "HAP", "SAD", "FEA", "DIS", "ANG")
AUDIO_DIR, VIDEO_DIR = "AudioWAV", "VideoFlash"
CLIP_NAME = re.compile(
    r"^(?P<actor>\d{4})_(?P<sentence>[A-Z]{3})_(?P<emotion>[A-Z]{3})_(?P<level>[A-Z]{2})$"
)
LAYOUT = (
    f"<root>/{AUDIO_DIR}/<actor>_<sentence>_<emotion>_<level>.wav and "
    f"<root>/{VIDEO_DIR}/<same name>.flv (e.g. 1001_DFA_ANG_XX), emotion one of "
    + ", ".join(EMOTIONS)
)


@dataclass(frozen=True)
class CremadConfig:
    """Where the files are, the folds, and the paper's feature settings."""

    root: str = param(
        "", "the CREMA-D folder (holding AudioWAV/ and VideoFlash/); empty: not used"
    )
    fold: int = param(1, "which of the three folds (1-3) to build", source="MCR code: folds 1-3",
                      ge=1, le=3)  # fmt: skip
    split_file: str = param("", "JSON fold -> split -> clip ids (e.g. the paper's folds); "
                            "empty: actor-disjoint folds generated from seed")  # fmt: skip
    val_actors: float = param(0.15, "fraction of actors in validation (generated folds)",
                              source="ours", gt=0, lt=1)  # fmt: skip
    test_actors: float = param(0.15, "fraction of actors in test (generated folds)",
                               source="ours", gt=0, lt=1)  # fmt: skip
    sample_rate: int = param(22050, "audio rate in Hz", source="released ResNet code", gt=0)
    seconds: float = param(3.0, "audio length: shorter clips are tiled", source="released code",
                           gt=0)  # fmt: skip
    n_fft: int = param(512, "STFT size", source="released code", ge=2)
    hop: int = param(353, "STFT hop", source="released code", ge=1)
    frames: int = param(3, "video frames per clip, at fps", source="released code", ge=1)
    fps: float = param(1.0, "frame sampling rate", source="released code", gt=0)
    frame_size: int = param(224, "frames are resized to this square side", source="paper: 224²",
                            ge=8)  # fmt: skip
    on_corrupt: Literal["skip", "fail"] = param(
        "skip", "an undecodable file: leave the clip out (listed in the manifest) or stop"
    )
    workers: int = param(0, "decoding processes (0: one per core)", ge=0)
    row_group_size: int = param(64, "clips per Parquet row group", ge=1)
    seed: int = param(0, "shuffles actors for the generated folds")

    def __post_init__(self) -> None:
        if self.val_actors + self.test_actors >= 1:
            raise ValueError(
                f"val_actors + test_actors = {self.val_actors + self.test_actors:g}: "
                "expected < 1 (training needs actors)"
            )

    @property
    def modalities(self) -> tuple[str, ...]:
        return ("audio", "video")

    def shapes(self) -> dict[str, tuple[int, ...]]:
        length = round(self.sample_rate * self.seconds)
        return {
            "audio": (self.n_fft // 2 + 1, num_frames(length, self.hop)),
            "video": (self.frames, 3, self.frame_size, self.frame_size),
        }


@dataclass(frozen=True)
class CremadClip:
    clip_id: str
    actor: str
    emotion: str


def index_root(root: str | Path) -> list[CremadClip]:
    """Every clip of the root, checked against the layout; raises :class:`ConfigError` naming
    the expected layout and the first missing or malformed file."""
    root = Path(root)
    if not root.is_dir():
        raise ConfigError(f"CREMA-D root {root}: not a folder; expected {LAYOUT}")
    for sub in (AUDIO_DIR, VIDEO_DIR):
        if not (root / sub).is_dir():
            raise ConfigError(f"CREMA-D root {root}: missing folder {sub}/; expected {LAYOUT}")
    audio = {p.stem: p for p in (root / AUDIO_DIR).iterdir() if p.suffix.lower() == ".wav"}
    video = {p.stem: p for p in (root / VIDEO_DIR).iterdir() if p.suffix.lower() == ".flv"}
    if not audio:
        raise ConfigError(f"CREMA-D root {root}: no .wav file in {AUDIO_DIR}/; expected {LAYOUT}")
    clips = []
    for stem in sorted(audio):
        match = CLIP_NAME.match(stem)
        if not match or match["emotion"] not in EMOTIONS:
            raise ConfigError(f"{audio[stem]}: malformed clip name; expected {LAYOUT}")
        if stem not in video:
            raise ConfigError(
                f"{root / VIDEO_DIR / (stem + '.flv')}: missing (its audio {audio[stem].name} "
                f"exists); expected {LAYOUT}"
            )
        clips.append(CremadClip(stem, match["actor"], match["emotion"]))
    if extra := sorted(set(video) - set(audio)):
        raise ConfigError(
            f"{video[extra[0]]}: no matching {AUDIO_DIR}/{extra[0]}.wav; expected {LAYOUT}"
        )
    return clips


def actor_folds(clips: list[CremadClip], config: CremadConfig) -> dict[str, list[CremadClip]]:
    """Train/val/test by actor: the fold's own shuffle of the actors, cut by the fractions."""
    actors = sorted({c.actor for c in clips})
    if len(actors) < 3:
        raise ConfigError(
            f"CREMA-D root {config.root}: {len(actors)} actor(s); expected >= 3 for "
            "actor-disjoint train/val/test splits"
        )
    rng = np.random.default_rng([config.seed, config.fold])
    order = [actors[i] for i in rng.permutation(len(actors))]
    n_test = max(1, round(config.test_actors * len(actors)))
    n_val = max(1, round(config.val_actors * len(actors)))
    split_of = {a: "test" for a in order[:n_test]}
    split_of |= {a: "val" for a in order[n_test : n_test + n_val]}
    split_of |= {a: "train" for a in order[n_test + n_val :]}
    return {s: [c for c in clips if split_of[c.actor] == s] for s in ("train", "val", "test")}


def file_folds(clips: list[CremadClip], config: CremadConfig) -> dict[str, list[CremadClip]]:
    """The splits of ``config.fold`` as listed in ``config.split_file``."""
    path = Path(config.split_file)
    try:
        folds = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"split_file {path}: cannot be read as JSON ({exc})") from None
    fold = folds.get(str(config.fold)) if isinstance(folds, dict) else None
    if not isinstance(fold, dict) or not all(
        isinstance(fold.get(s), list) for s in ("train", "val", "test")
    ):
        keys = sorted(folds) if isinstance(folds, dict) else type(folds).__name__
        raise ConfigError(
            f'split_file {path}: expected {{"{config.fold}": {{"train": [...], "val": '
            f'[...], "test": [...]}}}} (clip ids); found keys {keys}'
        )
    by_id = {c.clip_id: c for c in clips}
    splits = {}
    for split in ("train", "val", "test"):
        ids = [Path(str(i)).stem for i in fold[split]]  # "1001_DFA_ANG_XX.wav" works too
        if missing := [i for i in ids if i not in by_id]:
            raise ConfigError(
                f"split_file {path}: fold {config.fold} {split} lists {len(missing)} clip(s) "
                f"not in the root, e.g. {missing[0]!r}"
            )
        splits[split] = [by_id[i] for i in ids]
    return splits


def check_disjoint(splits: dict[str, list[CremadClip]]) -> None:
    """No clip and no actor in two splits (the paper's folds are actor-disjoint)."""
    for a, b in (("train", "val"), ("train", "test"), ("val", "test")):
        for what, key in (("clip", "clip_id"), ("actor", "actor")):
            common = {getattr(c, key) for c in splits[a]} & {getattr(c, key) for c in splits[b]}
            if common:
                raise ConfigError(
                    f"CREMA-D splits {a} and {b} share {len(common)} {what}(s), e.g. "
                    f"{min(common)}; expected {what}-disjoint splits"
                )


def decode_clip(config: CremadConfig, clip: Clip) -> tuple[dict[str, np.ndarray], bool]:
    """One clip's spectrogram (float16) and frames (uint8); padded when the video is short."""
    wav, flv = clip.files
    samples = read_wav(wav, config.sample_rate)
    length = round(config.sample_rate * config.seconds)
    spectrogram = log_stft(tile(samples, length), config.n_fft, config.hop)
    frames, found = read_frames(flv, config.frames, config.frame_size, fps=config.fps)
    if not np.isfinite(spectrogram).all():
        raise MediaDecodeError(wav, "spectrogram is not finite")
    return {"audio": spectrogram.astype(np.float16), "video": frames}, found < config.frames


def extract(config: CremadConfig, out: str | Path, progress: bool = True):
    """Index the root, split it by actor, decode every clip into a media cache at ``out``."""
    from mcr.data.media.cache import Clip, write_audio_visual_cache

    clips = index_root(config.root)
    splits = file_folds(clips, config) if config.split_file else actor_folds(clips, config)
    check_disjoint(splits)
    root = Path(config.root)
    as_clips = {
        s: [
            Clip(
                sample_id=c.clip_id,
                group=c.actor,
                label=EMOTIONS.index(c.emotion),
                files=(
                    str(root / AUDIO_DIR / f"{c.clip_id}.wav"),
                    str(root / VIDEO_DIR / f"{c.clip_id}.flv"),
                ),
            )
            for c in members
        ]
        for s, members in splits.items()
    }
    return write_audio_visual_cache(
        out,
        config,
        name="cremad",
        num_classes=len(EMOTIONS),
        splits=as_clips,
        decoder=partial(decode_clip, config),
        manifest={
            "fold": config.fold,
            "split_file": config.split_file,
            "classes": list(EMOTIONS),
            "actors": {s: sorted({c.actor for c in m}) for s, m in splits.items()},
        },
        progress=progress,
    )


#: The params dataclass of ``data.benchmarks.cremad`` (read by the DAG).
CONFIG = CremadConfig

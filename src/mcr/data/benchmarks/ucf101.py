"""UCF-101, audio-visual subset: the videos of UCF-101 that have a sound track (51 classes).

Layout read (the official ``UCF101.rar`` and ``UCF101TrainTestSplits-RecognitionTask.zip``)::

    <root>/UCF-101/<Class>/v_<Class>_g<group>_c<clip>.avi
    <root>/ucfTrainTestlist/classInd.txt                 "1 ApplyEyeMakeup"
    <root>/ucfTrainTestlist/trainlist0{1,2,3}.txt        "ApplyEyeMakeup/v_..._g08_c01.avi 1"
    <root>/ucfTrainTestlist/testlist0{1,2,3}.txt         "ApplyEyeMakeup/v_..._g01_c01.avi"

As in the released code (docs/datasets.md §8.3): videos without an audio track, or with fewer
than ``frames`` frames at 1 fps, are left out (listed as ``rejected``), classes left without a
video are dropped and the rest renumbered in ``classInd.txt`` order (the manifest lists the
survivors); 4 frames at 1 fps; the first 3 s of audio at 16 kHz (tiled when shorter), STFT
``n_fft`` 512, hop 353, log magnitude: 257 x 136. Validation is ``val_fraction`` of each class's
training videos, taken whole source-video groups at a time (``g<group>``: the clips of one group
are cut from one long video, so a group never crosses splits).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

from mcr.config import ConfigError, param
from mcr.data.media.decode import (
    MediaDecodeError,
    MediaRejected,
    has_audio,
    read_container_audio,
    read_frames,
)
from mcr.data.media.spectrogram import log_stft, num_frames, tile

if TYPE_CHECKING:  # the DAG reads the Config; only extraction needs pyarrow
    from mcr.data.media.cache import Clip

VIDEO_DIR, LISTS = "UCF-101", "ucfTrainTestlist"
VIDEO_NAME = re.compile(r"^v_(?P<cls>\w+)_g(?P<group>\d+)_c(?P<clip>\d+)$")
LAYOUT = (
    f"<root>/{VIDEO_DIR}/<Class>/v_<Class>_g<group>_c<clip>.avi and <root>/{LISTS}/"
    "classInd.txt, trainlist0<split>.txt, testlist0<split>.txt"
)


@dataclass(frozen=True)
class Ucf101Config:
    """Where the files are, which official split, and the released code's feature settings."""

    root: str = param("", "the UCF-101 folder (holding UCF-101/ and ucfTrainTestlist/); empty: "
                      "not used")  # fmt: skip
    split: int = param(1, "official train/test list (1-3)", source="released code: --fold 1",
                       ge=1, le=3)  # fmt: skip
    val_fraction: float = param(0.1, "share of each class's training videos for validation, by "
                                "whole groups", source="released code", gt=0, lt=1)  # fmt: skip
    sample_rate: int = param(16000, "audio rate in Hz", source="released code", gt=0)
    n_fft: int = param(512, "STFT size", source="released code", ge=2)
    hop: int = param(353, "STFT hop", source="released code", ge=1)
    frames: int = param(4, "video frames per clip at fps; shorter videos are left out; the "
                        "audio is the first frames - 1 seconds", source="released code",
                        ge=2)  # fmt: skip
    fps: float = param(1.0, "frame sampling rate", source="released code", gt=0)
    frame_size: int = param(224, "frames are resized to this square side", source="paper",
                            ge=8)  # fmt: skip
    on_corrupt: Literal["skip", "fail"] = param(
        "skip", "an undecodable file: leave the clip out (listed in the manifest) or stop"
    )
    workers: int = param(0, "decoding processes (0: one per core)", ge=0)
    row_group_size: int = param(32, "clips per Parquet row group", ge=1)
    seed: int = param(0, "which groups go to validation")

    @property
    def modalities(self) -> tuple[str, ...]:
        return ("audio", "video")

    def audio_length(self) -> int:
        return round(self.sample_rate * (self.frames - 1) / self.fps)

    def shapes(self) -> dict[str, tuple[int, ...]]:
        return {
            "audio": (self.n_fft // 2 + 1, num_frames(self.audio_length(), self.hop)),
            "video": (self.frames, 3, self.frame_size, self.frame_size),
        }


@dataclass(frozen=True)
class UcfVideo:
    relpath: str  # <Class>/v_<Class>_g<group>_c<clip>.avi
    cls: str
    group: str  # <Class>_g<group>: one source video

    @property
    def sample_id(self) -> str:
        return Path(self.relpath).stem


def _read_list(path: Path, root: Path, classes: list[str]) -> list[UcfVideo]:
    if not path.is_file():
        raise ConfigError(f"{path}: missing; expected {LAYOUT}")
    videos = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        relpath = line.split()[0].replace("\\", "/")
        cls, _, name = relpath.partition("/")
        match = VIDEO_NAME.match(Path(name).stem)
        if not match or cls not in classes or match["cls"] != cls:
            raise ConfigError(
                f"{path}:{number}: malformed entry {relpath!r}; expected "
                "<Class>/v_<Class>_g<group>_c<clip>.avi with a class of classInd.txt"
            )
        if not (root / VIDEO_DIR / relpath).is_file():
            raise ConfigError(
                f"{root / VIDEO_DIR / relpath}: missing (listed in {path.name}); expected {LAYOUT}"
            )
        videos.append(UcfVideo(relpath, cls, f"{cls}_g{match['group']}"))
    return videos


def index_root(root: str | Path, split: int) -> tuple[dict[str, list[UcfVideo]], list[str]]:
    """The official train and test lists of ``split`` and the class order, layout-checked."""
    root = Path(root)
    if not root.is_dir():
        raise ConfigError(f"UCF-101 root {root}: not a folder; expected {LAYOUT}")
    for sub in (VIDEO_DIR, LISTS):
        if not (root / sub).is_dir():
            raise ConfigError(f"UCF-101 root {root}: missing folder {sub}/; expected {LAYOUT}")
    index = root / LISTS / "classInd.txt"
    if not index.is_file():
        raise ConfigError(f"{index}: missing; expected {LAYOUT}")
    classes = []
    for number, line in enumerate(index.read_text().splitlines(), 1):
        if line.strip():
            parts = line.split()
            if len(parts) != 2 or not parts[0].isdigit():
                raise ConfigError(
                    f"{index}:{number}: malformed line {line!r}; expected '<id> <Class>'"
                )
            classes.append(parts[1])
    lists = {
        "train": _read_list(root / LISTS / f"trainlist0{split}.txt", root, classes),
        "test": _read_list(root / LISTS / f"testlist0{split}.txt", root, classes),
    }
    shared = {v.group for v in lists["train"]} & {v.group for v in lists["test"]}
    if shared:
        raise ConfigError(
            f"UCF-101 split {split}: {len(shared)} group(s) in both lists, e.g. {min(shared)}; "
            "expected the official group-disjoint lists"
        )
    return lists, classes


def carve_validation(
    train: list[UcfVideo], fraction: float, seed: int
) -> tuple[list[UcfVideo], list[UcfVideo]]:
    """``fraction`` of each class's videos as validation, whole groups at a time."""
    rng = np.random.default_rng(seed)
    keep, val = [], []
    for cls in sorted({v.cls for v in train}):
        members = [v for v in train if v.cls == cls]
        groups = sorted({v.group for v in members})
        order = [groups[i] for i in rng.permutation(len(groups))]
        chosen: set[str] = set()
        target = fraction * len(members)
        for group in order[:-1]:  # at least one group stays in training
            if sum(v.group in chosen for v in members) >= target:
                break
            chosen.add(group)
        val += [v for v in members if v.group in chosen]
        keep += [v for v in members if v.group not in chosen]
    return keep, val


def probe_audio(path: str) -> bool:
    """Worker side: whether a video has a sound track (undecodable files count as having one:
    decoding them later reports them as corrupt)."""
    try:
        return has_audio(path)
    except MediaDecodeError:
        return True


def decode_video(config: Ucf101Config, clip: Clip):
    """Frames (uint8) and the first seconds' spectrogram (float16) of one video."""
    (path,) = clip.files
    frames, found = read_frames(path, config.frames, config.frame_size, fps=config.fps)
    if found < config.frames:
        raise MediaRejected(
            path, f"{found} frame(s) at {config.fps:g} fps; expected {config.frames}"
        )
    audio = read_container_audio(path, config.sample_rate)[: config.audio_length()]
    spectrogram = log_stft(tile(audio, config.audio_length()), config.n_fft, config.hop)
    return {"audio": spectrogram.astype(np.float16), "video": frames}, False


def extract(config: Ucf101Config, out: str | Path, progress: bool = True):
    """Keep the videos with sound, carve validation, decode into a media cache at ``out``."""
    import os
    from concurrent.futures import ProcessPoolExecutor

    from mcr.data.media.cache import Clip, write_audio_visual_cache

    lists, classes = index_root(config.root, config.split)
    root = Path(config.root)
    listed = lists["train"] + lists["test"]
    paths = [str(root / VIDEO_DIR / v.relpath) for v in listed]
    with ProcessPoolExecutor(config.workers or os.cpu_count() or 1) as pool:
        sound = dict(zip(paths, pool.map(probe_audio, paths, chunksize=16), strict=True))
    silent = [v for v, p in zip(listed, paths, strict=True) if not sound[p]]
    kept = {
        s: [v for v in vs if sound[str(root / VIDEO_DIR / v.relpath)]] for s, vs in lists.items()
    }
    survivors = [c for c in classes if any(v.cls == c for v in kept["train"] + kept["test"])]
    train, val = carve_validation(kept["train"], config.val_fraction, config.seed)
    splits = {"train": train, "val": val, "test": kept["test"]}
    clips = {
        s: [
            Clip(
                sample_id=v.sample_id,
                group=v.group,
                label=survivors.index(v.cls),
                files=(str(root / VIDEO_DIR / v.relpath),),
            )
            for v in vs
        ]
        for s, vs in splits.items()
    }
    return write_audio_visual_cache(
        out,
        config,
        name="ucf101",
        num_classes=len(survivors),
        splits=clips,
        decoder=partial(decode_video, config),
        manifest={
            "split": config.split,
            "classes": survivors,
            "classes_without_audio": [c for c in classes if c not in survivors],
            "videos_without_audio": [v.relpath for v in silent],
        },
        progress=progress,
    )


#: The params dataclass of ``data.benchmarks.ucf101`` (read by the DAG).
CONFIG = Ucf101Config

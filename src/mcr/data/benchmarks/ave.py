"""AVE (Audio-Visual Event): 4,143 ten-second YouTube videos, 28 events, annotated segments.

Layout read (the dataset's release, ``AVE_Dataset.zip``)::

    <root>/AVE/<video id>.mp4
    <root>/Annotations.txt                       Category&VideoID&Quality&StartTime&EndTime
    <root>/trainSet.txt, valSet.txt, testSet.txt  the official split, same line format

e.g. ``Church bell&RUhOCu3LNXM&good&0&10``. Only the annotated event segment
``[StartTime, EndTime)`` is used, as in the released code (docs/datasets.md §8.2): 4 frames at
1 fps from its start (a segment shorter than 4 s takes the frames after it, as the code saves at
least 10; a video that ends first repeats its last frame), and its audio at 16 kHz tiled to 10 s, as ``scipy.signal.spectrogram``
(``nperseg`` 512, ``noverlap`` 353) and ``log(S + 1e-7)``: 257 x 1004. Class ids follow the
sorted category names (listed in the manifest). The split files name each video once; a video in
two of them is an error.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

from mcr.config import ConfigError, param
from mcr.data.media.decode import MediaDecodeError, read_container_audio, read_frames
from mcr.data.media.spectrogram import tile

if TYPE_CHECKING:  # the DAG reads the Config; only extraction needs pyarrow
    from mcr.data.media.cache import Clip

VIDEO_DIR, ANNOTATIONS = "AVE", "Annotations.txt"
SPLIT_FILES = {"train": "trainSet.txt", "val": "valSet.txt", "test": "testSet.txt"}
LAYOUT = (
    f"<root>/{VIDEO_DIR}/<video id>.mp4, <root>/{ANNOTATIONS} and <root>/trainSet.txt, "
    "valSet.txt, testSet.txt with lines Category&VideoID&Quality&StartTime&EndTime"
)


@dataclass(frozen=True)
class AveConfig:
    """Where the files are, and the released code's feature settings."""

    root: str = param(
        "", "the AVE folder (holding AVE/ and the annotation files); empty: not used"
    )
    sample_rate: int = param(16000, "audio rate in Hz", source="released code", gt=0)
    seconds: float = param(10.0, "the segment's audio is tiled to this length",
                           source="released code", gt=0)  # fmt: skip
    nperseg: int = param(512, "spectrogram window", source="released code", ge=2)
    noverlap: int = param(353, "spectrogram overlap", source="released code", ge=0)
    frames: int = param(4, "video frames per clip, at fps from the segment start",
                        source="released code", ge=1)  # fmt: skip
    fps: float = param(1.0, "frame sampling rate", source="released code", gt=0)
    frame_size: int = param(224, "frames are resized to this square side", source="paper",
                            ge=8)  # fmt: skip
    on_corrupt: Literal["skip", "fail"] = param(
        "skip", "an undecodable file: leave the clip out (listed in the manifest) or stop"
    )
    workers: int = param(0, "decoding processes (0: one per core)", ge=0)
    row_group_size: int = param(32, "clips per Parquet row group", ge=1)

    def __post_init__(self) -> None:
        if self.noverlap >= self.nperseg:
            raise ValueError(f"noverlap={self.noverlap}: expected < nperseg={self.nperseg}")

    @property
    def modalities(self) -> tuple[str, ...]:
        return ("audio", "video")

    def shapes(self) -> dict[str, tuple[int, ...]]:
        length, hop = round(self.sample_rate * self.seconds), self.nperseg - self.noverlap
        return {
            "audio": (self.nperseg // 2 + 1, (length - self.noverlap) // hop),
            "video": (self.frames, 3, self.frame_size, self.frame_size),
        }


@dataclass(frozen=True)
class AveSegment:
    category: str
    video_id: str
    start: float
    end: float


def parse_lines(path: Path) -> list[AveSegment]:
    """One annotation file; a header line (``Category&...``) is skipped."""
    if not path.is_file():
        raise ConfigError(f"{path}: missing; expected {LAYOUT}")
    segments = []
    for number, line in enumerate(
        path.read_text(encoding="utf-8", errors="replace").splitlines(), 1
    ):
        if not line.strip() or line.startswith("Category&"):
            continue
        parts = line.strip().split("&")
        try:
            category, video_id, _quality, start, end = parts
            segment = AveSegment(category, video_id, float(start), float(end))
        except ValueError:
            raise ConfigError(
                f"{path}:{number}: malformed line {line.strip()!r}; expected "
                "Category&VideoID&Quality&StartTime&EndTime"
            ) from None
        if not 0 <= segment.start < segment.end:
            raise ConfigError(f"{path}:{number}: segment [{start}, {end}) is empty or negative")
        segments.append(segment)
    return segments


def index_root(root: str | Path) -> tuple[dict[str, list[AveSegment]], list[str]]:
    """The official splits and the class list, checked against the layout."""
    root = Path(root)
    if not root.is_dir():
        raise ConfigError(f"AVE root {root}: not a folder; expected {LAYOUT}")
    if not (root / VIDEO_DIR).is_dir():
        raise ConfigError(f"AVE root {root}: missing folder {VIDEO_DIR}/; expected {LAYOUT}")
    categories = sorted({s.category for s in parse_lines(root / ANNOTATIONS)})
    splits = {split: parse_lines(root / name) for split, name in SPLIT_FILES.items()}
    seen: dict[str, str] = {}
    for split, segments in splits.items():
        for s in segments:
            if s.category not in categories:
                raise ConfigError(
                    f"{root / SPLIT_FILES[split]}: category {s.category!r} of {s.video_id} is "
                    f"not in {ANNOTATIONS}"
                )
            if s.video_id in seen:
                raise ConfigError(
                    f"AVE video {s.video_id} is in both {SPLIT_FILES[seen[s.video_id]]} and "
                    f"{SPLIT_FILES[split]}; expected disjoint splits"
                )
            seen[s.video_id] = split
            if not (root / VIDEO_DIR / f"{s.video_id}.mp4").is_file():
                raise ConfigError(
                    f"{root / VIDEO_DIR / (s.video_id + '.mp4')}: missing (listed in "
                    f"{SPLIT_FILES[split]}); expected {LAYOUT}"
                )
    return splits, categories


def decode_segment(config: AveConfig, start: float, end: float, clip: Clip):
    """The segment's spectrogram (float16) and frames (uint8); padded when the video ends
    before the last frame."""
    from scipy.signal import spectrogram

    (video,) = clip.files
    audio = read_container_audio(video, config.sample_rate)
    first, last = round(start * config.sample_rate), round(end * config.sample_rate)
    segment = audio[first:last]
    if segment.size == 0:
        raise MediaDecodeError(video, f"no audio in the segment [{start:g}, {end:g}) s")
    length = round(config.sample_rate * config.seconds)
    _, _, power = spectrogram(tile(segment, length), config.sample_rate,
                              nperseg=config.nperseg, noverlap=config.noverlap)  # fmt: skip
    frames, found = read_frames(video, config.frames, config.frame_size, fps=config.fps,
                                start=start)  # fmt: skip
    log_power = np.log(power + 1e-7).astype(np.float16)
    return {"audio": log_power, "video": frames}, found < config.frames


def _decode(config: AveConfig, bounds: dict[str, tuple[float, float]], clip: Clip):
    return decode_segment(config, *bounds[clip.sample_id], clip)


def extract(config: AveConfig, out: str | Path, progress: bool = True):
    """Check the layout, then decode every listed segment into a media cache at ``out``."""
    from mcr.data.media.cache import Clip, write_audio_visual_cache

    splits, categories = index_root(config.root)
    root = Path(config.root)
    bounds = {s.video_id: (s.start, s.end) for segs in splits.values() for s in segs}
    clips = {
        split: [
            Clip(
                sample_id=s.video_id,
                group=s.video_id,
                label=categories.index(s.category),
                files=(str(root / VIDEO_DIR / f"{s.video_id}.mp4"),),
            )
            for s in segments
        ]
        for split, segments in splits.items()
    }
    return write_audio_visual_cache(
        out,
        config,
        name="ave",
        num_classes=len(categories),
        splits=clips,
        decoder=partial(_decode, config, bounds),
        manifest={"classes": categories},
        progress=progress,
    )


#: The params dataclass of ``data.benchmarks.ave`` (read by the DAG).
CONFIG = AveConfig

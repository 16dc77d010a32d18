"""Audio and video decoding with maintained libraries: soundfile for WAV, PyAV for containers.

Every failure to open or decode a file -- a truncated container, a missing stream, bytes that are
not media at all -- becomes one :class:`MediaDecodeError` naming the file, so an extractor can
skip it (and list it) or stop with that one line, instead of a traceback from deep inside FFmpeg.
"""

from __future__ import annotations

from fractions import Fraction
from math import gcd
from pathlib import Path

import numpy as np


class MediaDecodeError(ValueError):
    """A media file that cannot be decoded; ``path`` and ``reason`` say which and why."""

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path, self.reason = str(path), reason
        super().__init__(f"{path}: cannot decode ({reason})")


class MediaRejected(MediaDecodeError):
    """A file that decodes but falls outside the dataset's definition (no audio track, too few
    frames): always left out and listed, whatever ``on_corrupt`` says."""


def read_wav(path: str | Path, rate: int) -> np.ndarray:
    """A WAV file as mono float32 samples in [-1, 1] at ``rate`` Hz.

    Channels are averaged; another sample rate is converted with a polyphase filter
    (``scipy.signal.resample_poly``, exact for rational ratios such as 16 kHz -> 22.05 kHz).
    """
    import soundfile

    try:
        samples, native = soundfile.read(str(path), dtype="float32", always_2d=True)
    except (soundfile.LibsndfileError, RuntimeError, OSError) as exc:
        raise MediaDecodeError(path, str(exc).strip() or type(exc).__name__) from None
    if samples.shape[0] == 0:
        raise MediaDecodeError(path, "no audio samples")
    return resample(samples.mean(axis=1), native, rate)


def resample(samples: np.ndarray, native: int, rate: int) -> np.ndarray:
    """``samples`` from ``native`` Hz to ``rate`` Hz (unchanged when they agree)."""
    if native == rate:
        return np.ascontiguousarray(samples, dtype=np.float32)
    from scipy.signal import resample_poly

    common = gcd(native, rate)
    return resample_poly(samples, rate // common, native // common).astype(np.float32)


def read_container_audio(path: str | Path, rate: int) -> np.ndarray:
    """The first audio stream of a container (MP4, FLV, AVI, ...) as mono float32 at ``rate``.

    FFmpeg's resampler (libswresample, through PyAV) converts format, layout and rate."""
    import av

    chunks = []
    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                raise MediaDecodeError(path, "no audio stream")
            resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)
            for frame in container.decode(audio=0):
                chunks += [f.to_ndarray().reshape(-1) for f in resampler.resample(frame)]
            chunks += [f.to_ndarray().reshape(-1) for f in resampler.resample(None)]
    except av.FFmpegError as exc:
        raise MediaDecodeError(path, str(exc)) from None
    if not chunks or not sum(len(c) for c in chunks):
        raise MediaDecodeError(path, "no audio samples")
    return np.concatenate(chunks).astype(np.float32)


def has_audio(path: str | Path) -> bool:
    """Whether a container holds an audio stream (UCF-101 keeps only clips that do)."""
    import av

    try:
        with av.open(str(path)) as container:
            return bool(container.streams.audio)
    except av.FFmpegError as exc:
        raise MediaDecodeError(path, str(exc)) from None


def read_frames(
    path: str | Path,
    count: int,
    size: int,
    fps: float = 1.0,
    start: float = 0.0,
) -> tuple[np.ndarray, int]:
    """``count`` RGB frames sampled at ``fps`` from ``start`` seconds, resized to ``size``².

    The frame nearest each tick ``start + k / fps`` is taken (what ``ffmpeg -vf fps=1`` writes
    out, the paper's frame extraction). A clip that ends before the last tick repeats its last
    frame. Returns ``(frames, found)``: uint8 of shape ``(count, 3, size, size)`` and how many
    ticks had a frame of their own (``found < count`` means the clip was padded).
    """
    import av

    ticks = [start + k / fps for k in range(count)]
    best: list[tuple[float, object] | None] = [None] * count  # (gap to the tick, frame)
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise MediaDecodeError(path, "no video stream")
            time_base = container.streams.video[0].time_base
            for frame in container.decode(video=0):
                t = frame_time(frame, time_base)
                if t is None:
                    continue
                if t > ticks[-1] + 0.5 / fps:
                    break
                for k, tick in enumerate(ticks):
                    gap = abs(t - tick)
                    if gap < 0.5 / fps and (best[k] is None or gap < best[k][0]):
                        best[k] = (gap, frame)
            found = sum(b is not None for b in best)
            if best[0] is None:
                raise MediaDecodeError(path, f"no video frame near {start:g} s")
            frames: list[np.ndarray] = []
            for b in best:
                frames.append(_rgb(b[1], size) if b is not None else frames[-1])
    except av.FFmpegError as exc:
        raise MediaDecodeError(path, str(exc)) from None
    return np.stack(frames), found


def frame_time(frame, time_base: Fraction | None) -> float | None:
    """A decoded frame's presentation time in seconds (None when the stream has none)."""
    if frame.time is not None:
        return float(frame.time)
    if frame.pts is not None and time_base is not None:
        return float(frame.pts * time_base)
    return None


def _rgb(frame, size: int) -> np.ndarray:
    """One frame as uint8 (3, size, size), resized bilinearly by FFmpeg's swscale."""
    image = frame.to_ndarray(width=size, height=size, format="rgb24", interpolation="BILINEAR")
    return np.ascontiguousarray(image.transpose(2, 0, 1))

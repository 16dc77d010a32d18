"""The paper's audio features: a clip tiled to a fixed length and its log-magnitude STFT.

As in the released ResNet settings (CREMA-D: 22,050 Hz, 3 s, ``n_fft`` 512, hop 353 ->
257 x 188): samples are repeated until they fill the length, clipped to [-1, 1], and transformed
with a periodic Hann window over zero-padded, centred frames (``librosa.stft``'s defaults since
librosa 0.10), then ``log(|S| + 1e-7)``. Written in numpy so no audio library is needed beyond the
decoders; a test checks it against ``scipy.signal.stft``.
"""

from __future__ import annotations

import numpy as np

EPS = 1e-7


def tile(samples: np.ndarray, length: int) -> np.ndarray:
    """``samples`` repeated (and cut) to exactly ``length`` values, clipped to [-1, 1]."""
    if samples.size == 0:
        raise ValueError("tile: expected at least one sample")
    reps = -(-length // samples.size)
    return np.clip(np.tile(samples, reps)[:length], -1.0, 1.0).astype(np.float32)


def num_frames(length: int, hop: int) -> int:
    """STFT frames of a centred transform of ``length`` samples."""
    return 1 + length // hop


def log_stft(samples: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
    """``log(|STFT| + 1e-7)`` of shape ``(n_fft // 2 + 1, 1 + len // hop)``, float32."""
    x = np.pad(np.asarray(samples, dtype=np.float64), n_fft // 2)
    count = num_frames(len(samples), hop)
    frames = np.lib.stride_tricks.sliding_window_view(x, n_fft)[::hop][:count]
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)  # periodic Hann
    spectrum = np.fft.rfft(frames * window, axis=1).T
    return np.log(np.abs(spectrum) + EPS).astype(np.float32)

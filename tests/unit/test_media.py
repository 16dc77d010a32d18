"""Media decoding and the paper's spectrogram, on files written with real codecs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mcr.data.media.decode import (
    MediaDecodeError,
    read_container_audio,
    read_frames,
    read_wav,
    resample,
)
from mcr.data.media.spectrogram import log_stft, num_frames, tile
from tests.fixtures.media import colour, tone, write_video, write_wav


def test_log_stft_matches_scipy_and_has_the_papers_shape() -> None:
    from scipy.signal import stft

    rng = np.random.default_rng(0)
    x = tile(rng.uniform(-1, 1, 16000).astype(np.float32), 66150)  # 3 s at 22,050 Hz
    ours = log_stft(x, 512, 353)
    assert ours.shape == (257, 188)  # the released code's CREMA-D spectrogram
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(512) / 512)
    _, _, ref = stft(x.astype(np.float64), window=window, nperseg=512, noverlap=512 - 353,
                     boundary="zeros", padded=False)  # fmt: skip
    ref = np.log(np.abs(ref * window.sum()) + 1e-7)[:, :188]  # scipy scales by 1/sum(window)
    np.testing.assert_allclose(ours, ref, atol=1e-4)


def test_a_tone_peaks_in_its_frequency_bin() -> None:
    x = tone(2, 3.0, 22050)  # 800 Hz
    spectrum = log_stft(tile(x, 66150), 512, 353)
    assert np.all(spectrum.argmax(axis=0)[2:-2] == round(800 * 512 / 22050))


def test_tile_repeats_short_clips_and_clips_the_range() -> None:
    np.testing.assert_allclose(tile(np.array([0.1, 2.0, -3.0]), 7),
                               [0.1, 1.0, -1.0, 0.1, 1.0, -1.0, 0.1], rtol=1e-6)  # fmt: skip
    assert num_frames(66150, 353) == 188
    with pytest.raises(ValueError, match="at least one sample"):
        tile(np.array([]), 5)


def test_wav_is_read_mono_and_resampled(tmp_path: Path) -> None:
    path = tmp_path / "a.wav"
    write_wav(path, tone(0, 1.0, 16000), 16000)
    x = read_wav(path, 22050)
    assert x.dtype == np.float32 and len(x) == 22050
    peak = np.abs(np.fft.rfft(x)).argmax()  # 1 s of audio: bin k is k Hz
    assert abs(peak - 300) <= 1


def test_resample_is_exact_for_equal_rates() -> None:
    x = np.arange(5, dtype=np.float32)
    assert np.array_equal(resample(x, 16000, 16000), x)
    assert len(resample(np.zeros(16000, np.float32), 16000, 22050)) == 22050


def test_frames_at_one_fps_and_padding_of_short_clips(tmp_path: Path) -> None:
    path = tmp_path / "clip.flv"
    write_video(path, colour(3, 6), 1.4, audio=tone(3, 1.4, 44100))
    frames, found = read_frames(path, count=3, size=32)
    assert frames.shape == (3, 3, 32, 32) and frames.dtype == np.uint8
    assert found == 2  # ticks at 0 s and 1 s exist; 2 s is past the end and repeats 1 s
    np.testing.assert_array_equal(frames[2], frames[1])
    assert not np.array_equal(frames[0], frames[1])  # the moving bar: different frames
    pixel = frames[0][:, 16, 24].astype(int)  # away from the bar (at the left edge at t = 0)
    assert np.abs(pixel - colour(3, 6).astype(int)).max() < 12  # the class colour survives
    audio = read_container_audio(path, 16000)
    assert abs(len(audio) / 16000 - 1.4) < 0.1


def test_undecodable_files_raise_one_error_naming_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "broken.flv"
    bad.write_bytes(b"FLV\x01 this is not a video" * 10)
    with pytest.raises(MediaDecodeError, match=r"broken\.flv"):
        read_frames(bad, count=3, size=32)
    wav = tmp_path / "broken.wav"
    wav.write_bytes(b"RIFF0000WAVEjunk")
    with pytest.raises(MediaDecodeError, match=r"broken\.wav: cannot decode"):
        read_wav(wav, 22050)
    silent = tmp_path / "silent.mp4"
    write_video(silent, colour(0, 6), 0.5, video_codec="mpeg4")
    with pytest.raises(MediaDecodeError, match="no audio stream"):
        read_container_audio(silent, 16000)

"""Decoding audio-visual media into arrays, and caching them in the Parquet contract.

The paper's audio-visual benchmarks (CREMA-D, AVE, UCF-101) start from raw media files. Every
file is decoded once, by maintained libraries (PyAV for video containers and their audio tracks,
soundfile for WAV), into fixed-shape arrays -- log-magnitude spectrograms and a few RGB frames --
that :mod:`mcr.data.media.cache` writes as a media cache: a contract folder whose frames are
``uint8`` and spectrograms ``float16``. Training reads the cache and never decodes media.
"""

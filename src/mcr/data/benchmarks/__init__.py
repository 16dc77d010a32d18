"""The paper's benchmark datasets, extracted from the files a user holds.

None of them can be downloaded here: each extractor reads the dataset's real on-disk layout from a
root folder given in params (``data.benchmarks.<name>.root``), checks that layout first (one
error naming the expected layout and the first missing or malformed file) and writes a media
cache (:mod:`mcr.data.media.cache`). The tests build small trees in these layouts with real codecs
(``tests/fixtures/media.py``).
"""

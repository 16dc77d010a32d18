"""The paper's benchmark datasets, extracted from the files a user holds.

None of them can be downloaded here: each extractor reads the dataset's real on-disk layout from a
root folder given in params (``data.benchmarks.<name>.root``), checks that layout first (one
error naming the expected layout and the first missing or malformed file) and writes a media
cache (:mod:`mcr.data.media.cache`). The tests build small trees in these layouts with real codecs
(``tests/fixtures/media.py``).
"""

from __future__ import annotations

import importlib
from types import ModuleType

#: Benchmark name (the ``data.benchmarks`` key, the pipeline's dataset name) -> its module, which
#: has ``CONFIG`` (the params dataclass; importing it needs neither torch nor pyarrow) and
#: ``extract(config, out, progress)``.
BENCHMARKS = {
    "cremad": "mcr.data.benchmarks.cremad",
    "ave": "mcr.data.benchmarks.ave",
    "ucf101": "mcr.data.benchmarks.ucf101",
}


def benchmark_module(name: str) -> ModuleType:
    """The module of benchmark ``name``; raises ``KeyError`` naming the known ones."""
    if name not in BENCHMARKS:
        raise KeyError(f"unknown benchmark {name!r}; expected one of {', '.join(BENCHMARKS)}")
    return importlib.import_module(BENCHMARKS[name])

"""Random media caches in the extractors' format, for the loader and GPU benchmarks.

uint8 ``video`` frames and float16 spectrograms (every other modality), one row group per
``row_group`` rows, with the contract's ``mcr`` metadata, so :class:`mcr.data.stream.ParquetStream`
and :func:`mcr.data.contract.read_dataset` read them as they read a real cache.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq


def write_media_cache(
    path: Path,
    shapes: Mapping[str, tuple[int, ...]],
    num_classes: int,
    rows: int,
    *,
    row_group: int,
    first: int = 0,
    name: str = "bench",
) -> None:
    """``rows`` random rows with ids ``s<first>``, ``s<first+1>``, ... (unique across files)."""
    types = {m: pa.uint8() if m == "video" else pa.float16() for m in shapes}
    meta = {"name": name, "task": "classification", "num_classes": num_classes,
            "modalities": {m: list(s) for m, s in shapes.items()}}  # fmt: skip
    schema = pa.schema(
        [("sample_id", pa.string()), ("label", pa.int64())]
        + [(m, pa.list_(types[m], int(np.prod(s)))) for m, s in shapes.items()],
        metadata={b"mcr": json.dumps(meta).encode()},
    )
    rng = np.random.default_rng(0)
    with pq.ParquetWriter(path, schema) as writer:
        for start in range(0, rows, row_group):
            n = min(row_group, rows - start)
            columns = {
                "sample_id": pa.array([f"s{first + i}" for i in range(start, start + n)]),
                "label": pa.array(rng.integers(0, num_classes, n), pa.int64()),
            }
            for m, shape in shapes.items():
                if m == "video":
                    values = rng.integers(0, 256, (n, *shape), dtype=np.uint8)
                else:
                    values = rng.standard_normal((n, *shape)).astype(np.float16)
                flat = values.reshape(-1)
                columns[m] = pa.FixedSizeListArray.from_arrays(pa.array(flat), flat.size // n)
            writer.write_table(pa.table(columns, schema=schema))

"""The bounded-memory Parquet stream: every row once per epoch, seeded order, file dtypes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mcr.data.stream import ParquetStream, row_group_bytes, to_device


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    """103 rows of uint8 frames (2, 3, 4, 4) and float16 spectra (5,), row groups of 10."""
    n = 103
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (n, 2, 3, 4, 4), dtype=np.uint8)
    spectra = np.arange(n, dtype=np.float16)[:, None].repeat(5, 1)  # row i holds i
    table = pa.table({
        "sample_id": pa.array([f"s{i:03d}" for i in range(n)]),
        "label": pa.array(np.arange(n) % 3, pa.int64()),
        "video": pa.FixedSizeListArray.from_arrays(pa.array(frames.reshape(-1)), 96),
        "audio": pa.FixedSizeListArray.from_arrays(pa.array(spectra.reshape(-1)), 5),
    }).replace_schema_metadata({"mcr": json.dumps({
        "name": "t", "task": "classification", "num_classes": 3,
        "modalities": {"video": [2, 3, 4, 4], "audio": [5]}})})  # fmt: skip
    path = tmp_path / "train.parquet"
    pq.write_table(table, path, row_group_size=10)
    return path


def rows_of(stream: ParquetStream, epoch: int) -> list[str]:
    return [i for b in stream.epoch(epoch) for i in b.sample_ids]


def test_every_row_once_per_epoch_in_full_batches(cache: Path) -> None:
    stream = ParquetStream(cache, batch_size=16, window=3)
    batches = list(stream.epoch(0))
    assert [len(b) for b in batches] == [16] * 6 + [7] and len(stream) == 7
    ids = [i for b in batches for i in b.sample_ids]
    assert sorted(ids) == [f"s{i:03d}" for i in range(103)]
    b = batches[0]
    assert str(b.inputs["video"].dtype) == "torch.uint8" and b.inputs["video"].shape[1:] == (
        2,
        3,
        4,
        4,
    )
    assert str(b.inputs["audio"].dtype) == "torch.float16"
    for k, sid in enumerate(b.sample_ids):  # the modalities stay with their row
        assert float(b.inputs["audio"][k, 0]) == int(sid[1:])
        assert int(b.labels[k]) == int(sid[1:]) % 3
    assert len(list(ParquetStream(cache, 16, drop_last=True).epoch(0))) == 6


def test_the_order_depends_only_on_seed_and_epoch(cache: Path) -> None:
    a = ParquetStream(cache, 8, seed=1, prefetch=2)
    b = ParquetStream(cache, 8, seed=1, prefetch=0)  # read-ahead does not change the order
    assert rows_of(a, 0) == rows_of(b, 0) == rows_of(a, 0)
    assert rows_of(a, 0) != rows_of(a, 1)
    assert rows_of(a, 0) != rows_of(ParquetStream(cache, 8, seed=2), 0)
    plain = ParquetStream(cache, 8, shuffle=False)
    assert rows_of(plain, 0) == [f"s{i:03d}" for i in range(103)]


def test_stopping_early_ends_the_reader_and_sizes_are_reported(cache: Path) -> None:
    stream = ParquetStream(cache, 4, window=1, prefetch=1)
    for _ in zip(range(2), stream.epoch(0), strict=False):
        pass  # abandon the epoch after two batches: the generator's cleanup joins the reader
    assert len(rows_of(stream, 0)) == 103
    assert row_group_bytes(cache) > 10 * 96
    batch = to_device(next(stream.epoch(0)), "cpu")
    assert batch.inputs["video"].device.type == "cpu"
    with pytest.raises(ValueError, match="batch_size=0"):
        ParquetStream(cache, 0)

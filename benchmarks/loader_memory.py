"""Peak memory and throughput of the bounded-memory Parquet stream, 1k vs 10k rows.

Writes two media caches of random rows in the extractors' format (uint8 frames 3 x 3 x 64 x 64,
float16 spectrograms 129 x 94, ~60 KB a row, row groups of 64) and reads one epoch of each in a
fresh process, batch 32, with :class:`mcr.data.stream.ParquetStream` (window 4, prefetch 2) and,
for comparison, with the in-memory reader. Peak RSS must not grow with the stream's cache size;
the in-memory reader's does.

Usage: ``python benchmarks/loader_memory.py [--rows 1000 10000]``. Last line:
``stream peak RSS <MB> (1k) vs <MB> (10k); <samples/s> samples/s``.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

SHAPES = {"video": (3, 3, 64, 64), "audio": (129, 94)}


def write_cache(path: Path, rows: int) -> None:
    meta = {"name": "bench", "task": "classification", "num_classes": 6,
            "modalities": {m: list(s) for m, s in SHAPES.items()}}  # fmt: skip
    schema = pa.schema(
        [("sample_id", pa.string()), ("label", pa.int64()),
         ("video", pa.list_(pa.uint8(), int(np.prod(SHAPES["video"])))),
         ("audio", pa.list_(pa.float16(), int(np.prod(SHAPES["audio"]))))],
        metadata={b"mcr": json.dumps(meta).encode()},
    )  # fmt: skip
    rng = np.random.default_rng(0)
    with pq.ParquetWriter(path, schema) as writer:
        for start in range(0, rows, 64):
            n = min(64, rows - start)
            video = rng.integers(0, 256, (n, *SHAPES["video"]), dtype=np.uint8).reshape(-1)
            audio = rng.standard_normal((n, *SHAPES["audio"])).astype(np.float16).reshape(-1)
            writer.write_table(pa.table({
                "sample_id": pa.array([f"s{i}" for i in range(start, start + n)]),
                "label": pa.array(rng.integers(0, 6, n), pa.int64()),
                "video": pa.FixedSizeListArray.from_arrays(pa.array(video), video.size // n),
                "audio": pa.FixedSizeListArray.from_arrays(pa.array(audio), audio.size // n),
            }, schema=schema))  # fmt: skip


def measure(path: str, mode: str) -> None:
    """Child process: read one epoch, print peak RSS (MB) and samples/s as JSON."""
    import torch

    tic, seen, total = time.perf_counter(), 0, 0.0
    if mode == "stream":
        from mcr.data.stream import ParquetStream

        for batch in ParquetStream(path, 32, window=4, prefetch=2).epoch(0):
            total += float(batch.inputs["video"][:, 0, 0, 0, 0].float().sum())  # touch the data
            seen += len(batch)
    else:
        import pyarrow.parquet as pq

        table = pq.read_table(path)
        video = torch.from_numpy(
            table.column("video")
            .combine_chunks()
            .flatten()
            .to_numpy()
            .reshape(-1, *SHAPES["video"])
        )
        for start in range(0, len(video), 32):
            total += float(video[start : start + 32, 0, 0, 0, 0].float().sum())
            seen += len(video[start : start + 32])
    seconds = time.perf_counter() - tic
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"peak_mb": peak, "rate": seen / seconds, "rows": seen}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        measure(*args.child)
        return
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        print(f"{'rows':>6} {'file MB':>8} {'reader':8} {'peak RSS MB':>12} {'samples/s':>10}")
        for rows in args.rows:
            path = Path(tmp) / f"cache{rows}.parquet"
            write_cache(path, rows)
            size = path.stat().st_size / 2**20
            for mode in ("stream", "memory"):
                out = subprocess.run([sys.executable, __file__, "--child", str(path), mode],
                                     capture_output=True, text=True, check=True)  # fmt: skip
                r = json.loads(out.stdout.strip().splitlines()[-1])
                results[(rows, mode)] = r
                print(f"{rows:>6} {size:>8.0f} {mode:8} {r['peak_mb']:>12.0f} {r['rate']:>10.0f}")
    small, large = min(args.rows), max(args.rows)
    print(f"stream peak RSS {results[(small, 'stream')]['peak_mb']:.0f} MB ({small} rows) vs "
          f"{results[(large, 'stream')]['peak_mb']:.0f} MB ({large} rows); "
          f"{results[(large, 'stream')]['rate']:.0f} samples/s")  # fmt: skip


if __name__ == "__main__":
    main()

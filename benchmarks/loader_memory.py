"""Peak memory and throughput of the bounded-memory loader, 1k vs 10k rows, reading and training.

Writes two media caches of random rows in the extractors' format (uint8 frames 3 x 3 x 64 x 64,
float16 spectrograms 129 x 94, ~60 KB a row, row groups of 64) as contract folders (80/10/10
train/val/test) and, each in a fresh process:

* ``stream``: one epoch of the train split with :class:`mcr.data.stream.ParquetStream`, batch 32
  (window 8, prefetch 2, the training defaults) -- the loader's throughput on this CPU;
* ``memory``: the in-memory reader, for comparison (its peak grows with the cache);
* ``train``: :func:`mcr.training.train_run` of ``joint`` for one epoch on the dataset read with
  ``memory_budget_gb=0`` (every split streamed), two small ResNet-18s (width 8, 32-pixel
  crops), then :func:`mcr.evaluation.evaluate_run` on val and test, in chunks of 64 rows.

Peak RSS of ``stream`` and ``train`` must not grow with the cache once the cache fills the
stream's read-ahead (``ParquetStream.memory_bound``, printed; ~2k rows here): below that a cache
is simply smaller than the buffer. The in-memory reader's peak grows with the cache.

Usage: ``python benchmarks/loader_memory.py [--rows 1000 10000 20000]``. Last line:
``train peak RSS <MB> (<smallest> rows) vs <MB> (<largest> rows); stream <samples/s> samples/s``.
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

from media_cache import write_media_cache

SHAPES = {"video": (3, 3, 64, 64), "audio": (129, 94)}
#: Rows per evaluation chunk: below the smallest cache's validation split (100 rows), so both
#: caches evaluate in full chunks and their memory depends on chunk and window sizes alone.
EVAL_ROWS = 64


def write_contract(folder: Path, rows: int) -> None:
    """``rows`` random clips split 80/10/10 into a contract folder (ids unique across files)."""
    folder.mkdir(parents=True, exist_ok=True)
    bounds = [0, int(0.8 * rows), int(0.9 * rows), rows]
    for split, start, stop in zip(("train", "val", "test"), bounds, bounds[1:], strict=False):
        write_media_cache(folder / f"{split}.parquet", SHAPES, 6, stop - start, row_group=64,
                          first=start)  # fmt: skip


def measure(path: str, mode: str) -> None:
    """Child process: read one epoch, print peak RSS (MB) and samples/s as JSON."""
    import torch

    tic, seen, total = time.perf_counter(), 0, 0.0
    if mode == "train":
        seen = train_and_evaluate(Path(path))
    elif mode == "stream":
        from mcr.data.stream import ParquetStream

        for batch in ParquetStream(Path(path) / "train.parquet", 32, window=8).epoch(0):
            total += float(batch.inputs["video"][:, 0, 0, 0, 0].float().sum())  # touch the data
            seen += len(batch)
    else:
        import pyarrow.parquet as pq

        table = pq.read_table(Path(path) / "train.parquet")
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


def train_and_evaluate(folder: Path) -> int:
    """One epoch of ``joint`` on the streamed dataset, then evaluation; returns rows trained."""
    import logging

    from mcr.data.contract import read_dataset
    from mcr.evaluation import evaluate_run
    from mcr.training import RunConfig, train_run

    logging.disable(logging.INFO)
    data = read_dataset(folder, memory_budget_gb=0)
    config = RunConfig.from_params({"train": {
        "common": {"epochs": 1, "batch_size": 32, "eval_batch_size": EVAL_ROWS, "device": "cpu",
                   "progress": False},
        "model": {"encoders": {
            "video": {"name": "resnet18_frames", "width": 8, "latent_dim": 32, "crop_size": 32},
            "audio": {"name": "resnet18", "width": 8, "latent_dim": 32}}},
        "methods": {}}})  # fmt: skip
    train_run(data, "joint", config, 0, folder / "run")
    evaluate_run(folder / "run", data, batch_size=EVAL_ROWS)
    return len(data.train) // 32 * 32


def main() -> None:
    from mcr.data.stream import ParquetStream

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[1000, 10000, 20000])
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        measure(*args.child)
        return
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        print(f"{'rows':>6} {'files MB':>8} {'mode':8} {'peak RSS MB':>12} {'samples/s':>10}")
        for rows in args.rows:
            folder = Path(tmp) / f"cache{rows}"
            write_contract(folder, rows)
            size = sum(p.stat().st_size for p in folder.glob("*.parquet")) / 2**20
            bound = ParquetStream(folder / "train.parquet", 32, window=8).memory_bound()
            for mode in ("stream", "memory", "train"):
                out = subprocess.run([sys.executable, __file__, "--child", str(folder), mode],
                                     capture_output=True, text=True, check=True)  # fmt: skip
                r = json.loads(out.stdout.strip().splitlines()[-1])
                results[(rows, mode)] = r
                print(f"{rows:>6} {size:>8.0f} {mode:8} {r['peak_mb']:>12.0f} {r['rate']:>10.0f}")
    small, large = min(args.rows), max(args.rows)
    print(
        f"the stream holds at most {bound / 2**20:.0f} MB of rows (ParquetStream.memory_bound: "
        "prefetch + 3 windows of 8 row groups); a cache smaller than that never fills it"
    )
    print(f"train peak RSS {results[(small, 'train')]['peak_mb']:.0f} MB ({small} rows) vs "
          f"{results[(large, 'train')]['peak_mb']:.0f} MB ({large} rows); stream "
          f"{results[(large, 'stream')]['rate']:.0f} samples/s")  # fmt: skip


if __name__ == "__main__":
    main()

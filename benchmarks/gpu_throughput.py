"""Samples/s and step time of joint training vs MCR with two ResNet-18 encoders (CREMA-D shapes).

The paper's audio-visual setting: a 1-channel ResNet-18 on the 257 x 188 float16 spectrogram and
a per-frame ResNet-18 on 3 uint8 frames of 224² (``resnet18`` and ``resnet18_frames``, with the
device-side random resized crop and flip), batch 32, MCR with K = 32 permutations and the paper's
CREMA-D weights. Each step is built as ``mcr.training.loop.fit`` builds it (``step_overhead.py``'s
helpers: bf16 autocast on CUDA, Adam).

* **loader excluded**: batches already on the device, the step alone;
* **loader included**: each step first takes the next batch of the training loader for caches
  beyond the memory budget -- :class:`mcr.data.stream.ParquetStream` over a media cache written to
  a temporary Parquet file (uint8 frames, float16 spectrograms, row groups of 32; window 8,
  prefetch 2, pinned on CUDA) -- and copies it to the device; the time from asking for the batch
  to having it on the device is ``loader_wait``, as a share of the whole step. The in-memory
  loader (a slice of tensors already on the device) costs nothing: that is the excluded case.

On a CPU the same code runs at smaller sizes (``--quick`` is implied): spectrogram 129 x 94,
frames 64², batch 8. Cases are interleaved round by round and medians reported.

Usage: ``python benchmarks/gpu_throughput.py [--steps N] [--device auto|cpu|cuda]``. Last line:
``mcr_step/joint_step = <ratio>; loader_wait = <fraction of step time>`` (MCR, loader included).
Targets on a GPU: ratio <= 1.05, loader wait <= 5 %.
"""

from __future__ import annotations

import argparse
import itertools
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from mcr.data.dataset import DatasetInfo
from mcr.data.stream import ParquetStream, StreamBatch, to_device
from mcr.methods import Batch
from mcr.models import ModelConfig
from mcr.runtime import resolve_device
from media_cache import write_media_cache
from step_overhead import make_case, median_iqr, synchronize, train_step

ROW_GROUP = 32
MCR_CREMAD = {"lambda_mipd": 0.1, "unimodal_weight": 0.01, "num_permutations": 32}


def shapes(device: torch.device) -> tuple[dict[str, tuple[int, ...]], int, int]:
    """Modality shapes, frame crop side and batch size: the paper's on CUDA, smaller on CPU."""
    if device.type == "cuda":
        return {"audio": (257, 188), "video": (3, 3, 224, 224)}, 224, 32
    return {"audio": (129, 94), "video": (3, 3, 64, 64)}, 64, 8


def endless(stream: ParquetStream) -> Iterator[StreamBatch]:
    """The stream's batches, epoch after epoch."""
    return itertools.chain.from_iterable(stream.epoch(e) for e in itertools.count())


def as_batch(batch: StreamBatch, device: torch.device) -> Batch:
    moved = to_device(batch, device)
    return Batch(inputs=moved.inputs, labels=moved.labels)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=12, help="timed steps per case and mode")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    device = resolve_device(args.device)
    modality_shapes, crop, batch_size = shapes(device)
    info = DatasetInfo(name="cremad", task="classification", num_classes=6,
                       modalities=("audio", "video"), shapes=modality_shapes)  # fmt: skip
    encoders = {"audio": {"name": "resnet18"},
                "video": {"name": "resnet18_frames", "crop_size": crop}}  # fmt: skip
    cases = {
        name: make_case(name, info, ModelConfig(encoders=encoders), name, params, device)
        for name, params in (("joint", {}), ("mcr", MCR_CREMAD))
    }
    tmp = tempfile.TemporaryDirectory()
    cache = Path(tmp.name) / "train.parquet"
    write_media_cache(cache, info.shapes, info.num_classes, 16 * ROW_GROUP, row_group=ROW_GROUP,
                      name=info.name)  # fmt: skip
    stream = ParquetStream(cache, batch_size, seed=1, window=8, prefetch=2, drop_last=True,
                           pin_memory=device.type == "cuda")  # fmt: skip
    batches = endless(stream)
    resident = as_batch(next(batches), device)  # loader excluded: already on the device
    times: dict[tuple[str, str], list[float]] = {}
    waits: dict[str, list[float]] = {}
    for step in range(args.steps + 2):  # 2 warm-up rounds, then timed rounds
        order = list(cases) if step % 2 == 0 else list(reversed(cases))
        for name in order:
            synchronize(device)
            tic = time.perf_counter()
            train_step(cases[name], resident, device)
            synchronize(device)
            alone = time.perf_counter() - tic
            tic = time.perf_counter()
            batch = as_batch(next(batches), device)
            synchronize(device)
            wait = time.perf_counter() - tic
            train_step(cases[name], batch, device)
            synchronize(device)
            total = time.perf_counter() - tic
            if step >= 2:
                times.setdefault((name, "excluded"), []).append(alone)
                times.setdefault((name, "included"), []).append(total)
                waits.setdefault(name, []).append(wait / total)
    print(f"device {device}, batch {batch_size}, shapes {modality_shapes}, {args.steps} steps")
    print(f"{'method':8} {'loader':9} {'step ms (IQR)':>22} {'samples/s':>10}")
    for (name, mode), samples in times.items():
        mid, lo, hi = median_iqr(samples)
        print(f"{name:8} {mode:9} {1e3 * mid:>9.1f} ({1e3 * lo:.1f}-{1e3 * hi:.1f}) "
              f"{batch_size / mid:>10.1f}")  # fmt: skip
    ratio = median_iqr(times[("mcr", "included")])[0] / median_iqr(times[("joint", "included")])[0]
    wait = float(np.median(waits["mcr"]))
    tmp.cleanup()
    print(f"mcr_step/joint_step = {ratio:.3f}; loader_wait = {wait:.3f}")


if __name__ == "__main__":
    main()

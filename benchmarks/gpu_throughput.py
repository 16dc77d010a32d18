"""Samples/s and step time of joint training vs MCR with two ResNet-18 encoders (CREMA-D shapes).

The paper's audio-visual setting: a 1-channel ResNet-18 on the 257 x 188 float16 spectrogram and
a per-frame ResNet-18 on 3 uint8 frames of 224² (``resnet18`` and ``resnet18_frames``, with the
device-side random resized crop and flip), batch 32, MCR with K = 32 permutations and the paper's
CREMA-D weights. Each step is built as ``mcr.training.loop.fit`` builds it (``step_overhead.py``'s
helpers: bf16 autocast on CUDA, Adam).

* **loader excluded**: batches already on the device, the step alone;
* **loader included**: each step first takes a random batch of the media cache from host memory
  (uint8 frames, float16 spectrograms), pinned on CUDA, and copies it to the device; the copy's
  share of the step is ``loader_wait``.

On a CPU the same code runs at smaller sizes (``--quick`` is implied): spectrogram 129 x 94,
frames 64², batch 8. Cases are interleaved round by round and medians reported.

Usage: ``python benchmarks/gpu_throughput.py [--steps N] [--device auto|cpu|cuda]``. Last line:
``mcr_step/joint_step = <ratio>; loader_wait = <fraction of step time>`` (MCR, loader included).
Targets on a GPU: ratio <= 1.05, loader wait <= 5 %.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from mcr.data.dataset import DatasetInfo
from mcr.methods import Batch
from mcr.models import ModelConfig
from mcr.runtime import resolve_device
from step_overhead import make_case, median_iqr, synchronize, train_step

MCR_CREMAD = {"lambda_mipd": 0.1, "unimodal_weight": 0.01, "num_permutations": 32}


def shapes(device: torch.device) -> tuple[dict[str, tuple[int, ...]], int, int]:
    """Modality shapes, frame crop side and batch size: the paper's on CUDA, smaller on CPU."""
    if device.type == "cuda":
        return {"audio": (257, 188), "video": (3, 3, 224, 224)}, 224, 32
    return {"audio": (129, 94), "video": (3, 3, 64, 64)}, 64, 8


def host_cache(info: DatasetInfo, rows: int, pin: bool) -> dict[str, torch.Tensor]:
    """An in-memory media cache: float16 spectrograms, uint8 frames (as the extractors write)."""
    gen = torch.Generator().manual_seed(0)
    cache = {
        "audio": torch.randn(rows, *info.shapes["audio"], generator=gen).half(),
        "video": torch.randint(0, 256, (rows, *info.shapes["video"]), generator=gen,
                               dtype=torch.uint8),
        "label": torch.randint(0, info.num_classes, (rows,), generator=gen),
    }  # fmt: skip
    return {k: v.pin_memory() for k, v in cache.items()} if pin else cache


def fetch(cache: dict[str, torch.Tensor], rows: torch.Tensor, device: torch.device) -> Batch:
    """A batch from host memory to the device (asynchronous copies from pinned memory)."""
    moved = {k: v[rows].to(device, non_blocking=True) for k, v in cache.items()}
    label = moved.pop("label")
    return Batch(inputs=moved, labels=label)


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
    cache = host_cache(info, rows=8 * batch_size, pin=device.type == "cuda")
    gen = torch.Generator().manual_seed(1)
    resident = fetch(cache, torch.arange(batch_size), device)  # loader excluded: on the device
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
            rows = torch.randint(0, len(cache["label"]), (batch_size,), generator=gen)
            tic = time.perf_counter()
            batch = fetch(cache, rows, device)
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
    print(f"mcr_step/joint_step = {ratio:.3f}; loader_wait = {wait:.3f}")


if __name__ == "__main__":
    main()

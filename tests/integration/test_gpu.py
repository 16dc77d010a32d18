"""The CUDA path: bf16 autocast, channels-last convolutions, pinned streams, torch.compile.

Every test here is marked ``gpu`` and skipped where torch sees no CUDA device (CI, laptops);
run them on a GPU machine with ``pytest -m gpu``. The CPU path is covered everywhere else.
"""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest
import torch

from mcr.config import to_mapping
from mcr.data.dataset import DatasetInfo, MultimodalDataset, Split
from mcr.data.stream import ParquetStream, to_device
from mcr.evaluation import evaluate_run
from mcr.training import RunConfig, load_model, predict, train_run
from tests.conftest import ROOT

pytestmark = pytest.mark.gpu

SHAPES = {"audio": (65, 48), "video": (3, 3, 40, 40)}


def media_dataset(n: int = 192, seed: int = 0) -> MultimodalDataset:
    """float16 spectrograms and uint8 frames whose class shows in both (learnable in 3 epochs)."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, n)
    audio = rng.standard_normal((n, *SHAPES["audio"])).astype(np.float32)
    audio[:, :8] += labels[:, None, None] * 1.5
    video = rng.integers(0, 120, (n, *SHAPES["video"]))
    video[:, :, labels % 3, :, :] += 120  # the class's colour channel is bright
    info = DatasetInfo("media", "classification", 3, ("audio", "video"), dict(SHAPES))
    idx = np.array_split(rng.permutation(n), [int(0.6 * n), int(0.8 * n)])
    splits = {
        name: Split.from_arrays(
            name,
            {"audio": audio[i].astype(np.float16), "video": video[i].astype(np.uint8)},
            labels[i].astype(np.int64), np.array([f"s{j}" for j in i]),
        )
        for name, i in zip(("train", "val", "test"), idx, strict=True)
    }  # fmt: skip
    return MultimodalDataset(info, **splits)


def config(epochs: int = 3, **common) -> RunConfig:
    return RunConfig.from_params({"train": {
        "common": {"epochs": epochs, "batch_size": 16, "lr": 1e-3, "device": "cuda",
                   "progress": False, **common},
        "model": {"encoders": {
            "audio": {"name": "resnet18", "width": 8, "latent_dim": 32},
            "video": {"name": "resnet18_frames", "width": 8, "latent_dim": 32, "crop_size": 32},
        }},
        "methods": {"mcr": {"num_permutations": 8}},
    }})  # fmt: skip


@pytest.mark.parametrize("method", ["joint", "mcr"])
def test_training_on_cuda_with_bf16_and_channels_last_learns(method, tmp_path):
    data = media_dataset()
    result = train_run(data, method, config(), 0, tmp_path)
    assert all(math.isfinite(r["train_loss"]) for r in result.history)
    assert result.best_val["accuracy"] > 0.5  # chance is 1/3
    metrics = evaluate_run(tmp_path, data)
    assert metrics["test"]["accuracy"] > 0.5


def test_channels_last_and_bf16_change_only_the_rounding(tmp_path):
    data = media_dataset(96)
    train_run(data, "joint", config(1), 0, tmp_path)
    inputs = {m: x[:32] for m, x in data.test.inputs.items()}
    cpu = predict(load_model(tmp_path, "cpu"), inputs).logits
    gpu = predict(load_model(tmp_path, "cuda"), inputs).logits.cpu()
    nhwc = load_model(tmp_path, "cuda").to(memory_format=torch.channels_last)
    assert nhwc.encoders["audio"].trunk.conv1.weight.is_contiguous(
        memory_format=torch.channels_last
    )
    torch.testing.assert_close(predict(nhwc, inputs).logits.cpu(), cpu, atol=1e-3, rtol=1e-3)
    torch.testing.assert_close(gpu, cpu, atol=1e-3, rtol=1e-3)
    with torch.autocast("cuda", torch.bfloat16):
        half = nhwc({m: x.cuda() for m, x in inputs.items()}).logits
    assert half.dtype == torch.bfloat16
    torch.testing.assert_close(half.float().cpu(), cpu, atol=0.1, rtol=0.05)


def test_a_pinned_stream_reaches_the_device_unchanged(tmp_path):
    from mcr.data.contract import write_dataset

    data = media_dataset(150)
    write_dataset(data, tmp_path)
    path = tmp_path / "train.parquet"
    host = list(ParquetStream(path, 16, seed=1).epoch(0))
    pinned = list(ParquetStream(path, 16, seed=1, pin_memory=True).epoch(0))
    assert all(b.inputs["video"].is_pinned() for b in pinned)
    for a, b in zip(host, pinned, strict=True):
        moved = to_device(b, "cuda")
        torch.cuda.synchronize()
        assert moved.inputs["video"].device.type == "cuda"
        assert torch.equal(moved.inputs["video"].cpu(), a.inputs["video"])
        assert torch.equal(moved.labels.cpu(), a.labels)


def test_streamed_training_on_cuda(tmp_path):
    from mcr.data.contract import read_dataset, write_dataset

    write_dataset(media_dataset(), tmp_path / "data")
    streamed = read_dataset(tmp_path / "data", memory_budget_gb=0)
    assert streamed.train.source is not None
    result = train_run(streamed, "joint", config(2), 0, tmp_path / "run")
    assert all(math.isfinite(r["train_loss"]) for r in result.history)


def test_compiled_forward_trains_like_eager(tmp_path):
    data = media_dataset(96)
    eager = train_run(data, "joint", config(2), 0, tmp_path / "eager")
    common = {**to_mapping(config().common), "epochs": 2, "compile": True}
    compiled_config = RunConfig.from_params({"train": {
        "common": common, "model": to_mapping(config().model), "methods": {},
    }})  # fmt: skip
    compiled = train_run(data, "joint", compiled_config, 0, tmp_path / "compiled")
    first = [r["train_loss"] for r in (eager.history[0], compiled.history[0])]
    assert math.isfinite(first[1]) and first[1] == pytest.approx(first[0], rel=0.05)


def test_the_gpu_benchmark_runs_on_cuda_and_prints_its_figures():
    """The figures themselves are targets of the benchmark, not assertions of a test."""
    done = subprocess.run(
        [sys.executable, "benchmarks/gpu_throughput.py", "--device", "cuda", "--steps", "5"],
        cwd=ROOT, capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    last = done.stdout.strip().splitlines()[-1]
    ratio, wait = (float(part.split("=")[1]) for part in last.split(";"))
    assert ratio > 0 and 0 <= wait < 1, last

"""What one MCR training step costs next to joint training, and what in-memory batching saves.

The MCR paper claims that perturbing modalities by *permuting* their latents within the batch
"avoids extra forward passes": the ``K`` permutations reuse the latents (and, with linear late
fusion, the per-modality head contributions ``W_m z_m``) of the one forward pass the step makes
anyway, so the regulariser adds only a gather and a head-sized sum over ``K * B`` rows. This
script measures that claim on the library's own code, one training step at a time, built exactly
as ``mcr.training.loop.fit`` runs a step (forward, ``method.loss``, ``zero_grad``, backward,
``method.after_backward``, Adam step; bf16 autocast on CUDA, as ``fit`` does by default):

1. Step time of joint training, MCR (K = 32 permutations, B = 32, paper defaults otherwise) and
   MCR with the released code's extra eval-mode encoder pass (``released_extra_pass=True``), for
   (a) tiny MLP encoders on two 100-d vector modalities and (b) the in-repo ResNet-18 encoder
   (~11.2M parameters per modality) on two image-like ``(1, 64, 64)`` modalities. Warm-up steps
   first; the cases are then interleaved round by round (rotating the order) so drift in machine
   load hits them alike; medians and inter-quartile ranges are reported. Target: the ResNet-18
   ratio mcr/joint <= 1.10 (the encoders dominate, so the permutation game should be nearly free),
   while the extra-pass variant should cost roughly one more encoder forward and backward.
2. One epoch of joint training over cached features (20,000 samples x two 512-d float32
   modalities, batch 64, MLP encoders), (i) our way -- tensors already in memory, one
   ``torch.randperm`` per epoch and tensor indexing, via ``mcr.training.fit`` itself and via a
   replica of its batch drawing -- against (ii) a conventional per-sample ``Dataset`` returning a
   dict per sample + ``DataLoader(batch_size=64, shuffle=True, num_workers=0)`` with the default
   collate (``drop_last=True`` so both ways take the same number of optimiser steps).

Usage: ``python benchmarks/step_overhead.py [--repeats N] [--quick]``. The last line printed is
``mcr_step/joint_step = <ratio>`` for the ResNet-18 case.
"""

from __future__ import annotations

import argparse
import contextlib
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from mcr.data.dataset import DatasetInfo, MultimodalDataset, Split
from mcr.methods import Batch, Method, SetupContext, create_method
from mcr.models import ModelConfig, ModelSpec, MultimodalModel
from mcr.runtime import epoch_generator, resolve_device
from mcr.training import loop

MODALITIES = ("audio", "video")
NUM_CLASSES = 6  # CREMA-D
SEED = 0


# -- building blocks, as the training loop uses them -------------------------------------------


@dataclass
class StepCase:
    """One (model, method, optimiser) triple, stepped exactly as ``fit`` steps it."""

    label: str
    model: MultimodalModel
    method: Method
    optimizer: torch.optim.Optimizer


def make_optimizer(model: MultimodalModel, method: Method) -> torch.optim.Optimizer:
    """The optimiser ``fit`` builds (Adam with the ``TrainConfig`` defaults)."""
    config = loop.TrainConfig()
    aux = method.auxiliary()
    params = [p for p in model.parameters() if p.requires_grad]
    params += list(aux.parameters()) if aux is not None else []
    return torch.optim.Adam(
        params,
        lr=config.lr,
        betas=(0.9, 0.999),
        eps=config.adam_eps,
        weight_decay=config.weight_decay,
    )


def make_case(
    label: str,
    info: DatasetInfo,
    encoder: dict[str, Any] | ModelConfig,
    method_name: str,
    method_params: dict[str, Any],
    device: torch.device,
) -> StepCase:
    """One case; ``encoder`` is every modality's encoder, or a whole ``ModelConfig``."""
    torch.manual_seed(SEED)  # every case starts from the same weights
    config = encoder if isinstance(encoder, ModelConfig) else ModelConfig(encoder=encoder)
    model = MultimodalModel(ModelSpec.create(info, config)).to(device)
    if device.type == "cuda":  # train_run's default (TrainConfig.channels_last)
        model = model.to(memory_format=torch.channels_last)
    method = create_method(method_name, method_params, info)
    method.prepare(model, SetupContext(seed=SEED, device=device))
    method.set_train_mode(model)
    return StepCase(label, model, method, make_optimizer(model, method))


def autocast_for(device: torch.device) -> contextlib.AbstractContextManager[Any]:
    """``fit``'s autocast: bf16 on CUDA (``TrainConfig.bf16`` defaults to True), off on CPU."""
    return torch.autocast("cuda", torch.bfloat16, enabled=device.type == "cuda")


def train_step(case: StepCase, batch: Batch, device: torch.device) -> None:
    """The body of ``fit``'s step loop (no gradient clipping: ``grad_clip_norm`` is 0)."""
    model, method, optimizer = case.model, case.method, case.optimizer
    with autocast_for(device):
        out = model(batch.inputs)
        losses = method.loss(model, batch, out)
    optimizer.zero_grad(set_to_none=True)
    losses.total.backward()
    method.after_backward(model, batch, out)
    optimizer.step()


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], None], device: torch.device) -> float:
    synchronize(device)
    tic = time.perf_counter()
    fn()
    synchronize(device)
    return time.perf_counter() - tic


def median_iqr(samples: Sequence[float]) -> tuple[float, float, float]:
    q25, q50, q75 = np.percentile(np.asarray(samples), [25, 50, 75])
    return float(q50), float(q25), float(q75)


# -- 1. step overhead --------------------------------------------------------------------------


def random_batches(
    info: DatasetInfo, batch_size: int, count: int, device: torch.device
) -> list[Batch]:
    gen = torch.Generator().manual_seed(SEED)
    return [
        Batch(
            {
                m: torch.randn(batch_size, *info.shapes[m], generator=gen).to(device)
                for m in info.modalities
            },
            torch.randint(0, info.num_classes, (batch_size,), generator=gen).to(device),
        )
        for _ in range(count)
    ]


def step_benchmark(
    name: str,
    shape: tuple[int, ...],
    encoder: dict[str, Any],
    batch_size: int,
    warmup: int,
    repeats: int,
    device: torch.device,
) -> dict[str, float]:
    """Median step seconds of joint / mcr / mcr + extra pass; prints one table."""
    info = DatasetInfo(
        name=name,
        task="classification",
        num_classes=NUM_CLASSES,
        modalities=MODALITIES,
        shapes={m: shape for m in MODALITIES},
    )
    mcr_params: dict[str, Any] = {"num_permutations": 32}
    cases = [
        make_case("joint", info, encoder, "joint", {}, device),
        make_case("mcr", info, encoder, "mcr", mcr_params, device),
        make_case(
            "mcr_extra_pass",
            info,
            encoder,
            "mcr",
            {**mcr_params, "released_extra_pass": True},
            device,
        ),
    ]
    batches = random_batches(info, batch_size, 4, device)
    params = sum(p.numel() for p in cases[0].model.encoders[MODALITIES[0]].parameters())
    times: dict[str, list[float]] = {c.label: [] for c in cases}
    for case in cases:
        for i in range(warmup):
            train_step(case, batches[i % len(batches)], device)
    for r in range(repeats):
        batch = batches[r % len(batches)]
        for case in cases[r % len(cases) :] + cases[: r % len(cases)]:  # rotate the order
            times[case.label].append(
                timed(lambda c=case, b=batch: train_step(c, b, device), device)
            )
    medians = {label: median_iqr(ts)[0] for label, ts in times.items()}
    print()
    print(
        f"[{name}] encoder {encoder['name']}, {params / 1e6:.3f}M params/modality, "
        f"inputs 2 x {shape}, B={batch_size}, K=32, {warmup} warm-up + {repeats} timed steps"
    )
    print(
        f"{'case':<16} {'median ms':>10} {'q25 ms':>10} {'q75 ms':>10} {'IQR ms':>9} "
        f"{'x joint':>8}"
    )
    for label, ts in times.items():
        med, q25, q75 = median_iqr(ts)
        print(
            f"{label:<16} {med * 1e3:>10.2f} {q25 * 1e3:>10.2f} {q75 * 1e3:>10.2f} "
            f"{(q75 - q25) * 1e3:>9.2f} {med / medians['joint']:>8.3f}"
        )
    return medians


# -- 2. epoch over cached features -------------------------------------------------------------


class PerSampleDataset(Dataset):
    """The conventional way: one dict of tensors per sample, batched by the default collate."""

    def __init__(self, split: Split) -> None:
        self.inputs = split.inputs
        self.labels = split.labels

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {**{m: x[i] for m, x in self.inputs.items()}, "label": self.labels[i]}


def make_split(name: str, n: int, dim: int, gen: torch.Generator) -> Split:
    return Split(
        name=name,
        inputs={m: torch.randn(n, dim, generator=gen) for m in MODALITIES},
        labels=torch.randint(0, NUM_CLASSES, (n,), generator=gen),
        sample_ids=np.arange(n),
    )


def in_memory_batches(
    split: Split, batch_size: int, epoch: int, device: torch.device
) -> Iterator[Batch]:
    """``fit``'s batch drawing: tensors on the device, one ``randperm`` per epoch, drop_last."""
    train_x = {m: x.to(device) for m, x in split.inputs.items()}
    train_y = split.labels.to(device)
    order = torch.randperm(len(split), generator=epoch_generator(SEED, epoch)).to(device)
    for step in range(max(1, len(split) // batch_size)):
        idx = order[step * batch_size : (step + 1) * batch_size]
        yield Batch({m: x[idx] for m, x in train_x.items()}, train_y[idx])


def loader_batches(loader: DataLoader, device: torch.device) -> Iterator[Batch]:
    for item in loader:
        labels = item.pop("label")
        yield Batch({m: x.to(device) for m, x in item.items()}, labels.to(device))


def drain(batches: Iterator[Batch], device: torch.device) -> float:
    """Seconds to draw every batch of an epoch without training on it."""
    synchronize(device)
    tic = time.perf_counter()
    for batch in batches:
        for x in batch.inputs.values():
            x.sum()  # touch the data, as a step would
    synchronize(device)
    return time.perf_counter() - tic


def run_epoch(case: StepCase, batches: Iterator[Batch], device: torch.device) -> float:
    synchronize(device)
    tic = time.perf_counter()
    for batch in batches:
        train_step(case, batch, device)
    synchronize(device)
    return time.perf_counter() - tic


def epoch_benchmark(
    n: int, dim: int, batch_size: int, epochs: int, device: torch.device
) -> dict[str, float]:
    gen = torch.Generator().manual_seed(SEED)
    train, val = make_split("train", n, dim, gen), make_split("val", 1000, dim, gen)
    data = MultimodalDataset(
        info=DatasetInfo(
            name="cached_features",
            task="classification",
            num_classes=NUM_CLASSES,
            modalities=MODALITIES,
            shapes={m: (dim,) for m in MODALITIES},
        ),
        train=train,
        val=val,
        test=val,
    )
    encoder = {"name": "mlp"}
    config = loop.TrainConfig(epochs=1, batch_size=batch_size, progress=False)
    loader = DataLoader(
        PerSampleDataset(train), batch_size=batch_size, shuffle=True, num_workers=0, drop_last=True
    )
    fit_case = make_case("fit", data.info, encoder, "joint", {}, device)
    replica_case = make_case("replica", data.info, encoder, "joint", {}, device)
    loader_case = make_case("loader", data.info, encoder, "joint", {}, device)

    def fit_epoch(epoch: int, out_dir: str) -> float:
        """(i-a) the library's own loop; ``train_seconds`` excludes validation/checkpoints."""
        result = loop.fit(
            fit_case.model, fit_case.method, data.train, data.val, config, SEED + epoch,
            out_dir, resume=False,
        )  # fmt: skip
        return result.history[0]["train_seconds"]

    ways: dict[str, Callable[[int, str], float]] = {
        "fit (in-memory)": fit_epoch,
        # (i-b) the same batch drawing, stepped by ``train_step`` like (ii)
        "replica (in-memory)": lambda e, _: run_epoch(
            replica_case, in_memory_batches(train, batch_size, e, device), device
        ),
        # (ii) per-sample Dataset + DataLoader with the default collate
        "DataLoader": lambda e, _: run_epoch(loader_case, loader_batches(loader, device), device),
        # batch drawing alone, no training step: the part the two ways differ in
        "draw only (in-memory)": lambda e, _: drain(
            in_memory_batches(train, batch_size, e, device), device
        ),
        "draw only (DataLoader)": lambda e, _: drain(loader_batches(loader, device), device),
    }
    times: dict[str, list[float]] = {label: [] for label in ways}
    labels = list(ways)
    with tempfile.TemporaryDirectory() as tmp:
        for way in ways.values():  # one warm-up epoch each
            way(0, tmp)
        for e in range(1, epochs + 1):  # interleaved, rotating order: load drift hits all alike
            for label in labels[e % len(labels) :] + labels[: e % len(labels)]:
                times[label].append(ways[label](e, tmp))
    steps = max(1, n // batch_size)
    medians = {label: median_iqr(ts)[0] for label, ts in times.items()}
    print()
    print(
        f"[epoch over cached features] {n} samples x 2 x {dim}-d float32, batch {batch_size} "
        f"({steps} steps), MLP encoders, joint; 1 warm-up + {epochs} timed epochs"
    )
    print(
        f"{'way':<23} {'median s':>9} {'q25 s':>8} {'q75 s':>8} {'ms/step':>8} "
        f"{'DataLoader/this':>16}"
    )
    for label, ts in times.items():
        med, q25, q75 = median_iqr(ts)
        reference = medians["draw only (DataLoader)" if "draw" in label else "DataLoader"]
        print(
            f"{label:<23} {med:>9.3f} {q25:>8.3f} {q75:>8.3f} {med / steps * 1e3:>8.2f} "
            f"{reference / med:>16.2f}"
        )
    print(
        f"speed-up of in-memory batching over the DataLoader: "
        f"{medians['DataLoader'] / medians['fit (in-memory)']:.2f}x per epoch (fit), "
        f"{medians['DataLoader'] / medians['replica (in-memory)']:.2f}x (replica), "
        f"{medians['draw only (DataLoader)'] / medians['draw only (in-memory)']:.1f}x "
        f"batch drawing alone"
    )
    return medians


# -- main --------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--repeats",
        type=int,
        default=None,
        help="timed ResNet-18 steps per case (MLP: 10x as many; default 9, --quick 3)",
    )
    parser.add_argument(
        "--quick", action="store_true", help="fewer repeats and a 5,000-sample epoch (a smoke run)"
    )
    args = parser.parse_args(argv)
    repeats = args.repeats if args.repeats is not None else (3 if args.quick else 9)
    if repeats < 1:
        parser.error("--repeats must be >= 1")
    device = resolve_device("auto")
    started = time.perf_counter()
    gpu = f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else ""
    print("MCR step overhead benchmark")
    print(f"torch {torch.__version__}, device {device}{gpu}, threads {torch.get_num_threads()}")

    mlp = step_benchmark(
        "mlp", (100,), {"name": "mlp"}, 32, warmup=20, repeats=10 * repeats, device=device
    )
    resnet = step_benchmark(
        "resnet18",
        (1, 64, 64),
        {"name": "resnet18"},
        32,
        warmup=2 if args.quick else 3,
        repeats=repeats,
        device=device,
    )
    epoch_benchmark(
        5_000 if args.quick else 20_000, 512, 64, epochs=1 if args.quick else 3, device=device
    )

    print()
    print(f"{'ratio':<26} {'mlp':>8} {'resnet18':>9}")
    for label in ("mcr", "mcr_extra_pass"):
        print(
            f"{label + '/joint':<26} {mlp[label] / mlp['joint']:>8.3f} "
            f"{resnet[label] / resnet['joint']:>9.3f}"
        )
    print(f"total wall time {time.perf_counter() - started:.1f} s")
    print(f"mcr_step/joint_step = {resnet['mcr'] / resnet['joint']:.3f}")


if __name__ == "__main__":
    main()

"""Where the loop's training batches come from: tensors in memory, or a stream from disk.

Both give the loop the same thing, ``steps`` full batches per epoch (``drop_last``: no 1-row
batch reaches batch norm) on the model's device, in an order fixed by (seed, epoch):

* :class:`InMemoryBatches` moves the split to the device once and draws a seeded permutation of
  all rows per epoch -- exact global shuffling, no copies; the default for every dataset that
  fits the memory budget.
* :class:`StreamedBatches` reads a split left on disk (``Split.source``, a dataset larger than
  ``train.common.memory_budget_gb``) with :class:`mcr.data.stream.ParquetStream`: a window of row
  groups shuffled together, read ahead in a thread, pinned and copied asynchronously on CUDA.
  Memory stays at a few windows whatever the cache's size.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch

from mcr.data.dataset import Split
from mcr.data.stream import ParquetStream, to_device
from mcr.methods.base import Batch
from mcr.runtime import epoch_generator
from mcr.training.config import TrainConfig


class InMemoryBatches:
    def __init__(
        self, split: Split, modalities: Sequence[str], config: TrainConfig, seed: int,
        device: torch.device,
    ) -> None:  # fmt: skip
        self.x = {m: split.inputs[m].to(device) for m in modalities}
        self.y = split.labels.to(device)
        self.batch_size, self.seed, self.device = config.batch_size, seed, device
        self.steps = max(1, len(split) // config.batch_size)

    def epoch(self, epoch: int) -> Iterator[Batch]:
        order = torch.randperm(len(self.y), generator=epoch_generator(self.seed, epoch))
        order = order.to(self.device)
        for step in range(self.steps):
            idx = order[step * self.batch_size : (step + 1) * self.batch_size]
            yield Batch({m: x[idx] for m, x in self.x.items()}, self.y[idx])


class StreamedBatches:
    def __init__(
        self, split: Split, modalities: Sequence[str], config: TrainConfig, seed: int,
        device: torch.device,
    ) -> None:  # fmt: skip
        assert split.source is not None
        self.stream = ParquetStream(
            split.source, config.batch_size, seed=seed, shuffle=True, drop_last=True,
            window=config.stream_window, prefetch=config.stream_prefetch,
            pin_memory=device.type == "cuda", modalities=modalities,
        )  # fmt: skip
        self.device = device
        self.steps = len(self.stream)
        if self.steps == 0:
            raise ValueError(
                f"{split.source}: {len(split)} rows, fewer than one batch of "
                f"{config.batch_size}; lower train.common.batch_size"
            )

    def epoch(self, epoch: int) -> Iterator[Batch]:
        for batch in self.stream.epoch(epoch):
            batch = to_device(batch, self.device)
            yield Batch(batch.inputs, batch.labels)


def training_batches(
    split: Split, modalities: Sequence[str], config: TrainConfig, seed: int, device: torch.device
) -> InMemoryBatches | StreamedBatches:
    """The batch source for ``split``: streamed when it was left on disk, else in memory."""
    source = StreamedBatches if split.source is not None else InMemoryBatches
    return source(split, modalities, config, seed, device)

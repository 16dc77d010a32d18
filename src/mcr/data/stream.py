"""Batches from a contract Parquet file with bounded memory: for caches larger than memory.

The in-memory path (:func:`mcr.data.contract.read_dataset`) loads every split into one tensor per
modality; a media cache of the paper's benchmarks at full size does not fit that way (CREMA-D's
frames alone are ~3.4 GB). :class:`ParquetStream` reads a split row group by row group instead:

* an epoch visits the row groups in a seeded random order, ``window`` of them at a time, and
  shuffles the rows of a window (plus the rows left over from the previous one), so the shuffle is
  local but every row is seen exactly once per epoch and the order depends only on (seed, epoch);
* ``prefetch`` windows are read ahead in a background thread (Parquet decoding releases the GIL),
  so at most ``prefetch + 1`` windows are in memory whatever the file's size;
* batches come out as CPU tensors in the file's dtypes (uint8 frames, float16 spectrograms),
  pinned when asked, for an asynchronous copy to the device (:func:`to_device`); conversion and
  augmentation happen there (``resnet18_frames``).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class StreamBatch:
    """One batch: modality tensors, labels and the rows' sample ids."""

    inputs: dict[str, torch.Tensor]
    labels: torch.Tensor
    sample_ids: np.ndarray

    def __len__(self) -> int:
        return int(self.labels.shape[0])


class ParquetStream:
    """Shuffled batches of one contract Parquet file, read ``window`` row groups at a time."""

    def __init__(
        self,
        path: str | Path,
        batch_size: int,
        *,
        seed: int = 0,
        shuffle: bool = True,
        window: int = 4,
        prefetch: int = 2,
        pin_memory: bool = False,
        drop_last: bool = False,
        modalities: Sequence[str] | None = None,
    ) -> None:
        import json

        import pyarrow.parquet as pq

        if batch_size < 1 or window < 1 or prefetch < 0:
            raise ValueError(
                f"batch_size={batch_size}, window={window}, prefetch={prefetch}: expected "
                "batch_size >= 1, window >= 1, prefetch >= 0"
            )
        self.path = Path(path)
        self.file = pq.ParquetFile(self.path)
        meta = json.loads(self.file.schema_arrow.metadata[b"mcr"])
        shapes = {m: tuple(s) for m, s in meta["modalities"].items()}
        unknown = sorted(set(modalities or ()) - set(shapes))
        if unknown:
            raise ValueError(f"{self.path}: no modality {unknown[0]!r}; it has {sorted(shapes)}")
        self.shapes = {m: shapes[m] for m in (modalities or shapes)}
        self.batch_size, self.seed, self.shuffle = batch_size, seed, shuffle
        self.window, self.prefetch = window, prefetch
        self.pin_memory, self.drop_last = pin_memory, drop_last
        self.num_rows = self.file.metadata.num_rows

    def __len__(self) -> int:
        full, rest = divmod(self.num_rows, self.batch_size)
        return full if self.drop_last or not rest else full + 1

    def _windows(self, epoch: int) -> list[list[int]]:
        groups = np.arange(self.file.num_row_groups)
        if self.shuffle:
            groups = np.random.default_rng([self.seed, epoch]).permutation(groups)
        return [groups[i : i + self.window].tolist() for i in range(0, len(groups), self.window)]

    def _read(self, groups: list[int]) -> dict[str, np.ndarray]:
        """The rows of ``groups``: ids, labels and each modality as ``(n, *shape)`` arrays.

        One row group is decoded at a time into arrays allocated for the whole window: Parquet
        decodes a list column through per-value level buffers several times the data's size, so
        decoding the window at once would multiply the loader's memory.
        """
        from mcr.data.contract.columns import modality_rows

        sizes = [self.file.metadata.row_group(g).num_rows for g in groups]
        n = sum(sizes)
        out: dict[str, np.ndarray] = {}
        at = 0
        for group, size in zip(groups, sizes, strict=True):
            table = self.file.read_row_group(group, columns=["sample_id", "label", *self.shapes])
            parts = {
                "sample_id": table.column("sample_id").to_numpy(zero_copy_only=False),
                "label": table.column("label").to_numpy(),
            }
            for m, shape in self.shapes.items():
                parts[m] = modality_rows(table, m, shape)
            del table
            for key, part in parts.items():
                if key not in out:
                    out[key] = np.empty((n, *part.shape[1:]), part.dtype)
                out[key][at : at + size] = part
            at += size
        return out

    def memory_bound(self) -> int:
        """Bytes of data the stream holds at most: ``prefetch`` windows queued, one being read,
        one being served and its carried-over rows (plus one row group's decoding buffers)."""
        return (self.prefetch + 3) * self.window * row_group_bytes(self.path)

    def _read_ahead(self, epoch: int) -> Iterator[dict[str, np.ndarray]]:
        """The epoch's windows, read ``prefetch`` ahead in a background thread."""
        windows = self._windows(epoch)
        if self.prefetch == 0:
            yield from (self._read(w) for w in windows)
            return
        ready: queue.Queue[Any] = queue.Queue(maxsize=self.prefetch)
        stop = threading.Event()

        def reader() -> None:
            try:
                for w in windows:
                    if stop.is_set():
                        return
                    ready.put(self._read(w))
                ready.put(None)
            except Exception as exc:  # noqa: BLE001 -- handed to the consumer, raised there
                ready.put(exc)

        thread = threading.Thread(target=reader, daemon=True, name=f"read {self.path.name}")
        thread.start()
        try:
            while (item := ready.get()) is not None:
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            stop.set()
            while thread.is_alive():  # unblock a reader waiting on a full queue
                try:
                    ready.get_nowait()
                except queue.Empty:
                    thread.join(timeout=0.05)

    def epoch(self, epoch: int = 0) -> Iterator[StreamBatch]:
        """The batches of one epoch, in an order that depends only on (seed, epoch)."""
        rng = np.random.default_rng([self.seed, epoch, 1])
        carry: dict[str, np.ndarray] | None = None
        for window in self._read_ahead(epoch):
            if carry is not None:
                window = {k: np.concatenate([carry[k], window[k]]) for k in window}
            n = len(window["label"])
            order = rng.permutation(n) if self.shuffle else np.arange(n)
            full = (n // self.batch_size) * self.batch_size
            for start in range(0, full, self.batch_size):
                yield self._batch(window, order[start : start + self.batch_size])
            carry = {k: v[order[full:]] for k, v in window.items()} if full < n else None
        if carry is not None and len(carry["label"]) and not self.drop_last:
            yield self._batch(carry, np.arange(len(carry["label"])))

    def _batch(self, window: dict[str, np.ndarray], rows: np.ndarray) -> StreamBatch:
        import torch

        def tensor(x: np.ndarray) -> torch.Tensor:
            t = torch.from_numpy(np.ascontiguousarray(x))
            return t.pin_memory() if self.pin_memory else t

        return StreamBatch(
            inputs={m: tensor(window[m][rows]) for m in self.shapes},
            labels=tensor(_label_dtype(window["label"][rows])),
            sample_ids=window["sample_id"][rows],
        )


def _label_dtype(labels: np.ndarray) -> np.ndarray:
    """int64 class ids, float32 regression targets: what the in-memory splits hold."""
    return labels.astype(np.int64 if labels.dtype.kind in "iu" else np.float32)


def to_device(batch: StreamBatch, device: torch.device | str) -> StreamBatch:
    """``batch`` on ``device``; from pinned memory the copies are asynchronous."""
    return StreamBatch(
        inputs={m: x.to(device, non_blocking=True) for m, x in batch.inputs.items()},
        labels=batch.labels.to(device, non_blocking=True),
        sample_ids=batch.sample_ids,
    )


def row_group_bytes(path: str | Path) -> int:
    """Uncompressed bytes of the largest row group: a window holds ``window`` of them."""
    import pyarrow.parquet as pq

    meta = pq.ParquetFile(path).metadata
    return max((meta.row_group(i).total_byte_size for i in range(meta.num_row_groups)), default=0)


__all__ = ["ParquetStream", "StreamBatch", "row_group_bytes", "to_device"]

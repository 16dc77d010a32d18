"""A modality column left on disk: what a split holds when its file is too large for memory.

:class:`ParquetColumn` stands where an in-memory split holds a tensor, for the access patterns
evaluation and the methods use on whole splits: ``len``, ``shape`` and contiguous slices
``column[start:stop]`` (read from the row groups that cover them, as a CPU tensor in the file's
dtype). Training draws shuffled batches through :class:`mcr.data.stream.ParquetStream` instead.
Anything that needs the whole column at once (``.to(device)``, fancy indexing) is an error that
says so, rather than a silent load of a cache that does not fit.
"""

from __future__ import annotations

import bisect
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

if TYPE_CHECKING:
    import torch


def modality_rows(table: pa.Table, name: str, shape: tuple[int, ...]) -> np.ndarray:
    """Modality column ``name`` of a decoded table as ``(rows, *shape)`` (fixed-size or plain
    lists alike): how a streamed read turns Arrow data into arrays."""
    flat = pc.list_flatten(table.column(name)).to_numpy(zero_copy_only=False)
    return flat.reshape(-1, *shape)


class ParquetColumn:
    """Modality ``name`` of the contract file ``path``, read slice by slice."""

    def __init__(self, path: str | Path, name: str, shape: tuple[int, ...]) -> None:
        self.path, self.name, self.row_shape = Path(path), name, tuple(shape)
        self._file = pq.ParquetFile(self.path)
        meta = self._file.metadata
        sizes = [meta.row_group(i).num_rows for i in range(meta.num_row_groups)]
        self._starts = np.concatenate([[0], np.cumsum(sizes)]).astype(int).tolist()

    def __len__(self) -> int:
        return self._starts[-1]

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self), *self.row_shape)

    def _read(self, start: int, stop: int) -> np.ndarray:
        """Rows ``start..stop-1``, decoded one row group at a time into one array: Parquet
        decodes list columns through level buffers several times the data's size, so reading
        many groups at once would multiply the memory a slice costs."""
        first = bisect.bisect_right(self._starts, start) - 1
        last = bisect.bisect_left(self._starts, stop)
        out = np.empty((stop - start, *self.row_shape), self._dtype())
        for group in range(first, last):
            table = self._file.read_row_group(group, columns=[self.name])
            rows = modality_rows(table, self.name, self.row_shape)
            g0 = self._starts[group]
            lo, hi = max(start, g0), min(stop, g0 + len(rows))
            out[lo - start : hi - start] = rows[lo - g0 : hi - g0]
        return out

    def __getitem__(self, key: Any) -> torch.Tensor:
        import torch

        if not isinstance(key, slice):
            raise TypeError(
                f"{self.path}: modality {self.name!r} is streamed from disk (the dataset is "
                "larger than train.common.memory_budget_gb); only contiguous slices "
                f"column[start:stop] can be read, not {type(key).__name__} indexing"
            )
        start, stop, step = key.indices(len(self))
        if step != 1:
            raise TypeError(f"{self.path}: column {self.name!r} slices take step 1, not {step}")
        return torch.from_numpy(self._read(start, max(start, stop)))

    def _dtype(self) -> np.dtype:
        return self._file.schema_arrow.field(self.name).type.value_type.to_pandas_dtype()

    def to(self, *args: Any, **kwargs: Any) -> torch.Tensor:
        raise TypeError(
            f"{self.path}: modality {self.name!r} ({len(self)} rows) is streamed from disk and "
            "is not moved to a device whole; read it in slices (column[start:stop]) or set "
            "train.common.loader: memory"
        )

    def __repr__(self) -> str:
        return f"ParquetColumn({str(self.path)!r}, {self.name!r}, shape={self.shape})"

"""Reading a contract folder: check everything, then load each modality into one tensor.

A dataset whose modality data exceed the memory budget is checked row group by row group and
left on disk instead: its splits hold :class:`~mcr.data.contract.columns.ParquetColumn` inputs
and ``Split.source`` names the file, which training streams (:mod:`mcr.data.stream`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from mcr.data.contract.columns import ParquetColumn
from mcr.data.contract.spec import DataContractError
from mcr.data.contract.validate import (
    CheckedFile,
    check_across,
    check_file_by_row_group,
    check_table,
)
from mcr.data.dataset import SPLITS, DatasetInfo, MultimodalDataset, Split

#: Datasets up to this many GiB of (uncompressed) data are loaded into memory by default.
MEMORY_BUDGET_GB = 4.0


def data_bytes(paths: list[Path]) -> int:
    """Uncompressed bytes of the files' row groups, from their Parquet footers (no data read)."""
    total = 0
    for path in paths:
        meta = pq.ParquetFile(path).metadata
        total += sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
    return total


def read_dataset(
    folder: str | Path,
    name: str | None = None,
    *,
    memory_budget_gb: float = MEMORY_BUDGET_GB,
) -> MultimodalDataset:
    """Check the whole contract on ``folder`` and load it into contiguous tensors.

    The name is ``name``, else the metadata's name, else the folder's name. When the three files
    hold more than ``memory_budget_gb`` GiB of data (``math.inf``: always load, ``0``: never),
    the splits are streamed instead (see the module docstring). Raises one
    :class:`DataContractError` listing every violation found.
    """
    folder, errs, files = Path(folder), [], {}
    paths = {split: folder / f"{split}.parquet" for split in SPLITS}
    present = [path for path in paths.values() if path.is_file()]
    try:
        streamed = data_bytes(present) > memory_budget_gb * 2**30
    except (pa.ArrowException, OSError):
        streamed = False  # the per-file read below reports which file is unreadable
    for split, path in paths.items():
        if path not in present:
            errs.append(f"{path.name}: missing file; expected {path}")
            continue
        try:
            files[split] = _check_file(path, streamed, errs)
        except (pa.ArrowException, OSError) as e:
            errs.append(f"{path.name}: cannot be read as Parquet ({e})")
    check_across(list(files.values()), errs)
    if errs:
        raise DataContractError(errs)
    meta = files["train"].meta
    info = DatasetInfo(
        name=name or meta["name"] or folder.resolve().name,
        task=meta["task"],
        num_classes=meta["num_classes"],
        modalities=tuple(meta["modalities"]),
        shapes={m: tuple(s) for m, s in meta["modalities"].items()},
    )
    splits = {}
    for split, f in files.items():
        y = f.labels if info.task == "classification" else f.labels.astype(np.float32)
        if streamed:
            inputs = {m: ParquetColumn(paths[split], m, info.shapes[m]) for m in info.modalities}
        else:
            inputs = {
                m: torch.from_numpy(f.flats[m].reshape(f.n, *info.shapes[m]))
                for m in info.modalities
            }
        splits[split] = Split(
            name=split,
            inputs=inputs,  # type: ignore[arg-type]
            labels=torch.from_numpy(y),
            sample_ids=f.ids,
            groups=f.groups,
            annotations=f.annotations,
            source=paths[split] if streamed else None,
        )
    return MultimodalDataset(info=info, **splits)


def _check_file(path: Path, streamed: bool, errs: list[str]) -> CheckedFile:
    if streamed:
        return check_file_by_row_group(path, errs)
    return check_table(path.name, pq.read_table(path), errs)


__all__ = ["MEMORY_BUDGET_GB", "data_bytes", "read_dataset"]

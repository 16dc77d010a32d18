"""Reading a contract folder: check everything, then load each modality into one tensor."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from mcr.data.contract.spec import DataContractError
from mcr.data.contract.validate import check_across, check_table
from mcr.data.dataset import SPLITS, DatasetInfo, MultimodalDataset, Split


def read_dataset(folder: str | Path, name: str | None = None) -> MultimodalDataset:
    """Check the whole contract on ``folder`` and load it into contiguous tensors.

    The name is ``name``, else the metadata's name, else the folder's name. Raises one
    :class:`DataContractError` listing every violation found.
    """
    folder, errs, files = Path(folder), [], {}
    for split in SPLITS:
        path = folder / f"{split}.parquet"
        if not path.is_file():
            errs.append(f"{path.name}: missing file; expected {path}")
            continue
        try:
            table = pq.read_table(path)
        except (pa.ArrowException, OSError) as e:
            errs.append(f"{path.name}: cannot be read as Parquet ({e})")
            continue
        files[split] = check_table(path.name, table, errs)
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
        splits[split] = Split(
            name=split,
            inputs={
                m: torch.from_numpy(f.flats[m].reshape(f.n, *info.shapes[m]))
                for m in info.modalities
            },
            labels=torch.from_numpy(y),
            sample_ids=f.ids,
            groups=f.groups,
            annotations=f.annotations,
        )
    return MultimodalDataset(info=info, **splits)

"""Writing a contract folder from in-memory tensors: the same checks as reading, then an atomic
write of every file, so whatever is written reads back."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from mcr.data.contract.spec import META_KEY, RESERVED, DataContractError, is_string
from mcr.data.contract.validate import check_across, check_table
from mcr.data.dataset import SPLITS, DatasetInfo, MultimodalDataset, Split
from mcr.io import atomic_paths


def _split_table(split: Split, info: DatasetInfo) -> pa.Table:
    """The Arrow table for one split, with the ``mcr`` metadata attached."""
    n, errs = len(split), []
    strings = {"sample_id": split.sample_ids, "group": split.groups, **split.annotations}
    cols: dict[str, pa.Array] = {
        c: pa.array(np.asarray(v).astype(str), pa.string())
        for c, v in strings.items()
        if v is not None
    }
    y = split.labels.detach().cpu().numpy()
    cols["label"] = pa.array(y.astype(np.int64 if info.task == "classification" else np.float64))
    for m in (*info.modalities, *(m for m in split.inputs if m not in info.modalities)):
        x, shape = split.inputs.get(m), tuple(info.shapes.get(m, ()))
        if x is None or m not in info.modalities or tuple(x.shape) != (n, *shape):
            got = "missing" if x is None else f"of shape {tuple(x.shape)}"
            want = f"({n}, *{shape})" if m in info.modalities else "not declared in info"
            errs.append(f"split {split.name!r}: modality {m!r} is {got}; expected {want}")
            continue
        flat = x.detach().to("cpu", torch.float32).contiguous().numpy().reshape(-1)
        cols[m] = pa.FixedSizeListArray.from_arrays(pa.array(flat), math.prod(shape))
    if clash := set(split.annotations) & {*RESERVED, *info.modalities}:
        errs.append(f"split {split.name!r}: annotation(s) {sorted(clash)} clash with columns")
    if lengths := {c: len(a) for c, a in cols.items() if len(a) != n}:
        errs.append(f"split {split.name!r}: column lengths {lengths}; expected {n} rows")
    if errs:
        raise DataContractError(errs)
    meta = {
        "name": info.name,
        "task": info.task,
        "num_classes": info.num_classes if info.task == "classification" else 1,
        "modalities": {m: list(info.shapes[m]) for m in info.modalities},
    }
    return pa.table(cols).replace_schema_metadata({META_KEY: json.dumps(meta).encode()})


def _write_atomic(tables: dict[Path, pa.Table]) -> None:
    """Write every table to a temp file beside its target, then move them all into place.

    A failure while writing leaves every target untouched and removes the temp files.
    """
    with atomic_paths(tables) as temps:
        for path, table in tables.items():
            # dictionaries only pay off for repetitive strings (groups, annotations)
            dict_cols = [
                c.name for c in table.schema if is_string(c.type) and c.name != "sample_id"
            ]
            pq.write_table(table, str(temps[path]), compression="zstd", use_dictionary=dict_cols)


def write_split(split: Split, info: DatasetInfo, path: Path) -> None:
    """Write one split to ``path`` atomically, refusing anything that breaks the contract."""
    path, errs = Path(path), []
    table = _split_table(split, info)
    check_table(path.name, table, errs)
    if errs:
        raise DataContractError(errs)
    _write_atomic({path: table})


def write_dataset(dataset: MultimodalDataset, folder: str | Path) -> None:
    """Write ``dataset`` as a contract folder; nothing is written if any check fails.

    The same checks as :func:`read_dataset` run first, so whatever is written reads back.
    """
    folder, errs = Path(folder), []
    tables = {s: _split_table(dataset.split(s), dataset.info) for s in SPLITS}
    files = [check_table(f"{s}.parquet", t, errs) for s, t in tables.items()]
    check_across(files, errs)
    if errs:
        raise DataContractError(errs)
    _write_atomic({folder / f"{s}.parquet": t for s, t in tables.items()})

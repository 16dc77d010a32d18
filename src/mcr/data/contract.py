"""The on-disk dataset contract: how to bring your own dataset.

A dataset is a folder holding ``train.parquet``, ``val.parquet`` and ``test.parquet``, one row
per sample, with these columns:

``sample_id`` (string)
    Unique within its file *and* across the three files (a sample lives in one split only).
``group`` (string, optional)
    Speaker, actor, subject, ... A group value may appear in one split only, so nobody's samples
    leak from training into evaluation.
``label``
    ``int64`` class ids in ``[0, num_classes)`` for classification; finite ``float64`` targets
    for regression.
``<modality>`` (one column per modality, named after it)
    ``fixed_size_list<float32>``: the sample's array flattened in C order, so its list size is
    the product of the modality's shape. A plain variable-length list is accepted when every row
    has exactly that length. NaN and inf are rejected.
any other string column
    An annotation (e.g. the synthetic set's ``info_group``): loaded into ``Split.annotations``
    for analysis, never shown to a model. Columns of any other type are rejected.

No value may be null and no split may be empty. Each file's Parquet schema metadata holds the
key ``mcr`` with a JSON object, identical in task, classes and modalities across the files::

    {"name": "my_set", "task": "classification", "num_classes": 7,
     "modalities": {"audio": [128], "video": [16, 512]}}

``task`` is ``"classification"`` (``num_classes >= 2``) or ``"regression"`` (``num_classes``
is 1); ``modalities`` maps each modality column to its per-sample shape, in the order models
see them. Writing one split by hand with pyarrow::

    cols = {"sample_id": ids, "label": labels,  # labels: int64 numpy array
            "audio": pa.FixedSizeListArray.from_arrays(pa.array(audio.ravel()), 128)}
    table = pa.table(cols).replace_schema_metadata({"mcr": json.dumps(meta)})
    pq.write_table(table, "my_set/train.parquet")

or build a :class:`~mcr.data.dataset.MultimodalDataset` and call :func:`write_dataset`.

:func:`read_dataset` checks the whole contract before loading anything and raises one
:class:`DataContractError` listing every violation (file, column, offending values, what was
expected), so a dataset is fixed in one pass instead of one error at a time. Checks and loading
are vectorised: each modality goes from Arrow straight into one contiguous tensor.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import torch

from mcr.data.dataset import SPLITS, DatasetInfo, MultimodalDataset, Split

META_KEY = b"mcr"
RESERVED = ("sample_id", "label", "group")
_LABEL_TYPES = {"classification": pa.int64(), "regression": pa.float64()}


class DataContractError(ValueError):
    """A dataset breaks the contract; ``violations`` holds one line per problem.

    All problems are reported at once because fixing a dataset one error per run is slow.
    """

    def __init__(self, violations: list[str]) -> None:
        self.violations = list(violations)
        lines = "\n".join(f"  - {v}" for v in self.violations)
        super().__init__(f"{len(self.violations)} data contract violation(s):\n{lines}")


@dataclass
class _File:
    """What the checks extracted from one file, kept so loading does not convert twice."""

    fname: str
    meta: dict | None
    n: int
    ids: np.ndarray | None = None
    groups: np.ndarray | None = None
    labels: np.ndarray | None = None
    flats: dict[str, np.ndarray] = field(default_factory=dict)
    annotations: dict[str, np.ndarray] = field(default_factory=dict)


def _ex(values: np.ndarray) -> str:
    """The first three values for a message, with ``...`` when there are more."""
    shown = ", ".join(repr(v) for v in np.asarray(values)[:3].tolist())
    return shown + (", ..." if len(values) > 3 else "")


def _at(ids: np.ndarray | None, rows: np.ndarray) -> str:
    """Where offending rows are: by ``sample_id`` when known, else by row index."""
    return f"at sample_id {_ex(ids[rows])}" if ids is not None else f"at row {_ex(rows)}"


def _np(col: pa.ChunkedArray) -> np.ndarray:
    """One fresh, writable numpy array from all chunks (a single copy, no per-row Python)."""
    parts = [c.to_numpy(zero_copy_only=False) for c in col.chunks]
    return np.concatenate(parts) if parts else col.combine_chunks().to_numpy(False).copy()


def _is_str(t: pa.DataType) -> bool:
    return pa.types.is_string(t) or pa.types.is_large_string(t)


def _parse_meta(fname: str, schema: pa.Schema, errs: list[str]) -> dict | None:
    """The ``mcr`` metadata of one file, or None (with violations added) when unusable."""
    where = f"{fname}: schema metadata key 'mcr'"
    raw = (schema.metadata or {}).get(META_KEY)
    if raw is None:
        errs.append(f"{where} is missing; expected JSON with name, task, num_classes, modalities")
        return None
    try:
        meta = json.loads(raw)
    except ValueError as e:
        errs.append(f"{where} is not valid JSON ({e})")
        return None
    if not isinstance(meta, dict):
        errs.append(f"{where} is {meta!r}; expected a JSON object")
        return None
    bad = []
    name, task, k, mods = (meta.get(key) for key in ("name", "task", "num_classes", "modalities"))
    if not isinstance(name, str):
        bad.append(f"'name' is {name!r}; expected a string")
    if task not in _LABEL_TYPES:
        bad.append(f"'task' is {task!r}; expected 'classification' or 'regression'")
    if task == "regression" and not (type(k) is int and k == 1):
        bad.append(f"'num_classes' is {k!r}; expected 1 for regression")
    elif task != "regression" and not (type(k) is int and k >= 2):
        bad.append(f"'num_classes' is {k!r}; expected an integer >= 2")
    if not isinstance(mods, dict) or not mods:
        bad.append(f"'modalities' is {mods!r}; expected a non-empty object {{name: [shape...]}}")
    else:
        for m, shape in mods.items():
            if m in RESERVED:
                bad.append(f"modality {m!r} uses a reserved column name ({', '.join(RESERVED)})")
            if not (
                isinstance(shape, list) and shape and all(type(d) is int and d > 0 for d in shape)
            ):
                bad.append(f"'modalities'[{m!r}] is {shape!r}; expected a list of positive ints")
    errs.extend(f"{where}: {b}" for b in bad)
    return None if bad else meta


def _check_label(f: _File, col: pa.ChunkedArray, errs: list[str]) -> None:
    task = f.meta["task"] if f.meta else None
    want = _LABEL_TYPES.get(task)
    if not (col.type == want if want else col.type in (pa.int64(), pa.float64())):
        expected = f"{want} for task {task!r}" if want else "int64 (class ids) or float64"
        errs.append(f"{f.fname}: column 'label' has type {col.type}; expected {expected}")
        return
    f.labels = y = _np(col)
    if y.dtype.kind == "f":
        bad, what, expected = ~np.isfinite(y), "NaN/inf", "finite targets"
    elif f.meta:
        k = f.meta["num_classes"]
        bad, what, expected = (y < 0) | (y >= k), "out-of-range", f"class ids in [0, {k})"
    else:
        return
    if bad.any():
        errs.append(
            f"{f.fname}: column 'label' has {int(bad.sum())} {what} value(s) {_ex(y[bad])} "
            f"{_at(f.ids, np.flatnonzero(bad))}; expected {expected}"
        )


def _check_modality(f: _File, m: str, col: pa.ChunkedArray, errs: list[str]) -> None:
    shape = f.meta["modalities"][m]
    size, t = math.prod(shape), col.type
    is_list = pa.types.is_list(t) or pa.types.is_large_list(t)
    if not (is_list or pa.types.is_fixed_size_list(t)) or t.value_type != pa.float32():
        errs.append(
            f"{f.fname}: column {m!r} has type {t}; expected fixed_size_list<float32>[{size}] "
            f"(modality of shape {shape})"
        )
        return
    row_len = size  # an empty variable-length column has nothing to contradict the shape
    if not is_list:
        row_len = t.list_size
    elif f.n:
        lengths = _np(pc.list_value_length(col))
        if (lengths != lengths[0]).any():
            errs.append(
                f"{f.fname}: column {m!r} is ragged (row lengths {_ex(np.unique(lengths))}, "
                f"wrong ones {_at(f.ids, np.flatnonzero(lengths != size))}); expected every "
                f"row to hold {size} floats (shape {shape})"
            )
            return
        row_len = int(lengths[0])
    if row_len != size:
        errs.append(
            f"{f.fname}: column {m!r} has list size {row_len}; expected {size}, the product "
            f"of the declared shape {shape}"
        )
        return
    f.flats[m] = flat = _np(pc.list_flatten(col))  # null floats become NaN: caught below
    bad = ~np.isfinite(flat)
    if bad.any():
        rows = np.unique(np.flatnonzero(bad) // size)
        errs.append(
            f"{f.fname}: column {m!r} has {int(bad.sum())} NaN/inf value(s) in {len(rows)} "
            f"row(s) {_at(f.ids, rows)}; expected finite float32"
        )


def _check_table(fname: str, table: pa.Table, errs: list[str]) -> _File:
    """Check everything that concerns one file alone; return what was extracted."""
    f = _File(fname, _parse_meta(fname, table.schema, errs), table.num_rows)
    if f.n == 0:
        errs.append(f"{fname}: split is empty (0 rows); expected at least one sample")
    modalities = list(f.meta["modalities"]) if f.meta else []
    for name in ["sample_id", "label", *modalities]:
        if name not in table.column_names:
            kind = " (modality declared in the 'mcr' metadata)" if name in modalities else ""
            errs.append(f"{fname}: missing column {name!r}{kind}")
    # sample_id first, so later messages can name offending samples by id
    for name in sorted(table.column_names, key=lambda c: c != "sample_id"):
        col = table.column(name)
        if pa.types.is_dictionary(col.type):  # e.g. a pandas categorical
            col = col.cast(col.type.value_type)
        if col.null_count:
            errs.append(f"{fname}: column {name!r} has {col.null_count} null(s); expected none")
        elif name == "label":
            _check_label(f, col, errs)
        elif name in modalities:
            _check_modality(f, name, col, errs)
        elif not _is_str(col.type):
            if name in RESERVED:
                errs.append(f"{fname}: column {name!r} has type {col.type}; expected string")
            elif f.meta:
                errs.append(
                    f"{fname}: column {name!r} has type {col.type}, which is not allowed; "
                    "declare it as a modality in the 'mcr' metadata or make it a string annotation"
                )
        elif name == "sample_id":
            f.ids = _np(col)
            uniq, counts = np.unique(f.ids.astype(str), return_counts=True)
            if (dup := uniq[counts > 1]).size:
                errs.append(
                    f"{fname}: column 'sample_id' has {dup.size} duplicated value(s) {_ex(dup)}; "
                    "expected unique ids"
                )
        elif name == "group":
            f.groups = _np(col)
        else:
            f.annotations[name] = _np(col)
    return f


def _check_across(files: list[_File], errs: list[str]) -> None:
    """Check what concerns several files: agreeing metadata, no shared samples or groups."""
    metas = [f for f in files if f.meta]
    for f in metas[1:]:
        ref = metas[0]
        for key in ("task", "num_classes", "modalities"):
            a, b = f.meta[key], ref.meta[key]
            if json.dumps(a) != json.dumps(b):  # unlike ==, sees a different modality order
                errs.append(
                    f"{f.fname}: metadata 'mcr' field {key!r} is {a!r} but {ref.fname} has "
                    f"{b!r}; expected all files to agree"
                )
    for a, b in combinations(files, 2):
        for col, x, y, rule in (
            ("sample_id", a.ids, b.ids, "a sample belongs to one split only"),
            ("group", a.groups, b.groups, "a group must not cross splits"),
        ):
            if x is not None and y is not None:
                common = np.intersect1d(x.astype(str), y.astype(str))
                if common.size:
                    errs.append(
                        f"{a.fname} and {b.fname}: column {col!r} has {common.size} value(s) in "
                        f"both splits: {_ex(common)}; expected none, {rule}"
                    )


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
        files[split] = _check_table(path.name, table, errs)
    _check_across(list(files.values()), errs)
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
    temps: dict[Path, Path] = {}
    try:
        for path, table in tables.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
            os.close(fd)
            temps[path] = Path(tmp)
            # dictionaries only pay off for repetitive strings (groups, annotations)
            dict_cols = [c.name for c in table.schema if _is_str(c.type) and c.name != "sample_id"]
            pq.write_table(table, tmp, compression="zstd", use_dictionary=dict_cols)
        for path, tmp in temps.items():
            os.replace(tmp, path)
    finally:
        for tmp in temps.values():
            tmp.unlink(missing_ok=True)


def write_split(split: Split, info: DatasetInfo, path: Path) -> None:
    """Write one split to ``path`` atomically, refusing anything that breaks the contract."""
    path, errs = Path(path), []
    table = _split_table(split, info)
    _check_table(path.name, table, errs)
    if errs:
        raise DataContractError(errs)
    _write_atomic({path: table})


def write_dataset(dataset: MultimodalDataset, folder: str | Path) -> None:
    """Write ``dataset`` as a contract folder; nothing is written if any check fails.

    The same checks as :func:`read_dataset` run first, so whatever is written reads back.
    """
    folder, errs = Path(folder), []
    tables = {s: _split_table(dataset.split(s), dataset.info) for s in SPLITS}
    files = [_check_table(f"{s}.parquet", t, errs) for s, t in tables.items()]
    _check_across(files, errs)
    if errs:
        raise DataContractError(errs)
    _write_atomic({folder / f"{s}.parquet": t for s, t in tables.items()})

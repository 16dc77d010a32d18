"""Every check of the contract, on Arrow tables: one file alone, then the files together.

Checks only append violations to a list (so a dataset's problems are reported all at once) and
keep what they converted (:class:`CheckedFile`), so loading does not convert twice.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from mcr.data.contract.spec import LABEL_TYPES, META_KEY, MODALITY_TYPES, RESERVED, is_string


@dataclass
class CheckedFile:
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
    if task not in LABEL_TYPES:
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


def _check_label(f: CheckedFile, col: pa.ChunkedArray, errs: list[str]) -> None:
    task = f.meta["task"] if f.meta else None
    want = LABEL_TYPES.get(task)
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


def _check_modality(f: CheckedFile, m: str, col: pa.ChunkedArray, errs: list[str]) -> None:
    shape = f.meta["modalities"][m]
    size, t = math.prod(shape), col.type
    is_list = pa.types.is_list(t) or pa.types.is_large_list(t)
    if not (is_list or pa.types.is_fixed_size_list(t)) or (
        t.value_type not in MODALITY_TYPES.values()
    ):
        errs.append(
            f"{f.fname}: column {m!r} has type {t}; expected fixed_size_list<float32>[{size}] "
            f"(modality of shape {shape}; float16 or uint8 elements for media caches)"
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
    if flat.dtype.kind != "f":
        return  # uint8 frames: every value is valid
    bad = ~np.isfinite(flat)
    if bad.any():
        rows = np.unique(np.flatnonzero(bad) // size)
        errs.append(
            f"{f.fname}: column {m!r} has {int(bad.sum())} NaN/inf value(s) in {len(rows)} "
            f"row(s) {_at(f.ids, rows)}; expected finite values"
        )


def check_table(fname: str, table: pa.Table, errs: list[str]) -> CheckedFile:
    """Check everything that concerns one file alone; return what was extracted."""
    f = CheckedFile(fname, _parse_meta(fname, table.schema, errs), table.num_rows)
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
        elif not is_string(col.type):
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


def check_across(files: list[CheckedFile], errs: list[str]) -> None:
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


def check_file_by_row_group(path: Path, errs: list[str]) -> CheckedFile:
    """:func:`check_table` on a file too large to hold, one row group at a time.

    Each group gets every single-file check; what spans groups (duplicate ids, an empty file) is
    checked on the small columns kept from all of them. Modality values are dropped after their
    group is checked, so memory is one row group's. Checking stops at the first group with a
    violation (the message names it): its problems are usually every group's.
    """
    file = pq.ParquetFile(path)
    total = file.num_row_groups
    if total == 0:
        return check_table(path.name, file.schema_arrow.empty_table(), errs)
    parts: list[CheckedFile] = []
    for group in range(total):
        found: list[str] = []
        part = check_table(path.name, file.read_row_group(group), found)
        part.flats.clear()
        parts.append(part)
        if found:
            errs.extend(found)
            errs.append(
                f"{path.name}: the violations above are in row group {group} of {total} "
                "(checked one group at a time; later groups were not checked)"
            )
            break

    def joined(values: list[np.ndarray | None]) -> np.ndarray | None:
        return None if any(v is None for v in values) else np.concatenate(values)

    merged = CheckedFile(
        path.name, parts[0].meta, sum(p.n for p in parts),
        ids=joined([p.ids for p in parts]),
        groups=joined([p.groups for p in parts]),
        labels=joined([p.labels for p in parts]),
        annotations={k: np.concatenate([p.annotations[k] for p in parts])
                     for k in parts[0].annotations if all(k in p.annotations for p in parts)},
    )  # fmt: skip
    if merged.ids is not None and len(parts) == total:
        uniq, counts = np.unique(merged.ids.astype(str), return_counts=True)
        if (dup := uniq[counts > 1]).size:
            errs.append(
                f"{path.name}: column 'sample_id' has {dup.size} duplicated value(s) {_ex(dup)}; "
                "expected unique ids"
            )
    return merged

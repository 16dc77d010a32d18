"""The Parquet dataset contract: exact round trips, and one test per violation class."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from mcr.data.contract import DataContractError, read_dataset, write_dataset, write_split
from mcr.data.dataset import SPLITS, DatasetInfo, MultimodalDataset, Split

SHAPES = {"audio": (2, 3), "video": (4,)}
ROWS = {"train": 6, "val": 3, "test": 3}


def make_dataset(task: str = "classification") -> MultimodalDataset:
    """Two modalities, 3 classes, groups that stay in one split, one annotation column."""
    g = torch.Generator().manual_seed(0)
    info = DatasetInfo("tiny", task, 3 if task == "classification" else 1, tuple(SHAPES), SHAPES)
    splits, start = {}, 0
    for s, n in ROWS.items():
        idx = np.arange(start, start + n)
        start += n
        if task == "classification":
            labels = torch.from_numpy(idx % 3)
        else:
            labels = torch.randn(n, generator=g, dtype=torch.float32)
        splits[s] = Split(
            name=s,
            inputs={m: torch.randn(n, *shape, generator=g) for m, shape in SHAPES.items()},
            labels=labels,
            sample_ids=np.array([f"id{i}" for i in idx]),
            groups=np.array([f"{s}-spk{i % 2}" for i in idx]),
            annotations={"info_group": np.array(["S", "U1", "U2"] * (n // 3))},
        )
    return MultimodalDataset(info=info, **splits)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    write_dataset(make_dataset(), tmp_path)
    return tmp_path


def rewrite(folder: Path, split: str, fn: Callable[[pa.Table], pa.Table]) -> None:
    """Replace one file by ``fn`` of its table, written with pyarrow directly (no checks)."""
    path = folder / f"{split}.parquet"
    pq.write_table(fn(pq.read_table(path)), path)


def set_col(name: str, array: pa.Array) -> Callable[[pa.Table], pa.Table]:
    def fn(t: pa.Table) -> pa.Table:
        if name in t.column_names:
            return t.set_column(t.column_names.index(name), name, array)
        return t.append_column(name, array)

    return fn


def set_meta(**changes: object) -> Callable[[pa.Table], pa.Table]:
    def fn(t: pa.Table) -> pa.Table:
        meta = json.loads(t.schema.metadata[b"mcr"]) | changes
        return t.replace_schema_metadata({b"mcr": json.dumps(meta)})

    return fn


def violations(folder: Path) -> str:
    with pytest.raises(DataContractError) as exc:
        read_dataset(folder)
    return str(exc.value)


def fixed(flat: np.ndarray, size: int) -> pa.Array:
    return pa.FixedSizeListArray.from_arrays(pa.array(flat.astype(np.float32)), size)


def test_round_trip_is_exact(folder: Path) -> None:
    original, loaded = make_dataset(), read_dataset(folder)
    assert loaded.info == original.info
    for s in SPLITS:
        a, b = original.split(s), loaded.split(s)
        assert b.name == s and list(b.inputs) == ["audio", "video"]
        for m, shape in SHAPES.items():
            assert b.inputs[m].dtype == torch.float32 and b.inputs[m].is_contiguous()
            assert b.inputs[m].shape == (ROWS[s], *shape)
            assert torch.equal(a.inputs[m], b.inputs[m])
        assert b.labels.dtype == torch.int64 and torch.equal(a.labels, b.labels)
        assert b.sample_ids.tolist() == a.sample_ids.tolist()
        assert b.groups.tolist() == a.groups.tolist()
        assert list(b.annotations) == ["info_group"]
        assert b.annotations["info_group"].tolist() == a.annotations["info_group"].tolist()
    assert loaded.train.inputs["audio"].numpy().flags.writeable  # a tensor we own


def test_regression_round_trip(tmp_path: Path) -> None:
    original = make_dataset("regression")
    write_dataset(original, tmp_path)
    schema = pq.read_schema(tmp_path / "val.parquet")
    assert schema.field("label").type == pa.float64()
    assert schema.field("audio").type == pa.list_(pa.float32(), 6)
    loaded = read_dataset(tmp_path)
    assert loaded.info.task == "regression" and loaded.info.num_classes == 1
    assert loaded.val.labels.dtype == torch.float32
    assert torch.equal(loaded.val.labels, original.val.labels)
    assert torch.equal(loaded.test.inputs["video"], original.test.inputs["video"])


def test_name_comes_from_argument_then_metadata_then_folder(folder: Path) -> None:
    assert read_dataset(folder).info.name == "tiny"
    assert read_dataset(folder, name="mine").info.name == "mine"
    for s in SPLITS:
        rewrite(folder, s, set_meta(name=""))
    assert read_dataset(folder).info.name == folder.name


def test_modality_order_follows_metadata(folder: Path) -> None:
    order = {"video": [4], "audio": [2, 3]}
    for s in SPLITS:
        rewrite(folder, s, set_meta(modalities=order))
    assert read_dataset(folder).info.modalities == ("video", "audio")


def test_missing_file(folder: Path) -> None:
    (folder / "val.parquet").unlink()
    msg = violations(folder)
    assert "val.parquet: missing file" in msg and "train.parquet" not in msg


@pytest.mark.parametrize("column", ["sample_id", "label", "video"])
def test_missing_column(folder: Path, column: str) -> None:
    rewrite(folder, "test", lambda t: t.drop_columns([column]))
    assert f"test.parquet: missing column '{column}'" in violations(folder)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (None, "train.parquet: schema metadata key 'mcr' is missing"),
        ({b"mcr": b"{not json"}, "train.parquet: schema metadata key 'mcr' is not valid JSON"),
        ({b"mcr": b"[1]"}, "'mcr' is [1]; expected a JSON object"),
        ({"task": "ranking"}, "'task' is 'ranking'; expected 'classification' or 'regression'"),
        ({"num_classes": 1}, "'num_classes' is 1; expected an integer >= 2"),
        ({"modalities": {"audio": [2, 0]}}, "'modalities'['audio'] is [2, 0]; expected a list"),
        ({"modalities": {}}, "'modalities' is {}; expected a non-empty object"),
        ({"modalities": {"label": [1]}}, "modality 'label' uses a reserved column name"),
        ({"name": 3}, "'name' is 3; expected a string"),
    ],
)
def test_missing_or_invalid_metadata(folder: Path, change: dict | None, expected: str) -> None:
    def corrupt(t: pa.Table) -> pa.Table:
        if change is None:
            return t.replace_schema_metadata(None)
        if b"mcr" in change:
            return t.replace_schema_metadata(change)
        return set_meta(**change)(t)

    rewrite(folder, "train", corrupt)
    assert expected in violations(folder)


@pytest.mark.parametrize(
    ("column", "array", "expected"),
    [
        ("label", pa.array([0, 1, 2], pa.int32()), "'label' has type int32; expected int64"),
        ("label", pa.array([0.0, 1, 2]), "'label' has type double; expected int64"),
        (
            "video",
            pa.array([[0.0] * 4] * 3, pa.list_(pa.float64(), 4)),
            "'video' has type fixed_size_list<element: double>[4]; expected fixed_size_list",
        ),
        ("sample_id", pa.array([7, 8, 9]), "'sample_id' has type int64; expected string"),
        ("group", pa.array([1, 2, 3]), "'group' has type int64; expected string"),
        ("extra", pa.array([1, 2, 3]), "'extra' has type int64, which is not allowed"),
    ],
)
def test_wrong_dtype(folder: Path, column: str, array: pa.Array, expected: str) -> None:
    rewrite(folder, "val", set_col(column, array))
    assert f"val.parquet: column {expected}" in violations(folder)


def test_regression_label_must_be_float64(tmp_path: Path) -> None:
    write_dataset(make_dataset("regression"), tmp_path)
    rewrite(tmp_path, "val", set_col("label", pa.array([0.0, 1, 2], pa.float32())))
    msg = violations(tmp_path)
    assert (
        "val.parquet: column 'label' has type float; expected double for task 'regression'" in msg
    )


def test_ragged_list(folder: Path) -> None:
    rows = [[0.0] * 4, [0.0] * 3, [0.0] * 5]
    rewrite(folder, "val", set_col("video", pa.array(rows, pa.list_(pa.float32()))))
    msg = violations(folder)
    assert "val.parquet: column 'video' is ragged (row lengths 3, 4, 5" in msg
    assert "at sample_id 'id7', 'id8'" in msg and "hold 4 floats" in msg


def test_variable_length_list_of_declared_length_is_accepted(folder: Path) -> None:
    video = np.arange(12, dtype=np.float32).reshape(3, 4)
    array = pa.array(video.tolist(), pa.large_list(pa.float32()))
    rewrite(folder, "val", set_col("video", array))
    assert torch.equal(read_dataset(folder).val.inputs["video"], torch.from_numpy(video))


@pytest.mark.parametrize("variable_length", [False, True])
def test_list_size_differs_from_shape(folder: Path, variable_length: bool) -> None:
    flat = np.zeros(15, dtype=np.float32)
    if variable_length:
        array = pa.array(flat.reshape(3, 5).tolist(), pa.list_(pa.float32()))
    else:
        array = fixed(flat, 5)
    rewrite(folder, "test", set_col("audio", array))
    msg = violations(folder)
    assert "test.parquet: column 'audio' has list size 5; expected 6" in msg
    assert "declared shape [2, 3]" in msg


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_modality(folder: Path, bad: float) -> None:
    video = np.zeros((3, 4), dtype=np.float32)
    video[1, 2] = video[2, 0] = bad
    rewrite(folder, "test", set_col("video", fixed(video.ravel(), 4)))
    msg = violations(folder)
    assert "test.parquet: column 'video' has 2 NaN/inf value(s) in 2 row(s)" in msg
    assert "at sample_id 'id10', 'id11'" in msg


def test_non_finite_regression_label(tmp_path: Path) -> None:
    write_dataset(make_dataset("regression"), tmp_path)
    rewrite(tmp_path, "train", set_col("label", pa.array([0.0, np.nan, 1, 2, np.inf, 3])))
    msg = violations(tmp_path)
    assert "train.parquet: column 'label' has 2 NaN/inf value(s) nan, inf" in msg
    assert "at sample_id 'id1', 'id4'" in msg


def test_duplicate_sample_id(folder: Path) -> None:
    ids = pa.array(["a", "b", "a", "b", "c", "c"])
    rewrite(folder, "train", set_col("sample_id", ids))
    msg = violations(folder)
    assert "train.parquet: column 'sample_id' has 3 duplicated value(s) 'a', 'b', 'c'" in msg


def test_split_overlap(folder: Path) -> None:
    rewrite(folder, "test", set_col("sample_id", pa.array(["id0", "id4", "id11"])))
    msg = violations(folder)
    assert "train.parquet and test.parquet: column 'sample_id' has 2 value(s) in both" in msg
    assert "'id0', 'id4'" in msg and "val.parquet and" not in msg


def test_group_crosses_splits(folder: Path) -> None:
    rewrite(folder, "val", set_col("group", pa.array(["train-spk0", "val-spk0", "x"])))
    msg = violations(folder)
    assert "train.parquet and val.parquet: column 'group' has 1 value(s) in both splits" in msg
    assert "'train-spk0'" in msg and "must not cross splits" in msg


def test_label_out_of_range(folder: Path) -> None:
    rewrite(folder, "train", set_col("label", pa.array([0, 3, 1, -1, 2, 7])))
    msg = violations(folder)
    assert "train.parquet: column 'label' has 3 out-of-range value(s) 3, -1, 7" in msg
    assert "at sample_id 'id1', 'id3', 'id5'" in msg and "[0, 3)" in msg


def test_empty_split(folder: Path) -> None:
    rewrite(folder, "val", lambda t: t.slice(0, 0))
    assert "val.parquet: split is empty (0 rows)" in violations(folder)


@pytest.mark.parametrize(
    ("change", "shown"),
    [
        ({"num_classes": 4}, "'num_classes' is 4 but train.parquet has 3"),
        ({"modalities": {"video": [4], "audio": [2, 3]}}, "'modalities' is {'video': [4]"),
    ],
)
def test_files_disagree_on_metadata(folder: Path, change: dict, shown: str) -> None:
    rewrite(folder, "test", set_meta(**change))
    assert f"test.parquet: metadata 'mcr' field {shown}" in violations(folder)


def test_nulls_are_rejected(folder: Path) -> None:
    rewrite(folder, "val", set_col("group", pa.array(["a", None, "b"])))
    assert "val.parquet: column 'group' has 1 null(s)" in violations(folder)


def test_unreadable_file(folder: Path) -> None:
    (folder / "train.parquet").write_bytes(b"not parquet")
    assert "train.parquet: cannot be read as Parquet" in violations(folder)


def test_all_violations_reported_in_one_error(folder: Path) -> None:
    (folder / "test.parquet").unlink()
    rewrite(folder, "train", set_col("label", pa.array([0, 1, 2, 0, 1, 9])))
    rewrite(folder, "val", set_col("sample_id", pa.array(["id0", "v", "v"])))
    with pytest.raises(DataContractError) as exc:
        read_dataset(folder)
    expected = [
        "test.parquet: missing file",
        "train.parquet: column 'label' has 1 out-of-range value(s) 9",
        "val.parquet: column 'sample_id' has 1 duplicated value(s) 'v'",
        "train.parquet and val.parquet: column 'sample_id' has 1 value(s) in both splits",
    ]
    assert len(exc.value.violations) == len(expected)
    lines = str(exc.value).splitlines()
    for text in expected:
        assert sum(text in line for line in lines) == 1, text


def test_write_leaves_only_three_zstd_files_with_metadata(folder: Path) -> None:
    assert sorted(p.name for p in folder.iterdir()) == [f"{s}.parquet" for s in sorted(SPLITS)]
    meta = json.loads(pq.read_schema(folder / "train.parquet").metadata[b"mcr"])
    assert meta == {
        "name": "tiny",
        "task": "classification",
        "num_classes": 3,
        "modalities": {"audio": [2, 3], "video": [4]},
    }
    row_group = pq.ParquetFile(folder / "train.parquet").metadata.row_group(0)
    assert {row_group.column(i).compression for i in range(row_group.num_columns)} == {"ZSTD"}


def test_failed_write_leaves_targets_untouched(
    folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    calls = []

    def boom(table: pa.Table, where: str, **kwargs: object) -> None:
        calls.append(where)
        if len(calls) == 2:  # the first temp file is complete, the second fails midway
            Path(where).write_bytes(b"half")
            raise OSError("disk full")
        original(table, where, **kwargs)

    original = pq.write_table
    monkeypatch.setattr(pq, "write_table", boom)
    changed = make_dataset("regression")
    with pytest.raises(OSError, match="disk full"):
        write_dataset(changed, folder)
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    assert len(calls) == 2


def test_write_refuses_invalid_dataset_and_writes_nothing(tmp_path: Path) -> None:
    ds = make_dataset()
    bad_test = Split("test", ds.test.inputs, ds.test.labels, ds.train.sample_ids[:3])
    ds = MultimodalDataset(ds.info, ds.train, ds.val, bad_test)
    with pytest.raises(DataContractError, match="'id0', 'id1', 'id2'"):
        write_dataset(ds, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_write_refuses_wrong_shape(tmp_path: Path) -> None:
    ds = make_dataset()
    bad = Split(
        "val",
        {"audio": torch.zeros(3, 3, 2), "video": torch.zeros(3, 4)},
        ds.val.labels,
        ds.val.sample_ids,
    )
    with pytest.raises(DataContractError, match=r"modality 'audio' is of shape \(3, 3, 2\)"):
        write_split(bad, ds.info, tmp_path / "val.parquet")
    assert not list(tmp_path.iterdir())


def test_write_split_round_trips_through_pyarrow(tmp_path: Path) -> None:
    ds = make_dataset()
    write_split(ds.val, ds.info, tmp_path / "val.parquet")
    table = pq.read_table(tmp_path / "val.parquet")
    assert table.column_names == ["sample_id", "group", "info_group", "label", "audio", "video"]
    assert table.schema.field("label").type == pa.int64()
    audio = table.column("audio").combine_chunks().flatten().to_numpy().reshape(3, 2, 3)
    assert np.array_equal(audio, ds.val.inputs["audio"].numpy())

"""Datasets beyond the memory budget: read in slices, trained from a stream, evaluated the same.

The same contract folder is read twice, in memory and streamed (``memory_budget_gb=0``), with
row groups of 16 rows so that slices and windows cross group boundaries.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from mcr.data.contract import DataContractError, read_dataset, write_dataset
from mcr.data.contract.columns import ParquetColumn
from mcr.data.dataset import SPLITS
from mcr.evaluation import evaluate_run
from mcr.training import load_model, predict, train_run
from mcr.training.batches import StreamedBatches, training_batches
from mcr.training.config import TrainConfig
from tests.conftest import tiny_run_config

GROUP = 16


def regroup(path: Path, rows: int = GROUP) -> None:
    """Rewrite a contract file with row groups of ``rows`` (schema metadata kept)."""
    pq.write_table(pq.read_table(path), path, row_group_size=rows)


@pytest.fixture(scope="module")
def folder(tiny_synthetic, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("contract")
    write_dataset(tiny_synthetic, out)
    for split in SPLITS:
        regroup(out / f"{split}.parquet")
    return out


@pytest.fixture(scope="module")
def in_memory(folder):
    return read_dataset(folder, memory_budget_gb=math.inf)


@pytest.fixture(scope="module")
def streamed(folder):
    return read_dataset(folder, memory_budget_gb=0)


def test_the_budget_decides_and_streamed_slices_equal_the_tensors(folder, in_memory, streamed):
    assert read_dataset(folder).train.source is None  # a few KB: the default loads it
    for split in SPLITS:
        mem, st = in_memory.split(split), streamed.split(split)
        assert mem.source is None and st.source == folder / f"{split}.parquet"
        assert np.array_equal(mem.sample_ids, st.sample_ids)
        assert torch.equal(mem.labels, st.labels)
        assert np.array_equal(mem.annotations["info_group"], st.annotations["info_group"])
        for m in mem.inputs:
            column, tensor = st.inputs[m], mem.inputs[m]
            assert isinstance(column, ParquetColumn)
            assert len(column) == len(tensor) and column.shape == tuple(tensor.shape)
            n = len(tensor)
            for start, stop in [(0, 5), (3, 40), (15, 17), (GROUP, 2 * GROUP), (n - 7, n + 9)]:
                got = column[start:stop]
                assert got.dtype == tensor.dtype
                assert torch.equal(got, tensor[start:stop]), (split, m, start, stop)
            assert torch.equal(column[:], tensor)
            assert column[10:10].shape == (0, *tensor.shape[1:])


def test_a_streamed_column_refuses_to_load_whole(streamed):
    column = streamed.val.inputs["m1"]
    with pytest.raises(TypeError, match=r"val\.parquet: modality 'm1' .* streamed from disk"):
        column.to("cpu")
    with pytest.raises(TypeError, match="only contiguous slices"):
        column[torch.tensor([1, 2])]
    with pytest.raises(TypeError, match="step 1"):
        column[::2]
    with pytest.raises(TypeError, match="the val split is streamed"):
        streamed.val.to("cpu")


def test_row_group_checks_name_the_group_and_catch_ids_across_groups(folder, tmp_path):
    bad = tmp_path / "bad"
    bad.mkdir()
    for split in SPLITS:
        (bad / f"{split}.parquet").write_bytes((folder / f"{split}.parquet").read_bytes())
    table = pq.read_table(bad / "train.parquet")
    values = table.column("m1").combine_chunks()
    flat = values.flatten().to_numpy().copy()
    flat[2 * GROUP * values.type.list_size + 3] = np.nan  # row 32: the third group
    table = table.set_column(
        table.column_names.index("m1"), "m1",
        pa.FixedSizeListArray.from_arrays(pa.array(flat), values.type.list_size),
    )  # fmt: skip
    pq.write_table(table, bad / "train.parquet", row_group_size=GROUP)
    with pytest.raises(DataContractError) as err:
        read_dataset(bad, memory_budget_gb=0)
    text = str(err.value)
    assert "column 'm1' has 1 NaN/inf value(s)" in text and "row group 2 of" in text
    ids = pq.read_table(folder / "val.parquet")
    dup = ids.column("sample_id").to_pylist()
    dup[-1] = dup[0]  # first and last rows: different row groups
    ids = ids.set_column(ids.column_names.index("sample_id"), "sample_id", pa.array(dup))
    (bad / "train.parquet").write_bytes((folder / "train.parquet").read_bytes())
    pq.write_table(ids, bad / "val.parquet", row_group_size=GROUP)
    with pytest.raises(DataContractError, match="'sample_id' has 1 duplicated value"):
        read_dataset(bad, memory_budget_gb=0)


def test_streamed_epochs_are_full_batches_in_a_seeded_order(streamed):
    config = TrainConfig(batch_size=32, device="cpu", stream_window=3)
    batches = training_batches(streamed.train, ("m1", "m2"), config, 0, torch.device("cpu"))
    assert isinstance(batches, StreamedBatches)
    assert batches.steps == len(streamed.train) // 32
    first = list(batches.epoch(0))
    assert [len(b.labels) for b in first] == [32] * batches.steps
    assert first[0].labels.dtype == torch.int64 and first[0].inputs["m1"].dtype == torch.float32
    again = list(batches.epoch(0))
    other = list(batches.epoch(1))
    assert all(
        torch.equal(a.inputs["m1"], b.inputs["m1"]) for a, b in zip(first, again, strict=True)
    )
    assert not torch.equal(first[0].inputs["m1"], other[0].inputs["m1"])


def test_training_from_the_stream_is_reproducible_and_evaluates_like_memory(
    in_memory, streamed, tmp_path
):
    runs = [tmp_path / "a", tmp_path / "b"]
    results = [train_run(streamed, "joint", tiny_run_config(4), 0, run) for run in runs]
    assert without_timings(results[0].history) == without_timings(results[1].history)
    assert len(results[0].history) == 4
    assert all(math.isfinite(r["train_loss"]) for r in results[0].history)
    on_disk = evaluate_run(runs[0], streamed)
    in_ram = evaluate_run(runs[0], in_memory)
    assert on_disk["test"]["accuracy"] == in_ram["test"]["accuracy"] > 0.3  # chance is 0.2
    assert on_disk == in_ram  # the same predictions, chunk by chunk from disk
    summary = json.loads((runs[0] / "train_summary.json").read_text())
    assert summary["best_val"]["accuracy"] == pytest.approx(on_disk["val"]["accuracy"])


def without_timings(history: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if "seconds" not in k} for r in history]


def test_the_ensemble_reads_a_streamed_validation_split_in_chunks(in_memory, streamed, tmp_path):
    unimodal = {}
    for m in in_memory.info.modalities:
        train_run(in_memory, f"unimodal_{m}", tiny_run_config(2), 0, tmp_path / m)
        unimodal[m] = tmp_path / m
    for name, data in (("mem", in_memory), ("disk", streamed)):
        train_run(data, "ensemble", tiny_run_config(1, ensemble={"eval_batch_size": 50}), 0,
                  tmp_path / name, unimodal_runs=unimodal)  # fmt: skip
    a, b = load_model(tmp_path / "mem"), load_model(tmp_path / "disk")
    for key, value in a.state_dict().items():
        torch.testing.assert_close(b.state_dict()[key], value, atol=1e-6, rtol=1e-6)
    got = predict(b, streamed.test.inputs).logits
    torch.testing.assert_close(got, predict(a, in_memory.test.inputs).logits)


def test_the_loader_setting_maps_to_a_memory_budget():
    assert TrainConfig(loader="memory").memory_budget == math.inf
    assert TrainConfig(loader="stream").memory_budget == 0.0
    assert TrainConfig(loader="auto", memory_budget_gb=1.5).memory_budget == 1.5

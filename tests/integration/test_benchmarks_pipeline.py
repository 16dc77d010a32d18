"""The paper's audio-visual benchmarks through the whole pipeline, on fixture trees in their real
layouts: extraction to media caches, ResNet-18 training, evaluation, tracking and the report."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import yaml

from tests.fixtures.media import ave_tree, cremad_tree, ucf_tree
from tests.integration.test_pipeline import ROOT, copy_project, snakemake

BENCHMARKS = ("cremad", "ave", "ucf101")
TINY_ENCODERS = {
    "audio": {"name": "resnet18", "width": 8, "latent_dim": 16},
    "video": {"name": "resnet18_frames", "width": 8, "latent_dim": 16, "crop_size": 32},
}


def edit(path: Path, change) -> None:
    content = yaml.safe_load(path.read_text())
    change(content)
    path.write_text(yaml.safe_dump(content, sort_keys=False))


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """Only the three benchmarks, from fixture trees; tiny encoders, 2 epochs, one seed."""
    root = copy_project(tmp_path_factory.mktemp("bench"))
    media = root / "media"
    cremad_tree(media / "CREMA-D", actors=4, sentences=("DFA",))
    ave_tree(media / "AVE", per_split={"train": 6, "val": 3, "test": 3})
    ucf_tree(media / "UCF101")

    def data(d: dict) -> None:
        d["data"]["sweep"].update(u1_to_s_ratio=[], paper_regime=[])
        for block in d["data"]["real"].values():
            block["enabled"] = False
        d["data"]["benchmarks"] = {
            "cremad": {"root": str(media / "CREMA-D"), "frame_size": 32, "val_actors": 0.25,
                       "test_actors": 0.25, "workers": 2},
            "ave": {"root": str(media / "AVE"), "frame_size": 32, "workers": 2},
            "ucf101": {"root": str(media / "UCF101"), "frame_size": 32, "val_fraction": 0.2,
                       "workers": 2},
        }  # fmt: skip

    def train(t: dict) -> None:
        t["train"]["seeds"] = [0]
        t["train"]["common"].update(epochs=2, batch_size=4)
        t["train"]["methods"] = {"joint": {}, "mcr": {"init_from_unimodal": True}, "unimodal": {}}
        t["train"]["model"]["datasets"] = {n: {"encoders": TINY_ENCODERS} for n in BENCHMARKS}

    edit(root / "params/data.yaml", data)
    edit(root / "params/train.yaml", train)
    done = snakemake("--cores", "2", cwd=root)
    assert done.returncode == 0, done.stderr[-5000:]
    return root


def test_extracts_trains_evaluates_and_reports_every_benchmark(project: Path) -> None:
    rows = list(csv.DictReader((project / "reports/results.csv").open()))
    runs = {(r["dataset"], r["method"]) for r in rows}
    for dataset in BENCHMARKS:
        assert {(dataset, m) for m in ("joint", "mcr", "unimodal_audio", "unimodal_video")} <= runs
        manifest = json.loads((project / f"data/features/{dataset}/manifest.json").read_text())
        assert sum(manifest["rows"].values()) > 0
        summary = json.loads(
            (project / f"data/runs/{dataset}/mcr/seed0/train_summary.json").read_text()
        )
        assert summary["method"] == "mcr"
    ucf = json.loads((project / "data/features/ucf101/manifest.json").read_text())
    assert ucf["classes_without_audio"] == ["Typing"]
    assert "ucf101" in (project / "reports/summary.md").read_text()


def test_a_rerun_is_a_noop(project: Path) -> None:
    done = snakemake("-n", cwd=project)
    assert "Nothing to be done" in done.stdout + done.stderr


def test_roots_not_set_are_skipped_with_one_line_each() -> None:
    done = snakemake("-n", "--quiet", cwd=ROOT)
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-3000:]
    for name in BENCHMARKS:
        assert f"skipping {name}: data.benchmarks.{name}.root is not set" in out


def test_a_paper_profile_without_its_root_says_there_is_nothing_to_run() -> None:
    done = snakemake("-n", "--configfile", "params/paper/cremad.yaml", cwd=ROOT)
    assert done.returncode != 0
    assert "no dataset to run" in done.stdout + done.stderr


def test_a_missing_root_or_missing_encoders_fail_before_any_job(tmp_path: Path) -> None:
    root = tmp_path / "p"
    root.mkdir()
    copy_project(root)
    edit(root / "params/data.yaml",
         lambda d: d["data"]["benchmarks"]["cremad"].update(root=str(tmp_path / "nowhere")))  # fmt: skip
    done = snakemake("-n", cwd=root)
    assert done.returncode != 0
    assert "data.benchmarks.cremad.root:" in done.stdout + done.stderr
    assert "is not a folder" in done.stdout + done.stderr
    (tmp_path / "nowhere").mkdir()
    done = snakemake("-n", cwd=root)
    assert done.returncode != 0
    assert "--configfile params/paper/cremad.yaml" in done.stdout + done.stderr
    done = snakemake("-n", "--configfile", "params/paper/cremad.yaml", cwd=root)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    assert "make_dataset" in done.stdout + done.stderr

"""UCF-101 extraction: the audio-visual subset, validation by source-video group."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from mcr.config import ConfigError
from mcr.data.benchmarks.ucf101 import Ucf101Config, UcfVideo, carve_validation, extract
from mcr.data.contract import read_dataset
from tests.fixtures.media import BASE_HZ, STEP_HZ, UCF_CLASSES, colour, ucf_tree


@pytest.fixture(scope="module")
def extracted(tmp_path_factory) -> tuple[Path, dict, Path]:
    root = tmp_path_factory.mktemp("ucf") / "UCF101"
    made = ucf_tree(root)
    out = tmp_path_factory.mktemp("cache") / "ucf101"
    extract(Ucf101Config(root=str(root), workers=2, frame_size=32, val_fraction=0.2), out,
            progress=False)  # fmt: skip
    return root, made, out


def test_videos_without_sound_and_too_short_ones_are_left_out_and_listed(extracted) -> None:
    _, made, out = extracted
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["classes"] == ["Drumming", "PlayingGuitar"]  # the audio-visual subset
    assert manifest["classes_without_audio"] == ["Typing"]
    assert len(manifest["videos_without_audio"]) == 8 and all(
        v.startswith("Typing/") for v in manifest["videos_without_audio"]
    )
    assert [Path(r["file"]).name for r in manifest["rejected"]] == [
        Path(p).name for p in made["short"]
    ]
    data = read_dataset(out)
    assert data.info.num_classes == 2
    assert sum(len(data.split(s)) for s in ("train", "val", "test")) == 16 - 1


def test_shapes_labels_and_group_disjoint_splits(extracted) -> None:
    _, _, out = extracted
    data = read_dataset(out)
    assert data.info.shapes == {"audio": (257, 136), "video": (4, 3, 32, 32)}
    groups = {s: set(data.split(s).groups) for s in ("train", "val", "test")}
    assert not (groups["train"] & groups["val"] or groups["train"] & groups["test"])
    assert all(g.endswith("_g01") for g in groups["test"])  # the official test list
    assert groups["val"]  # carved from training
    for s in ("train", "val", "test"):
        split = data.split(s)
        for i, sample in enumerate(split.sample_ids):
            cls = sample.split("_")[1]
            made_as = UCF_CLASSES.index(cls)
            assert ["Drumming", "PlayingGuitar"][int(split.labels[i])] == cls
            peak = split.inputs["audio"][i].float().numpy().mean(axis=1).argmax()
            assert abs(peak - (BASE_HZ + STEP_HZ * made_as) * 512 / 16000) <= 1
            pixel = split.inputs["video"][i, 0, :, 16, 24].numpy().astype(int)
            assert np.abs(pixel - colour(made_as, 3).astype(int)).max() < 12


def test_validation_takes_whole_groups_per_class() -> None:
    videos = [UcfVideo(f"A/v_A_g{g:02d}_c{c:02d}.avi", "A", f"A_g{g:02d}")
              for g in range(1, 21) for c in range(1, 6)]  # fmt: skip
    train, val = carve_validation(videos, 0.1, seed=0)
    assert len(val) == 10 and len(train) == 90  # 2 groups of 5
    assert not {v.group for v in train} & {v.group for v in val}


def test_a_wrong_layout_names_the_file(extracted, tmp_path: Path) -> None:
    root, _, _ = extracted
    with pytest.raises(ConfigError, match=r"trainlist02\.txt: missing"):
        extract(Ucf101Config(root=str(root), split=2), tmp_path / "out")
    with pytest.raises(ConfigError, match=r"missing folder UCF-101/"):
        extract(Ucf101Config(root=str(tmp_path)), tmp_path / "out")
    assert not (tmp_path / "out").exists()

"""AVE extraction on a tree in the real layout (H.264 + AAC MP4s, the official split files)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from mcr.config import ConfigError
from mcr.data.benchmarks.ave import AveConfig, extract
from mcr.data.contract import read_dataset
from tests.fixtures.media import AVE_CLASSES, BASE_HZ, GREY, STEP_HZ, ave_tree, colour

FAST = {"workers": 2, "frame_size": 32}


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("ave") / "AVE_Dataset"
    ave_tree(root, per_split={"train": 3, "val": 3, "test": 3})
    return root


def test_only_the_event_segment_is_used_with_labels_from_the_annotations(
    tree: Path, tmp_path: Path
) -> None:
    extract(AveConfig(root=str(tree), **FAST), tmp_path / "c", progress=False)
    data = read_dataset(tmp_path / "c")
    assert data.info.shapes == {"audio": (257, 1004), "video": (4, 3, 32, 32)}
    assert data.info.num_classes == 3
    manifest = json.loads((tmp_path / "c/manifest.json").read_text())
    assert manifest["classes"] == sorted(AVE_CLASSES)
    for split in ("train", "val", "test"):
        s = data.split(split)
        assert len(s) == 3
        for i, video_id in enumerate(s.sample_ids):
            made_as = int(video_id.rsplit("_", 1)[1])  # the fixture's class index
            assert manifest["classes"][int(s.labels[i])] == AVE_CLASSES[made_as]
            # audio: the class tone (inside the segment), not the 5 kHz distractor outside
            peak = s.inputs["audio"][i].float().numpy().mean(axis=1).argmax()
            assert abs(peak - (BASE_HZ + STEP_HZ * made_as) * 512 / 16000) <= 1
            # frames: 3, 4, 5, 6 s are inside the segment [3, 8): the class colour, not grey
            pixels = s.inputs["video"][i, :, :, 16, 24].numpy().astype(int)
            assert np.abs(pixels - colour(made_as, 3).astype(int)).max() < 12
            assert np.abs(pixels - GREY.astype(int)).max() > 40


def test_the_layout_is_checked_first(tree: Path, tmp_path: Path) -> None:
    root = tmp_path / "r"
    shutil.copytree(tree, root)
    (root / "valSet.txt").unlink()
    with pytest.raises(ConfigError, match=r"valSet\.txt: missing; expected <root>/AVE/"):
        extract(AveConfig(root=str(root)), tmp_path / "out")
    shutil.copy(tree / "valSet.txt", root / "valSet.txt")
    first = (root / "testSet.txt").read_text().splitlines()[0]
    (root / "trainSet.txt").write_text((root / "trainSet.txt").read_text() + first + "\n")
    with pytest.raises(ConfigError, match=r"in both trainSet\.txt and testSet\.txt"):
        extract(AveConfig(root=str(root)), tmp_path / "out")
    (root / "trainSet.txt").write_text("Bark&abc&good&zero&10\n")
    with pytest.raises(ConfigError, match=r"trainSet\.txt:1: malformed line"):
        extract(AveConfig(root=str(root)), tmp_path / "out")
    assert not (tmp_path / "out").exists()

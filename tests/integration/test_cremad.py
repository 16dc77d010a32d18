"""CREMA-D extraction on a tree in the real layout, written with real codecs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from mcr.config import ConfigError
from mcr.data.benchmarks.cremad import CremadConfig, extract
from mcr.data.contract import read_dataset
from mcr.data.media.cache import CorruptMediaError
from tests.fixtures.media import BASE_HZ, CREMAD_EMOTIONS, STEP_HZ, colour, cremad_tree

FAST = {"workers": 2, "frame_size": 32, "row_group_size": 8}


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("cremad") / "CREMA-D"
    cremad_tree(root, actors=6, sentences=("DFA",))
    return root


@pytest.fixture(scope="module")
def cache(tree: Path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("cache") / "cremad"
    extract(CremadConfig(root=str(tree), val_actors=0.2, test_actors=0.2, **FAST), out,
            progress=False)  # fmt: skip
    return out


def test_shapes_dtypes_and_labels_from_names(cache: Path) -> None:
    data = read_dataset(cache)
    assert data.info.num_classes == 6 and data.info.modalities == ("audio", "video")
    assert data.info.shapes == {"audio": (257, 188), "video": (3, 3, 32, 32)}
    total = 0
    for split in ("train", "val", "test"):
        s = data.split(split)
        assert s.inputs["audio"].dtype.is_floating_point and s.inputs["audio"].element_size() == 2
        assert str(s.inputs["video"].dtype) == "torch.uint8"
        for i, clip in enumerate(s.sample_ids):
            label = int(s.labels[i])
            assert CREMAD_EMOTIONS[label] == clip.split("_")[2]  # the label is the name's emotion
            peak = s.inputs["audio"][i].float().numpy().argmax(axis=0)[5]
            assert abs(peak - (BASE_HZ + STEP_HZ * label) * 512 / 22050) <= 1  # its tone
            pixel = s.inputs["video"][i, 0, :, 16, 24].numpy().astype(int)
            assert np.abs(pixel - colour(label, 6).astype(int)).max() < 12  # its colour
            assert s.groups[i] == clip[:4]  # the actor
        total += len(s)
    assert total == 36


def test_splits_are_actor_disjoint_and_listed_in_the_manifest(cache: Path) -> None:
    data = read_dataset(cache)
    actors = {s: set(data.split(s).groups) for s in ("train", "val", "test")}
    assert not (actors["train"] & actors["val"] or actors["train"] & actors["test"]
                or actors["val"] & actors["test"])  # fmt: skip
    manifest = json.loads((cache / "manifest.json").read_text())
    assert {s: set(a) for s, a in manifest["actors"].items()} == actors
    assert manifest["rows"] == {s: len(data.split(s)) for s in ("train", "val", "test")}
    assert manifest["skipped"] == [] and manifest["classes"] == list(CREMAD_EMOTIONS)


def test_other_folds_shuffle_other_actors(tree: Path, tmp_path: Path) -> None:
    from mcr.data.benchmarks.cremad import actor_folds, index_root

    clips = index_root(tree)
    tests = {
        fold: {
            c.actor for c in actor_folds(clips, CremadConfig(root=str(tree), fold=fold))["test"]
        }
        for fold in (1, 2, 3)
    }
    assert len({frozenset(t) for t in tests.values()}) > 1


def test_a_split_file_gives_the_exact_folds(tree: Path, tmp_path: Path) -> None:
    ids = sorted(p.stem for p in (tree / "AudioWAV").glob("*.wav"))
    by_actor = {a: [i for i in ids if i.startswith(a)] for a in sorted({i[:4] for i in ids})}
    actors = list(by_actor)
    fold = {"train": [f"{i}.wav" for a in actors[:4] for i in by_actor[a]],
            "val": by_actor[actors[4]], "test": by_actor[actors[5]]}  # fmt: skip
    split_file = tmp_path / "folds.json"
    split_file.write_text(json.dumps({"2": fold}))
    out = tmp_path / "cache"
    extract(CremadConfig(root=str(tree), fold=2, split_file=str(split_file), **FAST), out,
            progress=False)  # fmt: skip
    data = read_dataset(out)
    assert set(data.split("test").sample_ids) == set(by_actor[actors[5]])
    assert len(data.split("train")) == 24
    with pytest.raises(ConfigError, match=r'expected \{"1": \{"train"'):
        extract(CremadConfig(root=str(tree), fold=1, split_file=str(split_file)), out)
    fold["val"] = fold["val"] + by_actor[actors[5]][:1]  # one clip of a test actor
    split_file.write_text(json.dumps({"2": fold}))
    with pytest.raises(ConfigError, match="share 1 clip"):
        extract(CremadConfig(root=str(tree), fold=2, split_file=str(split_file)), out)


def copy_tree(tree: Path, to: Path) -> Path:
    shutil.copytree(tree, to)
    return to


def test_a_wrong_layout_is_one_error_naming_the_layout_and_the_file(
    tree: Path, tmp_path: Path
) -> None:
    with pytest.raises(ConfigError, match=r"not a folder; expected <root>/AudioWAV/"):
        extract(CremadConfig(root=str(tmp_path / "nowhere")), tmp_path / "out")
    root = copy_tree(tree, tmp_path / "a")
    shutil.rmtree(root / "VideoFlash")
    with pytest.raises(ConfigError, match=r"missing folder VideoFlash/; expected"):
        extract(CremadConfig(root=str(root)), tmp_path / "out")
    root = copy_tree(tree, tmp_path / "b")
    (root / "VideoFlash/1003_DFA_SAD_XX.flv").unlink()
    with pytest.raises(ConfigError, match=r"VideoFlash/1003_DFA_SAD_XX\.flv: missing"):
        extract(CremadConfig(root=str(root)), tmp_path / "out")
    root = copy_tree(tree, tmp_path / "c")
    (root / "AudioWAV/1001_DFA_ANG_XX.wav").rename(root / "AudioWAV/1001_DFA_XYZ_XX.wav")
    with pytest.raises(ConfigError, match=r"1001_DFA_XYZ_XX\.wav: malformed clip name"):
        extract(CremadConfig(root=str(root)), tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_corrupt_file_is_skipped_and_listed_or_fatal(tree: Path, tmp_path: Path) -> None:
    root = copy_tree(tree, tmp_path / "root")
    bad = root / "VideoFlash/1002_DFA_HAP_XX.flv"
    bad.write_bytes(bad.read_bytes()[:200])  # truncated: the header survives, frames do not
    out = tmp_path / "skip"
    report = extract(CremadConfig(root=str(root), **FAST), out, progress=False)
    assert [s["sample_id"] for s in report.skipped] == ["1002_DFA_HAP_XX"]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["skipped"][0]["file"].endswith("1002_DFA_HAP_XX.flv")
    assert sum(manifest["rows"].values()) == 35
    failed = tmp_path / "fail"
    with pytest.raises(CorruptMediaError, match=r"1002_DFA_HAP_XX\.flv: .*on_corrupt: skip"):
        extract(CremadConfig(root=str(root), on_corrupt="fail", **FAST), failed, progress=False)
    assert not failed.exists() or not any(failed.iterdir())  # nothing half-written

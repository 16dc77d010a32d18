"""The real-data encoders: cnn2d (images), tcn and gru (MFCC sequences)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
from torch import nn

from mcr.config import ConfigError
from mcr.models.encoders import ENCODERS, build_encoder, parse_encoder_spec


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """These models are tiny: intra-op threads only add overhead, and under a busy CPU (a
    pipeline run next to the tests) two threads made the overfit test 5x slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def make(name: str, shape: tuple[int, ...], **options: object) -> nn.Module:
    torch.manual_seed(0)
    return build_encoder(parse_encoder_spec({"name": name, **options}, "enc"), shape)


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize(
    ("name", "shape"),
    [
        ("cnn2d", (1, 28, 28)),  # MNIST
        ("cnn2d", (28, 28)),  # no channel axis
        ("cnn2d", (3, 32, 24)),  # colour, non-square
        ("cnn2d", (20, 13)),  # an MFCC clip as an image: the 13 axis stops pooling at 1
        ("cnn2d", (1, 8, 8)),  # sklearn digits: smaller than 2**4
        ("cnn2d", (2, 1, 1)),  # a single pixel never pools
        ("tcn", (20, 13)),
        ("tcn", (1, 13)),
        ("tcn", (92, 1)),
        ("gru", (20, 13)),
        ("gru", (1, 13)),
    ],
)
def test_output_shape_and_finite(name: str, shape: tuple[int, ...]) -> None:
    encoder = make(name, shape, latent_dim=7)
    out = encoder(torch.randn(3, *shape))
    assert encoder.latent_dim == 7 and out.shape == (3, 7) and torch.isfinite(out).all()


def test_default_sizes_are_hand_counted() -> None:
    # cnn2d: convs 1*6*25 + 6*12*9 + 12*24*9 + 24*48*9 = 13758 (no bias before batch norm),
    # batch-norm affine 2 * (6+12+24+48) = 180, projection 48*64 + 64 = 3136.
    cnn = make("cnn2d", (1, 28, 28))
    assert n_params(cnn) == 13758 + 180 + 3136 == 17074
    assert cnn.output_map_shape == (48, 1, 1)  # 28 -> 14 -> 7 -> 3 -> 1, as MultiBench
    assert make("cnn2d", (20, 13)).output_map_shape == (48, 1, 1)  # 13 -> 6 -> 3 -> 1 -> 1
    # tcn, F=13: block 1 conv 13*64*3+64, GroupNorm 128, 1x1 skip 13*64+64; blocks 2-3 conv
    # 64*64*3+64 and GroupNorm 128 each; projection 64*64+64.
    tcn = make("tcn", (20, 13))
    assert n_params(tcn) == 2560 + 128 + 896 + 2 * (12352 + 128) + 4160 == 32704
    # gru: per direction 3 gates * (64*13 + 64*64 + 2*64), two directions; projection 128*64+64.
    assert n_params(make("gru", (20, 13))) == 2 * 3 * (832 + 4096 + 128) + 8256 == 38592


@pytest.mark.parametrize(
    ("name", "shape", "message"),
    [
        ("cnn2d", (13,), r"cnn2d expects an image shaped \(C, H, W\) or \(H, W\), got \(13,\)"),
        ("cnn2d", (1, 1, 28, 28), r"got \(1, 1, 28, 28\)"),
        ("cnn2d", (1, 0, 28), r"got \(1, 0, 28\)"),
        ("tcn", (13,), r"tcn expects a sequence shaped \(T, F\), e.g. \(20, 13\), got \(13,\)"),
        ("tcn", (1, 28, 28), r"got \(1, 28, 28\)"),
        ("gru", (0, 13), r"gru expects a sequence shaped \(T, F\).*got \(0, 13\)"),
    ],
)
def test_wrong_input_shape_is_one_clear_config_error(
    name: str, shape: tuple[int, ...], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        make(name, shape)


def test_bad_options_and_bad_batches_are_named() -> None:
    with pytest.raises(ConfigError, match=r"enc: channels=\[\]: expected one or more widths"):
        make("cnn2d", (28, 28), channels=[])
    with pytest.raises(ConfigError, match=r"enc\.norm: 'instance' is not one of"):
        make("tcn", (20, 13), norm="instance")
    with pytest.raises(ConfigError, match=r"kernel_size=4: expected an odd integer"):
        make("tcn", (20, 13), kernel_size=4)
    with pytest.raises(ConfigError, match=r"enc\.hidden_size: unknown key"):
        make("tcn", (20, 13), hidden_size=8)
    with pytest.raises(ValueError, match=r"built for inputs shaped \(1, 28, 28\).*\(2, 28, 28\)"):
        make("cnn2d", (1, 28, 28))(torch.zeros(2, 28, 28))
    with pytest.raises(
        ValueError, match=r"tcn expects a batch shaped \(B, T, 13\).*\(2, 20, 12\)"
    ):
        make("tcn", (20, 13))(torch.zeros(2, 20, 12))
    with pytest.raises(ValueError, match=r"gru expects a batch shaped \(B, T, 13\).*\(2, 0, 13\)"):
        make("gru", (20, 13))(torch.zeros(2, 0, 13))


@pytest.mark.parametrize(
    ("name", "shape", "options"),
    [
        ("cnn2d", (1, 16, 16), {}),
        ("cnn2d", (3, 12, 10), {"norm": "layer"}),
        ("cnn2d", (12, 10), {"norm": "none"}),
        ("tcn", (20, 13), {}),
        ("tcn", (20, 13), {"norm": "batch", "channels": [8, 16]}),
        ("gru", (20, 13), {"num_layers": 2}),
        ("gru", (20, 13), {"bidirectional": False}),
    ],
)
def test_gradients_reach_every_parameter(name: str, shape: tuple[int, ...], options: dict) -> None:
    encoder = make(name, shape, dropout=0.0, **options).train()
    torch.manual_seed(1)
    target = torch.randn(8, encoder.latent_dim)
    (encoder(torch.randn(8, *shape)) - target).square().mean().backward()
    for pname, p in encoder.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, pname


def test_cnn_trunk_is_translation_equivariant() -> None:
    """Shifting the picture by 4 px shifts the 2-stage trunk's map by 1 cell (two 2x max-pools).

    The digit sits inside a zero border, so rolling it equals shifting it; cells whose receptive
    field reaches the border (where zero padding meets normalised activations) are excluded.
    """
    encoder = make("cnn2d", (1, 40, 40), channels=[4, 8])
    encoder.train()(torch.randn(4, 1, 40, 40))  # non-trivial running statistics: BN(0) != 0
    encoder.eval()
    x = torch.zeros(2, 1, 40, 40)
    x[:, :, 8:32, 8:32] = torch.randn(2, 1, 24, 24)
    with torch.no_grad():
        base = encoder.feature_map(x)
        moved = encoder.feature_map(torch.roll(x, shifts=(4, -4), dims=(2, 3)))
    assert base.shape == (2, 8, 10, 10)
    torch.testing.assert_close(moved[:, :, 3:8, 2:7], base[:, :, 2:7, 3:8])
    assert not torch.allclose(moved[:, :, 3:8, 2:7], base[:, :, 3:8, 2:7])  # the map did move


@pytest.mark.parametrize(
    ("name", "shape", "options"),
    [
        ("cnn2d", (1, 28, 28), {}),  # batch norm: running statistics in eval mode
        ("tcn", (20, 13), {"norm": "batch"}),
        ("tcn", (20, 13), {}),
        ("gru", (20, 13), {}),
    ],
)
def test_eval_output_does_not_depend_on_batch_composition(
    name: str, shape: tuple[int, ...], options: dict
) -> None:
    encoder = make(name, shape, **options)
    x = torch.randn(6, *shape)
    encoder.train()(x)  # move any running statistics away from their initial values
    encoder.eval()
    with torch.no_grad():
        full = encoder(x)
        perm = torch.tensor([3, 0, 5, 1, 4, 2])
        torch.testing.assert_close(encoder(x[perm]), full[perm])
        torch.testing.assert_close(encoder(x[2:3]), full[2:3])
        torch.testing.assert_close(
            encoder(torch.cat([x[:2], torch.randn(9, *shape)]))[:2], full[:2]
        )


@pytest.mark.parametrize("name", ["tcn", "gru"])
def test_sequence_encoders_do_not_mix_the_batch_even_in_training(name: str) -> None:
    encoder = make(name, (20, 13), dropout=0.0).train()
    x = torch.randn(5, 20, 13)
    full = encoder(x)
    torch.testing.assert_close(encoder(x[1:2]), full[1:2])
    torch.testing.assert_close(
        encoder(torch.cat([x[:3], 10 * torch.randn(4, 20, 13)]))[:3], full[:3]
    )


def test_tcn_with_batch_norm_does_mix_the_batch_in_training() -> None:
    """Why the tcn's default norm is "layer" (and proof the test above can fail)."""
    encoder = make("tcn", (20, 13), dropout=0.0, norm="batch").train()
    x = torch.randn(5, 20, 13)
    assert not torch.allclose(encoder(x[1:3])[:1], encoder(x)[1:2])


def test_tcn_single_frame_is_a_per_frame_mlp_of_the_centre_taps() -> None:
    """With T = 1 every dilated tap but the centre one reads zero padding, so the TCN reduces to
    ``h <- relu(W_centre h + b + skip(h))`` per block: checked against that hand computation."""
    encoder = make("tcn", (1, 13), channels=[5, 5], kernel_size=3, norm="none", dropout=0.0).eval()
    x = torch.randn(4, 1, 13)
    with torch.no_grad():
        h = x[:, 0, :]
        for block in encoder.blocks:
            centre = block.conv.weight[:, :, 1]  # kernel 3: taps -d, 0, +d
            skip = h if isinstance(block.skip, nn.Identity) else h @ block.skip.weight[:, :, 0].T
            skip = skip + (0 if isinstance(block.skip, nn.Identity) else block.skip.bias)
            h = torch.relu(h @ centre.T + block.conv.bias + skip)
        expected = encoder.project(h)
        torch.testing.assert_close(encoder(x), expected)
        # a model built for 20 frames accepts a 1-frame clip and gives the same kind of latent
        longer = make("tcn", (20, 13), channels=[5, 5], norm="none", dropout=0.0).eval()
        longer.load_state_dict(encoder.state_dict())
        torch.testing.assert_close(longer(x), expected)


def test_single_clip_of_one_frame_trains_with_the_default_norm() -> None:
    for name in ("tcn", "gru"):
        encoder = make(name, (1, 13)).train()
        encoder(torch.randn(1, 1, 13)).sum().backward()  # batch norm would refuse this batch
        assert all(p.grad is not None for p in encoder.parameters())


@pytest.mark.parametrize(
    ("name", "shape"), [("cnn2d", (1, 28, 28)), ("tcn", (20, 13)), ("gru", (20, 13))]
)
def test_overfits_32_random_samples(name: str, shape: tuple[int, ...]) -> None:
    """Capacity check: encoder + linear head memorise 32 random inputs with random labels."""
    encoder = make(name, shape, dropout=0.0)
    head = nn.Linear(encoder.latent_dim, 10)
    torch.manual_seed(2)
    x, y = torch.randn(32, *shape), torch.randint(0, 10, (32,))
    params = [*encoder.parameters(), *head.parameters()]
    optimizer = torch.optim.Adam(params, lr=1e-2)
    accuracy = 0.0
    for step in range(300):
        encoder.train()
        loss = nn.functional.cross_entropy(head(encoder(x)), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step % 10 == 9:
            with torch.no_grad():
                accuracy = (head(encoder.eval()(x)).argmax(1) == y).float().mean().item()
            if accuracy == 1.0:
                break
    assert accuracy == 1.0, f"{name}: train accuracy {accuracy} after {step + 1} steps"


def test_registered_names() -> None:
    assert {"cnn2d", "tcn", "gru"} <= set(ENCODERS)


def test_plug_into_the_multimodal_model_by_params() -> None:
    from mcr.data.dataset import DatasetInfo
    from mcr.models import ModelConfig, ModelSpec, MultimodalModel

    info = DatasetInfo(
        "av", "classification", 10, ("image", "audio"), {"image": (1, 28, 28), "audio": (20, 13)}
    )
    config = ModelConfig(encoders={"image": {"name": "cnn2d"}, "audio": {"name": "tcn"}})
    model = MultimodalModel(ModelSpec.create(info, config)).eval()
    out = model({"image": torch.randn(3, 1, 28, 28), "audio": torch.randn(3, 20, 13)})
    assert out.logits.shape == (3, 10) and out.latents["audio"].shape == (3, 64)

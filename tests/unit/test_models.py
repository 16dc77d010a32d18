"""The model contract: fused = sum of contributions + bias; players partition the parameters."""

from __future__ import annotations

import pytest
import torch

from mcr.config import ConfigError
from mcr.data.dataset import DatasetInfo
from mcr.models import ModelConfig, ModelSpec, MultimodalModel
from mcr.models.encoders import ENCODERS, parse_encoder_spec

INFO = DatasetInfo("toy", "classification", 3, ("a", "b"), {"a": (4,), "b": (2, 3)})


def test_fused_logits_are_sum_of_contributions_plus_bias() -> None:
    torch.manual_seed(0)
    model = MultimodalModel(ModelSpec.create(INFO, ModelConfig())).eval()
    with torch.no_grad():
        model.fusion.bias.copy_(torch.tensor([0.5, -1.0, 2.0]))
    out = model({"a": torch.randn(5, 4), "b": torch.randn(5, 2, 3)})
    torch.testing.assert_close(
        out.logits, out.contributions["a"] + out.contributions["b"] + out.bias
    )
    torch.testing.assert_close(out.in_model_logits("a"), out.contributions["a"] + out.bias / 2)
    assert set(out.unimodal_logits) == {"a", "b"} and out.latents["b"].shape == (5, 64)


def test_players_own_disjoint_parameters_and_bias_is_shared() -> None:
    model = MultimodalModel(ModelSpec.create(INFO, ModelConfig()))
    ids = {m: {id(p) for p in model.player_parameters(m)} for m in model.modalities}
    assert not ids["a"] & ids["b"]
    everything = {id(p) for p in model.parameters()}
    assert everything - ids["a"] - ids["b"] == {id(model.fusion.bias)}


def test_unimodal_model_has_no_separate_head_and_spec_round_trips() -> None:
    spec = ModelSpec.create(INFO, ModelConfig(), ("b",))
    assert not spec.unimodal_heads
    assert ModelSpec.from_dict(spec.to_dict()) == spec
    with pytest.raises(ConfigError, match="modality 'c' is not in dataset 'toy'"):
        ModelSpec.create(INFO, ModelConfig(), ("c",))


def test_per_modality_encoder_override_and_unknown_encoder_message() -> None:
    config = ModelConfig(encoders={"a": {"name": "mlp", "latent_dim": 7, "hidden_dims": []}})
    model = MultimodalModel(ModelSpec.create(INFO, config))
    assert model.encoders["a"].latent_dim == 7 and model.encoders["b"].latent_dim == 64
    with pytest.raises(ConfigError, match=r"model.encoder.name: unknown encoder 'vit'; valid"):
        ModelConfig(encoder={"name": "vit"})
    with pytest.raises(ConfigError, match=r"model\.encoders\.a\.depth: unknown key"):
        ModelConfig(encoders={"a": {"name": "mlp", "depth": 3}})
    assert {"mlp", "resnet18"} <= set(ENCODERS)


def test_resnet18_is_resnet18_sized() -> None:
    spec = parse_encoder_spec({"name": "resnet18"}, "enc")
    encoder = ENCODERS.get("resnet18")(spec.config, (1, 64, 64))
    n_params = sum(p.numel() for p in encoder.parameters())
    assert 11.0e6 < n_params < 11.3e6  # torchvision resnet18 minus its fc: 11.17M (1 channel)
    assert encoder(torch.randn(2, 64, 64)[:, None]).shape == (2, 512)
    flat = ENCODERS.get("resnet18")(spec.config, (32, 32))  # (H, W) -> one channel
    assert flat(torch.randn(2, 32, 32)).shape == (2, 512)


def test_fusion_spec_is_validated_stored_and_defaults_to_linear() -> None:
    spec = ModelSpec.create(INFO, ModelConfig(), fusion={"name": "cosine", "scale": 4})
    assert spec.fusion == {"name": "cosine", "scale": 4.0}
    assert ModelSpec.from_dict(spec.to_dict()) == spec
    old = spec.to_dict()
    del old["fusion"]  # a checkpoint written before fusion heads were selectable
    assert ModelSpec.from_dict(old).fusion == {"name": "linear"}
    with pytest.raises(ConfigError, match=r"fusion\.name: unknown fusion 'attention'; valid"):
        ModelSpec.create(INFO, ModelConfig(), fusion={"name": "attention"})
    with pytest.raises(ConfigError, match=r"fusion\.scale: expected a number > 0, got -1"):
        ModelSpec.create(INFO, ModelConfig(), fusion={"name": "cosine", "scale": -1})
    with pytest.raises(ConfigError, match="shared_head needs equal latent dims"):
        config = ModelConfig(encoders={"a": {"name": "mlp", "latent_dim": 7}})
        MultimodalModel(ModelSpec.create(INFO, config, fusion={"name": "shared_head"}))


def test_parameter_groups_partition_the_trainable_parameters() -> None:
    from mcr.methods import create_method
    from mcr.training.loop import parameter_groups

    model = MultimodalModel(ModelSpec.create(INFO, ModelConfig()))
    for p in model.encoders["b"].parameters():
        p.requires_grad_(False)
    groups = parameter_groups(model, create_method("joint", {}, INFO))
    names = [g["name"] for g in groups]
    ids = [id(p) for g in groups for p in g["params"]]
    assert names == ["a", "b", "shared"] and len(ids) == len(set(ids))
    assert set(ids) == {id(p) for p in model.parameters() if p.requires_grad}
    assert [id(p) for p in groups[-1]["params"]] == [id(model.fusion.bias)]

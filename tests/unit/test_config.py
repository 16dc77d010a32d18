"""Config parsing: every bad key or value gives one message naming it."""

from __future__ import annotations

from pathlib import Path

import pytest

from mcr.config import ConfigError, from_mapping, load_params
from mcr.data.synthetic import SyntheticConfig
from mcr.methods import METHODS, create_method, split_method_name
from mcr.registry import Registry
from mcr.training import RunConfig, TrainConfig


def test_unknown_key_lists_valid_keys() -> None:
    with pytest.raises(
        ConfigError, match=r"train.common.epoch: unknown key; valid keys: .*epochs"
    ):
        RunConfig.from_params({"train": {"common": {"epoch": 3}}})


def test_wrong_type_and_range_name_the_key() -> None:
    with pytest.raises(ConfigError, match=r"train.common.lr: expected a number, got 'fast'"):
        RunConfig.from_params({"train": {"common": {"lr": "fast"}}})
    with pytest.raises(ConfigError, match=r"batch_size=1: expected >= 2"):
        from_mapping(TrainConfig, {"batch_size": 1}, "train.common")
    with pytest.raises(ConfigError, match=r"methods.mcr.game: 'greedyy' is not one of"):
        from_mapping(METHODS.get("mcr").Config, {"game": "greedyy"}, "methods.mcr")
    with pytest.raises(ConfigError, match="num_modalities=1"):
        from_mapping(SyntheticConfig, {"num_modalities": 1}, "data.synthetic")


def test_method_train_overrides_merge_into_common() -> None:
    config = RunConfig.from_params(
        {"train": {"common": {"lr": 0.01}, "methods": {"mcr": {"train": {"lr": 0.5}}}}}
    )
    train, block = config.for_method("mcr")
    assert train.lr == 0.5 and block == {}
    assert config.for_method("joint")[0].lr == 0.01


def test_registry_lists_valid_names_and_refuses_duplicates(tiny_synthetic) -> None:
    with pytest.raises(ConfigError, match=r"unknown method 'mrc'; valid names: .*joint.*mcr"):
        create_method("mrc", {}, tiny_synthetic.info)
    registry: Registry[int] = Registry("thing")
    registry.register("x")(1)
    with pytest.raises(ValueError, match="registered twice"):
        registry.register("x")(2)
    assert split_method_name("unimodal_m2") == ("unimodal", {"modality": "m2"})
    with pytest.raises(ConfigError, match=r"no modality 'm9'; use unimodal_<modality> with one"):
        create_method("unimodal_m9", {}, tiny_synthetic.info)


def test_load_params_merges_files_and_reports_bad_yaml(tmp_path) -> None:
    a, b, bad = tmp_path / "a.yaml", tmp_path / "b.yaml", tmp_path / "bad.yaml"
    a.write_text("train:\n  common: {lr: 0.1, epochs: 4}\n")
    b.write_text("train:\n  common: {lr: 0.2}\n")
    bad.write_text("train: [unclosed\n")
    assert load_params(a, b) == {"train": {"common": {"lr": 0.2, "epochs": 4}}}
    with pytest.raises(ConfigError, match=r"bad.yaml: not valid YAML"):
        load_params(bad)
    with pytest.raises(ConfigError, match=r"missing.yaml: params file not found"):
        load_params(tmp_path / "missing.yaml")


@pytest.mark.parametrize("profile", ["cremad", "ave", "ucf101"])
def test_paper_profiles_give_unimodal_and_joint_runs_their_own_learning_rate(profile) -> None:
    root = Path(__file__).resolve().parents[2]
    params = load_params(root / "params/train.yaml", root / f"params/paper/{profile}.yaml")
    config = RunConfig.from_params(params)
    lrs = {name: config.for_method(name)[0].lr for name in ("unimodal_audio", "joint", "mcr")}
    assert lrs == {"unimodal_audio": 1e-3, "joint": 1e-3, "mcr": 1e-4}
    assert config.for_method("mcr")[0].scheduler == "cosine_restarts"


def test_dataset_regimes_merge_between_common_and_the_method_by_name_or_pattern() -> None:
    config = RunConfig.from_params({"train": {
        "common": {"lr": 0.01, "epochs": 50, "batch_size": 64},
        "methods": {"mcr": {"num_permutations": 8, "train": {"epochs": 40}}},
        "datasets": {
            "paper_r*": {"common": {"epochs": 30, "batch_size": 256},
                         "methods": {"joint": {"train": {"epochs": 80}},
                                     "mcr": {"num_permutations": 1024}}},
            "paper_r4": {"common": {"lr": 0.5}},
        },
    }})  # fmt: skip
    joint = config.for_method("joint", "paper_r2")[0]
    assert (joint.epochs, joint.batch_size, joint.lr) == (80, 256, 0.01)
    mcr, block = config.for_method("mcr", "paper_r2")
    assert mcr.epochs == 40 and mcr.batch_size == 256 and block == {"num_permutations": 1024}
    assert config.for_method("unimodal_m1", "paper_r0.5")[0].epochs == 30
    assert config.for_method("unimodal_m1", "paper_r4")[0].lr == 0.5  # the exact name wins
    assert config.for_method("unimodal_m1", "paper_r4")[0].epochs == 50  # ... and alone
    other = config.for_method("joint", "synthetic_r4")[0]
    assert (other.epochs, other.batch_size) == (50, 64)
    assert config.for_method("mcr")[1] == {"num_permutations": 8}
    with pytest.raises(ConfigError, match=r"train.datasets.x.model: unknown key"):
        RunConfig.from_params({"train": {"datasets": {"x": {"model": {}}}}})


def test_model_overrides_take_patterns_too() -> None:
    from mcr.models import ModelConfig

    config = ModelConfig(datasets={"paper_r*": {"encoder": {"name": "mlp", "hidden_dims": [100]}}})
    assert config.for_dataset("paper_r8").encoder["hidden_dims"] == [100]
    assert config.for_dataset("other").encoder == {"name": "mlp"}


def test_the_paper_regime_is_a_second_sweep_family() -> None:
    from mcr.workflow.layout import pipeline_datasets, sweep_level

    data = {
        "synthetic": {"num_samples": 500},
        "synthetic_paper": {"observed_dims": [100, 10], "projection": "uniform"},
        "sweep": {"u1_to_s_ratio": [0, 2], "paper_regime": [4, 8]},
    }
    sources = pipeline_datasets(data)
    assert list(sources) == ["synthetic_r0", "synthetic_r2", "synthetic_paper_r4",
                             "synthetic_paper_r8"]  # fmt: skip
    paper = sources["synthetic_paper_r4"]
    assert paper.params == {"observed_dims": [100, 10], "projection": "uniform",
                            "u1_to_s_ratio": 4.0}  # fmt: skip
    assert paper.params_key == "data.synthetic_paper" and paper.generator == "synthetic"
    assert sources["synthetic_r2"].params == {"num_samples": 500, "u1_to_s_ratio": 2.0}
    assert [sweep_level(n) for n in sources] == [0.0, 2.0, 4.0, 8.0]
    assert sweep_level("mfeat2") is None


def test_numbers_in_scientific_notation_are_numbers_everywhere(tmp_path) -> None:
    from mcr.cli import _override
    from mcr.config import parse_yaml, set_dotted

    path = tmp_path / "p.yaml"
    path.write_text("train:\n  common: {lr: 1e-3, weight_decay: 5E-4, adam_eps: 1.0e-7}\n")
    assert load_params(path)["train"]["common"] == {
        "lr": 0.001, "weight_decay": 0.0005, "adam_eps": 1e-7
    }  # fmt: skip
    assert RunConfig.from_params(load_params(path)).common.lr == 0.001
    tree: dict = {}
    set_dotted(tree, "train.common.lr=2e-4")
    assert tree == {"train": {"common": {"lr": 0.0002}}}
    assert _override({}, [("train.common.lr", "1e-3")]) == {"train": {"common": {"lr": 0.001}}}
    assert parse_yaml("1e3") == 1000.0 and parse_yaml("1e") == "1e"  # not a number: a string
    assert parse_yaml("v1e3") == "v1e3" and parse_yaml("12") == 12  # ints stay ints


def test_a_top_level_key_that_is_not_a_section_is_refused(tmp_path) -> None:
    from mcr.cli import _override

    path = tmp_path / "typo.yaml"
    path.write_text("trian:\n  common: {epochs: 3}\n")
    with pytest.raises(ConfigError, match=r"typo.yaml: unknown top-level key 'trian' \(expected"):
        load_params(path)
    with pytest.raises(ConfigError, match=r"--set trian.common.epochs: unknown top-level key"):
        _override({}, [("trian.common.epochs", "3")])


@pytest.mark.parametrize(
    "train,message",
    [
        ({"common": {"epochs": 0}}, r"train.common: epochs=0: expected >= 1"),
        ({"methods": {"mcr": {"gam": 1}}}, r"train.methods.mcr.gam: unknown key"),
        ({"methods": {"ogm_typo": {}}}, r"train.methods.ogm_typo: unknown method 'ogm_typo'"),
        ({"methods": {"joint": {"train": {"epoch": 3}}}}, r"train.methods.joint.train.epoch: unk"),
        ({"datasets": {"s*": {"methods": {"mcr": {"lambda_mipd": -1}}}}},
         r"train.datasets.s\*.methods.mcr: lambda_mipd=-1.0: expected >= 0"),
        ({"variants": {"v": {"method": "mcr", "datasets": ["a"], "set": {"game": "no"}}}},
         r"train.variants.v.set.game: 'no' is not one of"),
    ],
)  # fmt: skip
def test_every_method_block_is_checked_when_any_run_loads_the_params(train, message) -> None:
    """A typo in another method's block fails now, not when that method finally runs."""
    with pytest.raises(ConfigError, match=message):
        RunConfig.from_params({"train": {"methods": {"joint": {}}, **train}})

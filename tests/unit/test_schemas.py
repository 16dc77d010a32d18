"""The params files, their JSON schemas and the registries agree."""

from __future__ import annotations

from pathlib import Path

import jsonschema
import pytest
import yaml

from mcr.config import from_mapping, load_params
from mcr.data.synthetic import SyntheticConfig
from mcr.methods import METHODS
from mcr.models import ENCODERS
from mcr.report import ReportConfig
from mcr.training import RunConfig

ROOT = Path(__file__).resolve().parents[2]
STEMS = ("data", "train", "report")


def schema(stem: str) -> dict:
    return yaml.safe_load((ROOT / f"workflow/schemas/{stem}.schema.yaml").read_text())


def real_params() -> dict:
    return load_params(*(ROOT / f"params/{stem}.yaml" for stem in STEMS))


def test_schema_enums_equal_registry_names() -> None:
    train = schema("train")
    assert set(train["properties"]["methods"]["propertyNames"]["enum"]) == set(METHODS)
    assert set(train["$defs"]["encoder"]["properties"]["name"]["enum"]) == set(ENCODERS)


@pytest.mark.parametrize("stem", STEMS)
def test_real_params_validate_and_have_one_top_level_key(stem: str) -> None:
    content = yaml.safe_load((ROOT / f"params/{stem}.yaml").read_text())
    assert list(content) == [stem]  # Snakemake merges the files: no key may collide
    jsonschema.validate(content[stem], schema(stem))


def test_real_params_build_the_library_configs() -> None:
    params = real_params()
    run = RunConfig.from_params(params)
    for name, block in run.methods.items():
        METHODS.get(name)  # every params block names a registered method
        assert isinstance(block, dict | type(None))
    from_mapping(SyntheticConfig, params["data"]["synthetic"], "data.synthetic")
    from_mapping(ReportConfig, params["report"], "report")


def test_schema_rejects_a_typo_with_the_key_named() -> None:
    params = real_params()["train"]
    params["methods"]["mcr"]["lambda_mpid"] = 0.1
    with pytest.raises(jsonschema.ValidationError, match="lambda_mpid"):
        jsonschema.validate(params, schema("train"))
    params = real_params()["train"]
    params["methods"]["ogm_typo"] = {}
    with pytest.raises(jsonschema.ValidationError, match="ogm_typo"):
        jsonschema.validate(params, schema("train"))


def test_every_method_block_schema_matches_its_config_dataclass() -> None:
    """Params blocks are validated by the schema *and* by the Config dataclass: both must list
    the same keys with the same defaults, or a user gets a key the schema accepts but the run
    refuses (or a silently different default)."""
    import dataclasses

    blocks = schema("train")["properties"]["methods"]["properties"]
    for name in METHODS:
        config = METHODS.get(name).Config
        fields = dataclasses.fields(config) if dataclasses.is_dataclass(config) else ()
        fields = [f for f in fields if not (name == "unimodal" and f.name == "modality")]
        if not fields:
            continue
        assert name in blocks, f"workflow/schemas/train.schema.yaml: no block for {name!r}"
        props = blocks[name]["properties"]
        assert set(props) - {"train"} == {f.name for f in fields}, name
        assert blocks[name].get("additionalProperties") is False, name
        for f in fields:
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
            default = list(default) if isinstance(default, tuple) else default
            assert props[f.name].get("default") == default, f"{name}.{f.name}"
            assert props[f.name].get("description"), f"{name}.{f.name}: describe it"

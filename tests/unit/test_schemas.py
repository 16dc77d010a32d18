"""The params files, their JSON schemas, the generated method catalog and the registries agree."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml

from mcr.config import ConfigError, from_mapping, load_params
from mcr.data.dataset import DatasetInfo
from mcr.data.synthetic import SyntheticConfig
from mcr.methods import METHODS, create_method, method_config
from mcr.models import ENCODERS
from mcr.report import ReportConfig
from mcr.training import RunConfig
from mcr.workflow.catalog import CATALOG_FILE, load_catalog

ROOT = Path(__file__).resolve().parents[2]
STEMS = ("data", "train", "report")


def schema(stem: str) -> dict:
    """A params schema with the generated methods schema inlined where it is referenced."""
    content = yaml.safe_load((ROOT / f"workflow/schemas/{stem}.schema.yaml").read_text())
    if stem == "train":
        methods = json.loads((ROOT / CATALOG_FILE).read_text())
        assert content["properties"]["methods"] == {"$ref": "methods.schema.json"}
        content["properties"]["methods"] = methods
    return content


def real_params() -> dict:
    return load_params(*(ROOT / f"params/{stem}.yaml" for stem in STEMS))


def test_the_generated_catalog_is_current() -> None:
    done = subprocess.run(
        [sys.executable, "workflow/tools/method_schema.py", "--check"],
        cwd=ROOT, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr


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
        method_config(name, {k: v for k, v in (block or {}).items() if k != "train"})
    from_mapping(SyntheticConfig, params["data"]["synthetic"], "data.synthetic")
    from_mapping(ReportConfig, params["report"], "report")


def test_schema_rejects_a_typo_a_wrong_type_and_an_out_of_range_value() -> None:
    for block, bad in (({"lambda_mpid": 0.1}, "lambda_mpid"), ({"lambda_mipd": "high"}, "high"),
                       ({"lambda_mipd": -1}, "-1"), ({"game": "chess"}, "chess")):  # fmt: skip
        params = real_params()["train"]
        params["methods"]["mcr"] = block
        with pytest.raises(jsonschema.ValidationError, match=bad):
            jsonschema.validate(params, schema("train"))
    params = real_params()["train"]
    params["methods"]["ogm_typo"] = {}
    with pytest.raises(jsonschema.ValidationError, match="ogm_typo"):
        jsonschema.validate(params, schema("train"))


def test_catalog_defaults_and_facts_equal_the_declarations() -> None:
    """What the DAG reads without torch is what the method modules declare."""
    catalog = load_catalog(ROOT / CATALOG_FILE)
    assert catalog.names() == METHODS.names()
    for name in METHODS:
        cls = METHODS.get(name)
        entry = catalog.get(name)
        defaults = dataclasses.asdict(cls.Config()) if dataclasses.is_dataclass(cls.Config) else {}
        if name == "unimodal":
            defaults.pop("modality")  # set from the run name, not a params key
        plain = {k: list(v) if isinstance(v, tuple) else v for k, v in defaults.items()}
        assert entry.defaults == plain, name
        assert entry.supported_tasks == cls.supported_tasks, name
        assert (entry.min_modalities, entry.max_modalities) == (
            cls.min_modalities, cls.max_modalities,
        ), name  # fmt: skip
        assert entry.unimodal_runs == cls.unimodal_runs, name


@pytest.mark.parametrize("task", ["classification", "regression"])
@pytest.mark.parametrize("count", [2, 3, 4])
def test_the_catalog_refuses_exactly_what_the_methods_refuse(task: str, count: int) -> None:
    names = tuple(f"m{i}" for i in range(1, count + 1))
    info = DatasetInfo(
        "d", task, 1 if task == "regression" else 3, names, {m: (4,) for m in names}
    )
    catalog = load_catalog(ROOT / CATALOG_FILE)
    for name in METHODS:
        if name == "unimodal":
            continue
        try:
            create_method(name, {}, info)
            refused = False
        except ConfigError:
            refused = True
        assert catalog.get(name).applies(task, count) is not refused, (name, task, count)


def test_unimodal_edges_follow_the_declaration_and_the_params() -> None:
    catalog = load_catalog(ROOT / CATALOG_FILE)
    assert catalog.get("ensemble").uses_unimodal_runs(None)
    assert not catalog.get("joint").uses_unimodal_runs({})
    assert not catalog.get("mcr").uses_unimodal_runs({"lambda_mipd": 0.3})
    assert catalog.get("mcr").uses_unimodal_runs({"init_from_unimodal": True})


def test_a_block_lists_only_the_keys_it_changes() -> None:
    """Leaving keys out gives the declared defaults; the schema accepts it."""
    params = real_params()["train"]
    params["methods"] = {"unimodal": {}, "mcr": {"lambda_mipd": 0.3}, "joint": None}
    jsonschema.validate(params, schema("train"))
    _, config = method_config("mcr", {"lambda_mipd": 0.3})
    assert config.lambda_mipd == 0.3 and config.num_permutations == 32

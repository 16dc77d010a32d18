"""Training end to end on tiny synthetic data: every method, every MCR variant, resume, seeds."""

from __future__ import annotations

import json
import math

import pytest
import torch

from mcr.config import ConfigError, to_mapping
from mcr.evaluation import evaluate_run
from mcr.methods import METHODS, uses_unimodal_runs
from mcr.training import RunConfig, TrainConfig, checkpoint, fit, load_model, predict, train_run
from mcr.training.checkpoint import BEST
from tests.conftest import tiny_run_config


def finite_history(result) -> bool:
    return all(math.isfinite(r["train_loss"]) for r in result.history if "train_loss" in r)


@pytest.fixture(scope="module")
def unimodal_runs(tiny_synthetic, tmp_path_factory):
    root = tmp_path_factory.mktemp("unimodal")
    runs = {}
    for m in tiny_synthetic.info.modalities:
        result = train_run(tiny_synthetic, f"unimodal_{m}", tiny_run_config(4), 0, root / m)
        assert finite_history(result)
        runs[m] = root / m
    return runs


#: Every method whose runs start from (or combine) the unimodal runs, from the registry.
CONSUMERS = sorted(n for n in METHODS if n != "unimodal" and uses_unimodal_runs(n, {}))


@pytest.mark.parametrize("method", ["joint", "multiloss", "mcr", *CONSUMERS])
def test_every_method_trains_and_evaluates(method, tiny_synthetic, unimodal_runs, tmp_path):
    runs = unimodal_runs if method in CONSUMERS else None  # the others refuse them
    result = train_run(tiny_synthetic, method, tiny_run_config(8), 0, tmp_path, unimodal_runs=runs)
    assert finite_history(result)
    assert len(result.history) == (1 if method == "ensemble" else 8)  # ensemble: validation only
    metrics = evaluate_run(tmp_path, tiny_synthetic, out_path=tmp_path / "metrics.json")
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["test"]["accuracy"] == metrics["test"]["accuracy"] > 0.3  # chance is 0.2
    assert set(saved["test"]["modalities"]) == {"m1", "m2"}
    assert set(saved["test"]["annotations"]["info_group"]) == {"S", "U1", "U2"}
    groups = saved["test"].get("error_analysis", {}).get("groups", {})
    assert sum(g["n"] for g in groups.values()) in (0, len(tiny_synthetic.test))


def test_methods_needing_unimodal_runs_say_so(tiny_synthetic, tmp_path):
    with pytest.raises(ConfigError, match=r"pass a unimodal run for m1, m2 \(e.g. --unimodal m1="):
        train_run(tiny_synthetic, "ensemble", tiny_run_config(1), 0, tmp_path)


def test_unimodal_inputs_are_checked_before_training(tiny_synthetic, unimodal_runs, tmp_path):
    """A joint run, swapped modalities, an unknown or a missing modality, or unimodal runs given
    to a method that does not use them: one line each, before any training."""
    config = tiny_run_config(1)
    joint = tmp_path / "joint"
    train_run(tiny_synthetic, "joint", config, 0, joint)
    cases = [
        ({"m1": joint, "m2": unimodal_runs["m2"]},
         r"--unimodal m1=.*joint: holds a 'joint' run, expected unimodal_m1"),
        ({"m1": unimodal_runs["m2"], "m2": unimodal_runs["m1"]},
         r"--unimodal m1=.*: holds a 'unimodal_m2' run, expected unimodal_m1"),
        ({**unimodal_runs, "m9": joint},
         r"--unimodal m9: dataset 'synthetic' has no modality 'm9' \(its modalities: m1, m2\)"),
        ({"m1": unimodal_runs["m1"]}, r"pass a unimodal run for m2"),
        ({"m1": tmp_path / "nowhere", "m2": unimodal_runs["m2"]},
         r"--unimodal m1=.*nowhere: no best.pt there \(expected a finished unimodal_m1 run\)"),
    ]  # fmt: skip
    for runs, message in cases:
        with pytest.raises(ConfigError, match=message):
            train_run(tiny_synthetic, "ensemble", config, 0, tmp_path / "e", unimodal_runs=runs)
    with pytest.raises(ConfigError, match=r"method 'joint' does not start from unimodal runs; "
                       r"drop --unimodal \(m1, m2\)"):  # fmt: skip
        train_run(tiny_synthetic, "joint", config, 0, tmp_path / "j", unimodal_runs=unimodal_runs)
    assert not (tmp_path / "e").exists() and not (tmp_path / "j").exists()  # nothing written


def test_ensemble_is_the_validation_standardised_sum(tiny_synthetic, unimodal_runs, tmp_path):
    train_run(tiny_synthetic, "ensemble", tiny_run_config(), 0, tmp_path,
              unimodal_runs=unimodal_runs)  # fmt: skip
    ensemble = load_model(tmp_path)
    expected = 0
    for m, run in unimodal_runs.items():
        uni = load_model(run)
        val_logits = predict(uni, {m: tiny_synthetic.val.inputs[m]}).logits
        test_logits = predict(uni, {m: tiny_synthetic.test.inputs[m]}).logits
        expected = expected + (test_logits - val_logits.mean()) / val_logits.std()
    got = predict(ensemble, tiny_synthetic.test.inputs).logits
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-4)
    one = predict(ensemble, {m: x[:1] for m, x in tiny_synthetic.test.inputs.items()}).logits
    torch.testing.assert_close(one, got[:1], atol=1e-5, rtol=1e-5)  # no batch dependence


def test_frozen_encoders_stay_equal_to_the_unimodal_runs(tiny_synthetic, unimodal_runs, tmp_path):
    train_run(tiny_synthetic, "uni_pre_frozen", tiny_run_config(3), 0, tmp_path,
              unimodal_runs=unimodal_runs)  # fmt: skip
    frozen = load_model(tmp_path)
    for m, run in unimodal_runs.items():
        uni = load_model(run)
        for (name, a), b in zip(frozen.encoders[m].state_dict().items(),
                                uni.encoders[m].state_dict().values(), strict=False):  # fmt: skip
            assert torch.equal(a, b), name


MCR_VARIANTS = [
    {"perturbation": p} for p in ("permute", "noise_latent", "zero_latent", "noise_input",
                                  "zero_input")
] + [
    {"game": "independent"},
    {"game": "collaborative"},
    {"shared_permutation": True},
    {"lambda_ceb": 1.0},
    {"lambda_ceb": 1.0, "ceb_condition": "prediction"},
    {"released_extra_pass": True},
    {"detach_reference": False, "lambda_con": 0.0, "unimodal_weight": 0.0},
]  # fmt: skip


@pytest.mark.parametrize("variant", MCR_VARIANTS, ids=lambda v: "-".join(map(str, v.values())))
def test_mcr_variants_train_with_finite_logged_terms(variant, tiny_synthetic, tmp_path):
    config = tiny_run_config(2, mcr={"num_permutations": 4, **variant})
    result = train_run(tiny_synthetic, "mcr", config, 0, tmp_path)
    assert finite_history(result)
    last = result.history[-1]
    assert last["train_div[m1]"] > 0 and last["train_div[m2]"] > 0
    assert ("train_ceb" in last) == ("lambda_ceb" in variant)


def test_mcr_three_modalities_and_regression(tiny_synthetic3, tiny_regression, tmp_path):
    three = train_run(tiny_synthetic3, "mcr", tiny_run_config(2), 0, tmp_path / "three")
    assert finite_history(three)
    assert {k for k in three.history[-1] if k.startswith("train_div")} == {
        f"train_div[{s}]" for s in ("m1", "m2", "m3", "m1+m2", "m1+m3", "m2+m3")
    }
    reg = train_run(tiny_regression, "mcr", tiny_run_config(30), 0, tmp_path / "reg")
    assert finite_history(reg) and reg.history[-1]["train_div[a]"] > 0  # MSE divergence
    metrics = evaluate_run(tmp_path / "reg", tiny_regression)["test"]
    assert metrics["pearson_r"] > 0.3 and metrics["mae"] < 1.0
    assert set(metrics["modalities"]["a"]) == {"unimodal_head_mae", "in_model_mae",
                                               "permuted_mae"}  # fmt: skip


class Interrupt(Exception):
    pass


@pytest.mark.parametrize("method,params", [("joint", {}), ("multiloss", {}),
                                           ("mcr", {"lambda_ceb": 1.0})])  # fmt: skip
def test_resume_after_interruption_equals_uninterrupted(method, params, tiny_synthetic, tmp_path):
    config = tiny_run_config(4, **{method: params})
    reference = train_run(tiny_synthetic, method, config, 7, tmp_path / "straight")

    def crash_after_epoch_1(record):
        if record["epoch"] == 1:
            raise Interrupt

    with pytest.raises(Interrupt):
        train_run(tiny_synthetic, method, config, 7, tmp_path / "resumed",
                  callbacks=[crash_after_epoch_1])  # fmt: skip
    resumed = train_run(tiny_synthetic, method, config, 7, tmp_path / "resumed")
    drop_time = lambda h: [{k: v for k, v in r.items() if "seconds" not in k} for r in h]
    assert drop_time(resumed.history) == drop_time(reference.history)
    a, b = load_model(tmp_path / "straight"), load_model(tmp_path / "resumed")
    for (name, x), y in zip(a.state_dict().items(), b.state_dict().values(), strict=False):
        assert torch.equal(x, y), name


@pytest.mark.parametrize("every_s,left_after_crash", [(0, 2), (3600, None)])
def test_checkpoints_are_written_at_most_every_checkpoint_every_s(
    every_s, left_after_crash, tiny_synthetic, tmp_path
):
    """Every epoch (0 s): a crash after epoch 1 leaves last.pt at epoch 2. Once an hour: it
    leaves nothing, and the rerun (from scratch) still equals the straight run."""
    config = tiny_run_config(4)
    common = {**to_mapping(config.common), "checkpoint_every_s": every_s}
    config = RunConfig(config.seeds, TrainConfig(**common), config.model, config.methods)
    straight = train_run(tiny_synthetic, "joint", config, 3, tmp_path / "straight")

    def crash_after_epoch_1(record):
        if record["epoch"] == 1:
            raise Interrupt

    with pytest.raises(Interrupt):
        train_run(tiny_synthetic, "joint", config, 3, tmp_path / "run",
                  callbacks=[crash_after_epoch_1])  # fmt: skip
    last = tmp_path / "run" / checkpoint.LAST
    if left_after_crash is None:
        assert not last.exists() and not (tmp_path / "run" / BEST).exists()
    else:
        assert checkpoint.load(last)["progress"]["next_epoch"] == left_after_crash
        assert (tmp_path / "run" / BEST).is_file()
    resumed = train_run(tiny_synthetic, "joint", config, 3, tmp_path / "run")
    drop_time = lambda h: [{k: v for k, v in r.items() if "seconds" not in k} for r in h]
    assert drop_time(resumed.history) == drop_time(straight.history)
    assert checkpoint.load(tmp_path / "run" / BEST)["epoch"] == straight.best_epoch


def test_resume_refuses_changed_settings(tiny_synthetic, tmp_path):
    train_run(tiny_synthetic, "joint", tiny_run_config(1), 0, tmp_path)
    with pytest.raises(ValueError, match=r"last.pt was written with different settings \(seed\)"):
        train_run(tiny_synthetic, "joint", tiny_run_config(1), 1, tmp_path)


def test_same_seed_same_metrics_other_seed_differs(tiny_synthetic, tmp_path):
    config = tiny_run_config(2, mcr={"num_permutations": 4})
    runs = [train_run(tiny_synthetic, "mcr", config, s, tmp_path / f"{i}", resume=False)
            for i, s in enumerate((5, 5, 6))]  # fmt: skip
    assert runs[0].history[-1]["train_loss"] == runs[1].history[-1]["train_loss"]
    assert runs[0].best_val == runs[1].best_val
    assert runs[0].history[-1]["train_loss"] != runs[2].history[-1]["train_loss"]


def test_loop_cannot_select_on_test(tiny_synthetic, tmp_path):
    from mcr.methods import create_method
    from mcr.models import ModelConfig, ModelSpec, MultimodalModel
    from mcr.training import TrainConfig

    method = create_method("joint", {}, tiny_synthetic.info)
    model = MultimodalModel(ModelSpec.create(tiny_synthetic.info, ModelConfig()))
    with pytest.raises(ValueError, match="fit takes the train and val splits, got 'train'/'test'"):
        fit(model, method, tiny_synthetic.train, tiny_synthetic.test, TrainConfig(), 0, tmp_path)
    assert not (tmp_path / BEST).exists()


def test_registry_holds_every_strategy_of_table_1_and_four_more():
    table_1 = {"unimodal", "ensemble", "joint", "multiloss", "uni_pre_frozen",
               "uni_pre_finetuned", "mslr", "mmcosine", "ogm", "agm", "mlb", "reconboost",
               "mmpareto", "dnr", "mcr"}  # fmt: skip
    beyond = {"ogm_ge", "pmr", "mla", "gblend", "inforeg", "mcr_pre"}
    assert set(METHODS) == table_1 | beyond


def test_pipeline_resumes_a_finished_run_only_when_nothing_it_depends_on_changed(
    tiny_synthetic, tmp_path
):
    """A pipeline job reruns when a new seed is added (resume: no retraining), but also when the
    data, the code or the model changed -- then a finished run must be retrained, not resumed."""
    from mcr.config import to_mapping
    from mcr.data.contract import write_dataset
    from mcr.workflow.stages import train_model

    folder = tmp_path / "data"
    write_dataset(tiny_synthetic, folder)
    code = tmp_path / "module.py"
    code.write_text("x = 1\n")
    params = to_mapping(tiny_run_config(2))
    out = tmp_path / "run"

    def train(train_params=params) -> dict:
        train_model(folder, "synthetic", "joint", 0, train_params, out, {}, code_files=[code])
        return json.loads((out / "train_summary.json").read_text())

    def last_written() -> int:
        return (out / "last.pt").stat().st_mtime_ns

    first = train()
    stamp = last_written()
    best = torch.load(out / BEST, weights_only=True)
    history = (out / "history.csv").read_text()
    for output in (BEST, "history.csv", "train_summary.json"):  # Snakemake deletes outputs
        (out / output).unlink()  # before it reruns a job
    assert train() == first and last_written() == stamp  # same inputs: resumed as finished
    restored = torch.load(out / BEST, weights_only=True)  # ... and its outputs restored
    assert restored["epoch"] == best["epoch"] and (out / "history.csv").read_text() == history
    assert all(torch.equal(restored["model_state"][k], v) for k, v in best["model_state"].items())
    code.write_text("x = 2\n")
    changed_code = train()
    assert changed_code["inputs_fingerprint"] != first["inputs_fingerprint"]
    assert last_written() != stamp  # retrained
    stamp = last_written()
    wider = json.loads(json.dumps(params))
    wider["model"]["encoder"]["hidden_dims"] = [48]
    assert train(wider)["model"] != changed_code["model"] and last_written() != stamp
    stamp = last_written()
    table = folder / "train.parquet"
    table.write_bytes(table.read_bytes())  # same bytes: still a resume
    train(wider)
    assert last_written() == stamp


@pytest.mark.slow
def test_a_compiled_forward_trains_like_the_eager_one(tiny_synthetic, tmp_path):
    """``compile: true`` compiles the loop's forward pass (torch.compile runs on CPU too)."""
    from mcr.config import to_mapping

    base = tiny_run_config(2)
    common = {**to_mapping(base.common), "compile": True}
    compiled_config = RunConfig.from_params(
        {"train": {"common": common, "model": to_mapping(base.model), "methods": {}}}
    )
    eager = train_run(tiny_synthetic, "joint", base, 0, tmp_path / "eager")
    compiled = train_run(tiny_synthetic, "joint", compiled_config, 0, tmp_path / "compiled")
    for a, b in zip(eager.history, compiled.history, strict=True):
        assert b["train_loss"] == pytest.approx(a["train_loss"], rel=0.05)
    assert compiled.best_val["accuracy"] > 0.3  # chance is 0.2
    saved = checkpoint.load(tmp_path / "compiled" / BEST)
    assert not any("_orig_mod" in key for key in saved["model_state"])  # plain checkpoint keys


def test_a_variant_trains_and_evaluates_as_its_method_with_the_params_it_sets(
    tiny_synthetic, tmp_path
):
    """``mcr_ind`` (a variant of mcr with the independent game) gives bit-for-bit the run of
    mcr with ``game: independent`` in its own block, under its own name."""
    base = tiny_run_config(2, mcr={"num_permutations": 4})
    variant = RunConfig(
        base.seeds, base.common, base.model, base.methods,
        variants={"mcr_ind": {"method": "mcr", "datasets": ["*"], "set": {"game": "independent"}}},
    )  # fmt: skip
    direct = tiny_run_config(2, mcr={"num_permutations": 4, "game": "independent"})
    a = train_run(tiny_synthetic, "mcr_ind", variant, 0, tmp_path / "variant")
    b = train_run(tiny_synthetic, "mcr", direct, 0, tmp_path / "direct")
    drop_time = lambda h: [{k: v for k, v in r.items() if "seconds" not in k} for r in h]
    assert drop_time(a.history) == drop_time(b.history)
    evaluated = evaluate_run(tmp_path / "variant", tiny_synthetic)
    assert evaluated["method"] == "mcr_ind"
    assert (
        evaluated["test"]["accuracy"]
        == evaluate_run(tmp_path / "direct", tiny_synthetic)["test"]["accuracy"]
    )
    summary = json.loads((tmp_path / "variant" / "train_summary.json").read_text())
    assert summary["variant_of"] == "mcr" and summary["method_config"]["game"] == "independent"


def test_unreadable_checkpoints_give_one_line_with_what_to_do(tiny_synthetic, tmp_path):
    config = tiny_run_config(2)
    train_run(tiny_synthetic, "joint", config, 0, tmp_path / "run")
    best, last = tmp_path / "run" / BEST, tmp_path / "run" / checkpoint.LAST
    best.write_bytes(best.read_bytes()[:100])  # truncated
    with pytest.raises(checkpoint.CheckpointError, match=r"best.pt: cannot read this checkpoint "
                       r"\(truncated or not written by mcr\); retrain the run"):  # fmt: skip
        evaluate_run(tmp_path / "run", tiny_synthetic)
    last.write_text("not a checkpoint")
    with pytest.raises(checkpoint.CheckpointError, match=r"last.pt: cannot read this training "
                       r"state .*delete it, or train with --no-resume"):  # fmt: skip
        train_run(tiny_synthetic, "joint", config, 0, tmp_path / "run")
    # the pipeline (restart_if_changed) starts such a run afresh instead of failing forever
    again = train_run(
        tiny_synthetic, "joint", config, 0, tmp_path / "run", restart_if_changed=True
    )
    assert len(again.history) == 2 and evaluate_run(tmp_path / "run", tiny_synthetic)


def test_an_unfinished_run_is_evaluated_only_when_asked_and_then_says_so(tiny_synthetic, tmp_path):
    def crash_after_epoch_1(record):
        if record["epoch"] == 1:
            raise Interrupt

    with pytest.raises(Interrupt):
        train_run(tiny_synthetic, "joint", tiny_run_config(4), 0, tmp_path,
                  callbacks=[crash_after_epoch_1])  # fmt: skip
    with pytest.raises(ValueError, match=r"has not finished \(epoch 2 of 4 done\); finish it .*"
                       r"--allow-unfinished"):  # fmt: skip
        evaluate_run(tmp_path, tiny_synthetic)
    result = evaluate_run(tmp_path, tiny_synthetic, allow_unfinished=True)
    assert result["unfinished"] is True
    train_run(tiny_synthetic, "joint", tiny_run_config(4), 0, tmp_path)  # resumes to the end
    assert "unfinished" not in evaluate_run(tmp_path, tiny_synthetic)

"""One training run, end to end: method + model from params, preparation, the loop, a summary.

This is what ``mcr train`` and the pipeline's training rule call.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import torch

from mcr.config import ConfigError, dataset_override, deep_merge, from_mapping, to_mapping
from mcr.data.dataset import MultimodalDataset
from mcr.methods import METHODS, SetupContext, create_method, split_method_name
from mcr.models.multimodal import ModelConfig, ModelSpec, MultimodalModel
from mcr.registry import UnknownNameError
from mcr.runtime import resolve_device, seed_everything
from mcr.training import checkpoint
from mcr.training.checkpoint import model_from_state
from mcr.training.loop import EpochCallback, FitResult, TrainConfig, fit
from mcr.training.state import unfinished_reason
from mcr.variants import Variant, parse_variants


@dataclass(frozen=True)
class RunConfig:
    """The ``train`` params block as a run sees it: common settings, model, method params."""

    seeds: tuple[int, ...] = (0,)  # seeds the pipeline trains every method with
    common: TrainConfig = field(default_factory=TrainConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    methods: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: dataset name or pattern -> {common: TrainConfig overrides, methods: method blocks}: a
    #: regime's own budget (e.g. the authors' synthetic runs: batch 256, 30 epochs)
    datasets: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: run name -> {method, datasets, set}: a method under another name with params changed
    #: (the ablations; :mod:`mcr.variants`)
    variants: dict[str, dict[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for key, block in self.datasets.items():
            unknown = sorted(set(block or {}) - {"common", "methods"})
            if unknown:
                raise ConfigError(
                    f"train.datasets.{key}.{unknown[0]}: unknown key (expected common, methods)"
                )
        # Every block is checked now, not only when its method runs: a typo in another method's
        # block fails the first run that loads the params, with the key's path.
        for key, block in self.methods.items():
            check_method_block(key, block, f"train.methods.{key}")
        for regime_key, regime in self.datasets.items():
            for key, block in ((regime or {}).get("methods") or {}).items():
                check_method_block(key, block, f"train.datasets.{regime_key}.methods.{key}")
        for name, variant in self.parsed_variants.items():
            block = deep_merge(self.methods.get(variant.method) or {}, variant.set)
            check_method_block(variant.method, block, f"train.variants.{name}.set")

    @cached_property
    def parsed_variants(self) -> dict[str, Variant]:
        """``variants``, checked (:func:`mcr.variants.parse_variants`), parsed once."""
        return parse_variants(self.variants, self.methods)

    def variant(self, name: str) -> Variant | None:
        """The variant a run name stands for, or None for a method's own runs."""
        return self.parsed_variants.get(name)

    def method_name(self, name: str) -> str:
        """The method a run name builds: a variant's method, else the name itself."""
        variant = self.variant(name)
        return variant.method if variant else name

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> RunConfig:
        return from_mapping(cls, params.get("train"), "train")

    def for_method(
        self, name: str, dataset: str | None = None
    ) -> tuple[TrainConfig, dict[str, Any]]:
        """The method's params block and its train settings on ``dataset``.

        Later wins: ``common`` < ``datasets.<d>.common`` < ``methods.<m>`` (its ``train:``
        block for the settings) < ``datasets.<d>.methods.<m>`` < a variant's ``set``.
        """
        variant = self.variant(name)
        key, _ = split_method_name(variant.method if variant else name)
        where, regime = dataset_override(self.datasets, dataset) if dataset else (None, None)
        regime = regime or {}
        block = deep_merge(
            self.methods.get(key) or {}, (regime.get("methods") or {}).get(key) or {}
        )
        if variant:
            block = deep_merge(block, variant.set)
        overrides = block.pop("train", None) or {}
        common = deep_merge(to_mapping(self.common), regime.get("common") or {})
        merged = deep_merge(common, overrides)
        source = f"train.datasets.{where}" if where else f"train.methods.{key}.train"
        return from_mapping(TrainConfig, merged, source), block


def check_method_block(key: str, block: Mapping[str, Any] | None, where: str) -> None:
    """Build method ``key``'s Config from ``block`` (its ``train:`` part as TrainConfig
    overrides), so an unknown method, key or value fails with the key's path.

    Raises:
        ConfigError: naming ``where`` and what was expected.
    """
    block = dict(block or {})
    from_mapping(TrainConfig, block.pop("train", None) or {}, f"{where}.train")
    try:
        cls = METHODS.get(key)
    except UnknownNameError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    from_mapping(cls.Config, block, where)


def check_unimodal_run(run_dir: Path, modality: str, dataset: str) -> dict[str, Any]:
    """A ``--unimodal <modality>=<run_dir>`` folder must hold a finished ``unimodal_<modality>``
    run of the same dataset: a joint run, swapped modalities or another dataset's run would be
    loaded without complaint and start the method from the wrong weights.

    Returns:
        The run's ``best.pt`` state (read once: the caller builds the model from it).

    Raises:
        ConfigError: naming the folder, what it holds and what was expected.
    """
    where, expected = f"--unimodal {modality}={run_dir}", f"unimodal_{modality}"
    best = run_dir / checkpoint.BEST
    if not best.is_file():
        raise ConfigError(
            f"{where}: no {checkpoint.BEST} there (expected a finished {expected} run)"
        )
    state = checkpoint.load(best)
    if state.get("method") != expected:
        raise ConfigError(f"{where}: holds a {state.get('method')!r} run, expected {expected}")
    trained_on = (state.get("dataset") or {}).get("name")
    if trained_on != dataset:
        raise ConfigError(f"{where}: trained on dataset {trained_on!r}, expected {dataset!r}")
    unfinished = unfinished_reason(run_dir)
    if unfinished:
        raise ConfigError(f"{where}: the run has not finished ({unfinished}); finish it first")
    return state


def train_run(
    dataset: MultimodalDataset,
    method_name: str,
    config: RunConfig,
    seed: int,
    out_dir: str | Path,
    *,
    unimodal_runs: Mapping[str, str | Path] | None = None,
    resume: bool = True,
    restart_if_changed: bool = False,
    callbacks: Sequence[EpochCallback] = (),
    on_start: Callable[[Mapping[str, Any]], None] | None = None,
    progress: bool | None = None,
    inputs_fingerprint: str | None = None,
) -> FitResult:
    """Train ``method_name`` on ``dataset`` with ``seed`` into ``out_dir``.

    Args:
        unimodal_runs: modality -> run folder of a trained ``unimodal_<modality>`` model, for
            methods that start from (or combine) unimodal models.
        callbacks: called after every epoch with its history row.
        on_start: called before the first epoch trained (not for a finished run) with what
            ``train_summary.json`` will hold of the run's identity and settings.
        progress: override ``train.common.progress`` (e.g. off in tests).
        inputs_fingerprint: a hash of what the run is built from beyond its params (data files,
            code, unimodal checkpoints; the pipeline's ``inputs_fingerprint``). It is part of the
            settings a resumed ``last.pt`` must match, so changed data or code retrains instead
            of resuming a finished run. The model architecture is always part of them.
    """
    info = dataset.info
    train_config, method_params = config.for_method(method_name, info.name)
    if progress is not None:
        train_config = from_mapping(
            TrainConfig, {**to_mapping(train_config), "progress": progress}
        )
    method = create_method(config.method_name(method_name), method_params, info)
    device = resolve_device(train_config.device)
    seed_everything(seed)
    spec = ModelSpec.create(
        info, config.model, method.modalities(info.modalities), fusion=method.fusion()
    )
    model = MultimodalModel(spec).to(device)
    if device.type == "cuda" and train_config.channels_last:
        model = model.to(memory_format=torch.channels_last)  # conv kernels pick NHWC
    unimodal_models = {}
    unimodal_runs = dict(unimodal_runs or {})
    if unimodal_runs and not method.needs_unimodal_models:
        raise ConfigError(
            f"method {method_name!r} does not start from unimodal runs; drop --unimodal "
            f"({', '.join(sorted(unimodal_runs))})"
        )
    if method.needs_unimodal_models:
        unknown = sorted(set(unimodal_runs) - set(spec.modalities))
        if unknown:
            raise ConfigError(
                f"--unimodal {unknown[0]}: dataset {info.name!r} has no modality {unknown[0]!r} "
                f"(its modalities: {', '.join(spec.modalities)})"
            )
        missing = [m for m in spec.modalities if m not in unimodal_runs]
        if missing:
            raise ConfigError(
                f"method {method_name!r} starts from unimodal models; pass a unimodal run for "
                f"{', '.join(missing)} (e.g. --unimodal {missing[0]}=<run dir>)"
            )
        unimodal_models = {
            m: model_from_state(check_unimodal_run(Path(unimodal_runs[m]), m, info.name), device)
            for m in spec.modalities
        }
    try:
        context = SetupContext(seed, device, unimodal_models, dataset.val, dataset.train)
        method.prepare(model, context)
    except ValueError as exc:
        raise ConfigError(f"method {method_name!r}: {exc}") from None
    run_meta = {
        "dataset": info.to_dict(),
        "method": method_name,
        "method_config": to_mapping(method.config),
        "model": spec.to_dict(),
    }
    if config.variant(method_name):  # evaluation rebuilds the method from this name
        run_meta["variant_of"] = config.method_name(method_name)
    if inputs_fingerprint is not None:
        run_meta["inputs_fingerprint"] = inputs_fingerprint
    identity = {**run_meta, "train_config": to_mapping(train_config), "seed": seed}
    result = fit(
        model, method, dataset.train, dataset.val, train_config, seed, out_dir,
        run_meta=run_meta, resume=resume, restart_if_changed=restart_if_changed,
        callbacks=callbacks, on_start=on_start and (lambda: on_start(identity)),
    )  # fmt: skip
    summary = {
        **identity,
        "best_epoch": result.best_epoch,
        "best_val": result.best_val,
        "epochs_run": len(result.history),
        "stopped_early": result.stopped_early,
        "seconds": round(result.seconds, 3),
        "started_at": round(result.started_at, 3),  # Unix times: the MLflow run's span
        "finished_at": round(result.finished_at, 3),
    }
    (Path(out_dir) / "train_summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return result

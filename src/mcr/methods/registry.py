"""The method registry and the one place a method name is turned into a configured strategy."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mcr.config import ConfigError, from_mapping
from mcr.data.dataset import DatasetInfo
from mcr.methods.base import Method
from mcr.registry import Registry, UnknownNameError
from mcr.run_names import split_run_name

METHODS: Registry[type[Method]] = Registry("method")


def split_method_name(name: str) -> tuple[str, dict[str, Any]]:
    """Registry key and config overrides for a run's method name (``unimodal_m1`` included)."""
    return split_run_name(name, METHODS)


def method_config(name: str, params: Mapping[str, Any] | None) -> tuple[type[Method], Any]:
    """The method class of run name ``name`` and its Config built from ``params``.

    Raises:
        ConfigError: unknown method or invalid params.
    """
    key, overrides = split_method_name(name)
    try:
        cls = METHODS.get(key)
    except UnknownNameError as exc:
        raise ConfigError(f"{exc} (or unimodal_<modality>)") from None
    return cls, from_mapping(cls.Config, {**(params or {}), **overrides}, f"methods.{key}")


def create_method(name: str, params: Mapping[str, Any] | None, info: DatasetInfo) -> Method:
    """Instantiate method ``name`` with its params block, refusing unsupported settings early.

    Raises:
        ConfigError: unknown method, invalid params, or a method that does not apply to the
            dataset (task or number of modalities) -- before any training starts.
    """
    cls, config = method_config(name, params)
    method = cls(config, info)
    try:
        method.check_supported()
    except ValueError as exc:
        raise ConfigError(f"method {name!r} on dataset {info.name!r}: {exc}") from None
    return method


def uses_unimodal_runs(name: str, params: Mapping[str, Any] | None) -> bool:
    """Whether method ``name`` with ``params`` starts from (or combines) unimodal runs."""
    cls, config = method_config(name, params)
    return cls.uses_unimodal_runs(config)

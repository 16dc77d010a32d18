"""The method registry and the one place a method name is turned into a configured strategy."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mcr.config import ConfigError, from_mapping
from mcr.data.dataset import DatasetInfo
from mcr.methods.base import Method
from mcr.registry import Registry, UnknownNameError

METHODS: Registry[type[Method]] = Registry("method")

#: ``unimodal_<modality>`` names the ``unimodal`` method trained on one modality.
UNIMODAL_PREFIX = "unimodal_"


def split_method_name(name: str) -> tuple[str, dict[str, Any]]:
    """Registry key and config overrides for a run's method name (``unimodal_m1`` included)."""
    if name.startswith(UNIMODAL_PREFIX) and name not in METHODS:
        return "unimodal", {"modality": name[len(UNIMODAL_PREFIX) :]}
    return name, {}


def create_method(name: str, params: Mapping[str, Any] | None, info: DatasetInfo) -> Method:
    """Instantiate method ``name`` with its params block, refusing unsupported settings early.

    Raises:
        ConfigError: unknown method, invalid params, or a method that does not apply to the
            dataset (task or number of modalities) -- before any training starts.
    """
    key, overrides = split_method_name(name)
    try:
        cls = METHODS.get(key)
    except UnknownNameError as exc:
        raise ConfigError(f"{exc} (or unimodal_<modality>)") from None
    config = from_mapping(cls.Config, {**(params or {}), **overrides}, f"methods.{key}")
    method = cls(config, info)
    try:
        method.check_supported()
    except ValueError as exc:
        raise ConfigError(f"method {name!r} on dataset {info.name!r}: {exc}") from None
    return method


def uses_unimodal_runs(name: str, params: Mapping[str, Any] | None) -> bool:
    """Whether method ``name`` with ``params`` starts from (or combines) unimodal runs."""
    key, overrides = split_method_name(name)
    cls = METHODS.get(key)
    config = from_mapping(cls.Config, {**(params or {}), **overrides}, f"methods.{key}")
    return cls.uses_unimodal_runs(config)


def method_applies(name: str, params: Mapping[str, Any] | None, info: DatasetInfo) -> bool:
    """Whether method ``name`` is defined for ``info`` (task, number of modalities).

    Raises:
        ConfigError: unknown method or invalid params -- a mistake, not a non-applicable method.
    """
    key, overrides = split_method_name(name)
    cls = METHODS.get(key)
    config = from_mapping(cls.Config, {**(params or {}), **overrides}, f"methods.{key}")
    try:
        cls(config, info).check_supported()
    except ValueError:
        return False
    return True

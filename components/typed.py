"""Frozen dataclasses built from plain data (YAML, JSON), checked field by field.

One builder serves every typed section: the pipeline configuration loads its
YAML through it, and the components rebuild the sections they receive as
JSON execution properties (the trainer settings, the workload) through it, so
a section is defined once and checked the same way everywhere. Errors name
the dotted key, the bad value and what is valid.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

from components.errors import ConfigError

T = TypeVar("T")
_NONE = type(None)


def _is_section(hint: Any) -> bool:
    return isinstance(hint, type) and dataclasses.is_dataclass(hint)


def valid_keys(cls: type, prefix: str = "") -> list[str]:
    """All dotted keys a section may set, e.g. `trainer.train_steps`."""
    keys: list[str] = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        hint = hints[f.name]
        if _is_section(hint):
            keys.extend(valid_keys(hint, f"{prefix}{f.name}."))
        else:
            keys.append(f"{prefix}{f.name}")
    return keys


def key_type(cls: type, key: str) -> Any:
    """The type a dotted key has under `cls`, following sections and mappings.

    Raises:
        KeyError: `key` names nothing under `cls`.
    """
    hint: Any = cls
    for part in key.split("."):
        if _is_section(hint):
            hints = typing.get_type_hints(hint)
            if part not in {f.name for f in dataclasses.fields(hint)}:
                raise KeyError(key)
            hint = hints[part]
        elif typing.get_origin(hint) is dict:
            hint = typing.get_args(hint)[1]
        else:
            raise KeyError(key)
    return hint


def _describe(value: Any) -> str:
    return f"{value!r} ({type(value).__name__})"


def _coerce(key: str, value: Any, hint: Any) -> Any:
    """Checks `value` against the field type `hint`; returns it typed."""
    origin = typing.get_origin(hint)
    if _is_section(hint):
        return build(hint, {} if value is None else value, f"{key}.")
    if origin in (types.UnionType, typing.Union):
        options = typing.get_args(hint)
        if value is None:
            if _NONE in options:
                return None
            raise ConfigError(f"{key}: a value is required")
        # The value's own type first: `0` under `float | int | str` stays an int.
        exact = [o for o in options if o is type(value)]
        for option in exact + [o for o in options if o is not _NONE and o not in exact]:
            try:
                return _coerce(key, value, option)
            except ConfigError:
                continue
        names = " or ".join(getattr(o, "__name__", str(o)) for o in options if o is not _NONE)
        raise ConfigError(f"{key}: expected {names}, got {_describe(value)}")
    if origin is tuple:
        (item_type, _ellipsis) = typing.get_args(hint)
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{key}: expected a list, got {_describe(value)}")
        return tuple(_coerce(f"{key}[{i}]", v, item_type) for i, v in enumerate(value))
    if origin is dict:
        key_type_, item_type = typing.get_args(hint)
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            raise ConfigError(f"{key}: expected a mapping, got {_describe(value)}")
        return {
            _coerce(f"{key} (a key)", k, key_type_): _coerce(f"{key}.{k}", v, item_type)
            for k, v in value.items()
        }
    if hint is Any:
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true or false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            # JSON round trips (Kubeflow parameters) turn ints into floats.
            if isinstance(value, float) and value.is_integer():
                return int(value)
            raise ConfigError(f"{key}: expected an integer, got {_describe(value)}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{key}: expected a number, got {_describe(value)}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a string, got {_describe(value)}")
        return value
    raise ConfigError(f"{key}: unsupported field type {hint!r}")  # pragma: no cover


def build(cls: type[T], values: Any, prefix: str = "") -> T:
    """Builds the dataclass `cls` from a mapping, checking every key and value.

    Args:
        cls: A (frozen) dataclass whose fields are sections, tuples, dicts,
            unions of scalars, or bool/int/float/str.
        values: The plain data.
        prefix: Dotted prefix of `cls` in error messages (`trainer.`).

    Returns:
        The instance, with the defaults of every field the data leaves out.

    Raises:
        ConfigError: An unknown key (the message lists the valid ones) or a
            badly typed value (the message names the key and the value).
    """
    where = prefix.rstrip(".") or "the top level"
    if not isinstance(values, Mapping):
        raise ConfigError(f"{where}: expected a mapping, got {_describe(values)}")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(str(k) for k in set(values) - known)
    if unknown:
        raise ConfigError(
            f"unknown key(s) {', '.join(prefix + k for k in unknown)} at {where}; "
            f"valid keys: {', '.join(valid_keys(cls, prefix))}"
        )
    kwargs = {name: _coerce(prefix + name, value, hints[name]) for name, value in values.items()}
    return cls(**kwargs)


def to_plain(value: Any) -> Any:
    """A section (or any value inside one) as plain YAML/JSON-able data."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, tuple | list):
        return [to_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {k: to_plain(v) for k, v in value.items()}
    return value

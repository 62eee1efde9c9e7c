"""Types of config fields: reading a value as the type a field declares, and its allowed range.

``coerce(path, value, type)`` converts (an int where a float is expected, a numeric string
YAML read as text) or raises ``ConfigError`` naming the key, the value and what is allowed;
``check_range`` checks ``opt(...)``'s choices and bounds.
"""
from __future__ import annotations

import dataclasses
import math
import re
import types
import typing
from typing import Any, Union

from .groups import ConfigError


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _is_section(tp: Any) -> bool:
    return dataclasses.is_dataclass(tp)


def _unwrap_optional(tp: Any) -> tuple[Any, bool]:
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1 and len(typing.get_args(tp)) == 2:
            return args[0], True
    return tp, False


def _is_list_type(tp: Any) -> bool:
    return typing.get_origin(_unwrap_optional(tp)[0]) is list


def _type_name(tp: Any) -> str:
    inner, optional = _unwrap_optional(tp)
    if typing.get_origin(inner) is list:
        name = f"list of {_type_name(typing.get_args(inner)[0])}"
    elif typing.get_origin(inner) is dict:
        name = "mapping"
    else:
        name = getattr(inner, "__name__", str(inner))
    return f"{name} or null" if optional else name


_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")


def _coerce(path: str, value: Any, tp: Any) -> Any:
    """Check ``value`` against type ``tp``; return it converted (int -> float etc.)."""
    inner, optional = _unwrap_optional(tp)
    if value is None:
        if optional:
            return None
        raise ConfigError(f"{path}: null is not allowed (expected {_type_name(tp)})")
    origin = typing.get_origin(inner)
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{path}: {value!r} is not a list (expected {_type_name(tp)})")
        (elem,) = typing.get_args(inner)
        return [_coerce(f"{path}[{i}]", v, elem) for i, v in enumerate(value)]
    if origin is dict or inner is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{path}: {value!r} is not a mapping")
        return dict(value)
    if inner is Any:
        return value
    if inner is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{path}: {value!r} is not a boolean (use true or false)")
    if inner is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value)
            raise ConfigError(f"{path}: {value!r} is not an integer")
        return value
    if inner is float:
        if isinstance(value, bool):
            raise ConfigError(f"{path}: {value!r} is not a number")
        if isinstance(value, (int, float)):
            return float(value)
        # YAML 1.1 reads 1e-10 as a string; accept numeric-looking strings only.
        if isinstance(value, str) and _NUMBER.match(value.strip()):
            return float(value)
        raise ConfigError(f"{path}: {value!r} is not a number")
    if inner is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{path}: {value!r} is not a string")
    raise ConfigError(f"{path}: unsupported type {tp}")  # pragma: no cover


def _check_range(path: str, value: Any, meta: dict) -> None:
    if value is None:
        return
    choices = meta.get("choices")
    if choices is not None and value not in choices:
        raise ConfigError(f"{path}: {value!r} is not allowed (choose one of: {', '.join(map(str, choices))})")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if isinstance(value, float) and math.isnan(value):
            raise ConfigError(f"{path}: NaN is not allowed")
        if isinstance(value, float) and math.isinf(value):
            raise ConfigError(f"{path}: {value!r} is not allowed (give a finite number)")
        for key, ok, word in (("ge", lambda v, b: v >= b, ">="), ("gt", lambda v, b: v > b, ">"),
                              ("le", lambda v, b: v <= b, "<="), ("lt", lambda v, b: v < b, "<")):
            bound = meta.get(key)
            if bound is not None and not ok(value, bound):
                raise ConfigError(f"{path}: {value!r} is out of range (must be {word} {bound})")

"""Typed conversion of plain YAML data into dataclasses, with errors that name the key path."""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, Literal, Union, get_args, get_origin


class StudyError(ValueError):
    """A study file is invalid; the message names the file and the key path."""


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _convert(value: Any, tp: Any, path: str) -> Any:
    origin = get_origin(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        options = get_args(tp)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return _convert(value, option, path)
            except StudyError as err:
                errors.append(str(err))
        raise StudyError(errors[0] if len(errors) == 1 else f"{path}: {value!r} matches none of {_type_name(tp)}")
    if origin is Literal:
        allowed = get_args(tp)
        if value not in allowed:
            raise StudyError(f"{path}: {value!r} is not one of {list(allowed)}")
        return value
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, path)
    if origin in (list, tuple):
        if not isinstance(value, list | tuple):
            raise StudyError(f"{path}: expected a list, got {type(value).__name__} {value!r}")
        args = get_args(tp)
        item_type = args[0] if args else Any
        items = [_convert(v, item_type, f"{path}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict):
            raise StudyError(f"{path}: expected a mapping, got {type(value).__name__} {value!r}")
        _, value_type = get_args(tp) or (str, Any)
        return {str(k): _convert(v, value_type, f"{path}.{k}") for k, v in value.items()}
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise StudyError(f"{path}: expected a number, got {type(value).__name__} {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise StudyError(f"{path}: expected an integer, got {type(value).__name__} {value!r}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise StudyError(f"{path}: expected true or false, got {type(value).__name__} {value!r}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise StudyError(f"{path}: expected a string, got {type(value).__name__} {value!r}")
        return value
    if isinstance(tp, type) and isinstance(value, tp):
        return value
    raise StudyError(f"{path}: expected {_type_name(tp)}, got {type(value).__name__} {value!r}")


def from_dict(cls: type, data: Any, path: str = "") -> Any:
    """Build dataclass `cls` from `data`; unknown keys and wrong types raise StudyError naming the key path."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise StudyError(f"{path or '<top>'}: expected a mapping, got {type(data).__name__} {data!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        where = f"{path}." if path else ""
        raise StudyError(f"{where}{unknown[0]}: unknown key (allowed: {', '.join(sorted(fields))})")
    kwargs = {}
    for name, value in data.items():
        key_path = f"{path}.{name}" if path else name
        kwargs[name] = _convert(value, hints[name], key_path)
    try:
        return cls(**kwargs)
    except StudyError:
        raise
    except (TypeError, ValueError) as err:
        raise StudyError(f"{path or '<top>'}: {err}") from err


def to_dict(obj: Any) -> Any:
    """Plain-data view of (nested) dataclasses, suitable for YAML/JSON and hashing."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, list | tuple):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {str(k): to_dict(v) for k, v in obj.items()}
    return obj


def set_dotted(data: dict, dotted: str, value: Any) -> None:
    """Set `a.b.c` in a nested dict, creating mappings on the way."""
    node = data
    parts = dotted.split(".")
    for part in parts[:-1]:
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            raise StudyError(f"{dotted}: '{part}' is not a mapping")
        node = child
    node[parts[-1]] = value

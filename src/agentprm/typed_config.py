"""Typed configs: fields that carry their own help (`setting`), and loading from YAML mappings where unknown
keys and wrongly typed values end in one line naming the fix."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any, TypeVar

from agentprm.errors import UserError

T = TypeVar("T")

# Scalar annotations checked on load (the dataclasses use `from __future__ import annotations`: strings).
_SCALARS: dict[str, tuple[type, ...]] = {"int": (int,), "float": (int, float), "bool": (bool,), "str": (str,)}


def setting(default: T, help: str, *, flags: tuple[str, ...] = ()) -> T:
    """A dataclass field with a default and its one-line help: the one place a knob is explained, read by
    the CLI options derived from the dataclass (`agentprm.cli.common.config_options`). `flags`: extra
    option names (e.g. a short alias kept for old command lines)."""
    return dataclasses.field(default=default, metadata={"help": help, "flags": flags})


def setting_help(f: dataclasses.Field) -> str:
    """The help of a field declared with `setting` ("" for a plain field)."""
    return str(f.metadata.get("help", ""))


def _scalar_ok(names: list[str], value: Any) -> bool:
    if isinstance(value, bool) and "bool" not in names:
        return False  # YAML `yes` is not a number
    if isinstance(value, float) and not math.isfinite(value):
        return False  # .nan / .inf: no size, rate or weight here means that
    return any(isinstance(value, t) for p in names for t in _SCALARS[p])


def _type_ok(annotation: object, value: Any) -> bool:
    parts = [p.strip() for p in str(annotation).split("|")]
    typed = [p for p in parts if p != "None"]
    if value is None:
        # None only where the annotation allows it, or for a nested section (its defaults)
        return "None" in parts or not any(p in _SCALARS or p.startswith("list[") for p in typed)
    lists = [p for p in typed if p.startswith("list[")]
    if lists and len(lists) == len(typed):
        if not isinstance(value, list):
            return False  # a lone string where a list is meant (e.g. `objectives: agentprm`)
        inner = [p[5:-1].strip() for p in lists]
        return not all(i in _SCALARS for i in inner) or all(_scalar_ok(inner, x) for x in value)
    known = [p for p in typed if p in _SCALARS]
    if len(known) != len(typed):
        return True  # a container or nested type: checked by whoever builds it
    return _scalar_ok(known, value)


def as_mapping(cls: type, data: Any, where: str) -> dict[str, Any]:
    """A YAML section as a dict (None: empty), or one UserError when it is not a mapping."""
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise UserError(f"{where} must be a mapping of {cls.__name__} fields, not {data!r:.60}; fix it in the config")
    return dict(data)


def check_keys(cls: type, data: Mapping[str, Any], where: str) -> None:
    """Raise one UserError for keys `cls` does not have, values of the wrong scalar type (NaN and infinity
    included), or a negative number (any int field but the seed; any float)."""
    if not isinstance(data, Mapping):
        raise UserError(f"{where} must be a mapping of {cls.__name__} fields, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise UserError(f"unknown {where} keys {unknown}; valid: {', '.join(sorted(fields))}")
    for k, v in data.items():
        if not _type_ok(fields[k].type, v):
            raise UserError(f"{where}.{k} = {v!r} must be of type {fields[k].type}; fix it in the config")
        if k != "seed" and isinstance(v, int) and not isinstance(v, bool) and v < 0:  # counts and sizes
            raise UserError(f"{where}.{k} = {v} must be a whole number >= 0; fix that line")
        if isinstance(v, float) and v < 0:  # rates, weights, epochs, temperatures: none is negative
            raise UserError(f"{where}.{k} = {v} must be a number >= 0; fix that line")


def from_mapping(cls: type[T], data: Mapping[str, Any] | None, where: str, **nested: type) -> T:
    """`cls(**data)` after `check_keys`; `nested` names fields that are themselves dataclasses
    (e.g. `tiny=TinyPolicyConfig`), built from their sub-mapping the same way."""
    data = as_mapping(cls, data, where)
    check_keys(cls, data, where)
    for name, sub in nested.items():
        if name in data and not dataclasses.is_dataclass(data[name]):
            data[name] = from_mapping(sub, data[name], f"{where}.{name}")
    return cls(**data)

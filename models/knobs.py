"""Declared fields ("knobs") of the model and training configs: one source of truth for
their type, bounds, choices and meaning.

A config is a frozen ``@dataclass`` whose fields carry a :class:`Knob` in their metadata.
:func:`validate` checks a JSON mapping against it (strictly: ``"64"`` is not an int), the API
turns the errors into 422s, and the catalog lists the knobs, so the rules are written once.
"""

import dataclasses
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar


@dataclass(frozen=True)
class Knob:
    """Constraints and documentation of one config field."""

    doc: str
    low: float | None = None
    high: float | None = None
    choices: Callable[[], Sequence[Any]] | Sequence[Any] | None = None
    searchable: bool = True

    def allowed(self) -> list[Any] | None:
        if self.choices is None:
            return None
        return list(self.choices() if callable(self.choices) else self.choices)


def knob(default: Any, doc: str, **constraints: Any) -> Any:
    """A dataclass field with a default and its :class:`Knob`."""
    if isinstance(default, list):
        return dataclasses.field(
            default_factory=lambda: list(default), metadata={"knob": Knob(doc, **constraints)}
        )
    return dataclasses.field(default=default, metadata={"knob": Knob(doc, **constraints)})


C = TypeVar("C")
FieldErrors = list[tuple[str, str]]


def knobs(cls: type) -> dict[str, tuple[Any, Knob, Any]]:
    """Field name → (annotation, knob, default) for a config dataclass."""
    hints = typing.get_type_hints(cls)
    out = {}
    for f in dataclasses.fields(cls):
        factory: Any = f.default_factory
        default = f.default if f.default is not dataclasses.MISSING else factory()
        out[f.name] = (hints[f.name], f.metadata["knob"], default)
    return out


def _type_error(value: Any, annotation: Any) -> str | None:
    """Strict JSON type check: bools are not ints, strings are not numbers."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        errors = [_type_error(value, a) for a in typing.get_args(annotation)]
        return None if any(e is None for e in errors) else errors[0]
    if annotation is type(None):
        return None if value is None else "must be null"
    if origin is list:
        (item,) = typing.get_args(annotation)
        if not isinstance(value, list):
            return f"must be a list of {item.__name__}"
        bad = next((v for v in value if _type_error(v, item)), None)
        return None if bad is None else f"must be a list of {item.__name__}, got {bad!r}"
    if annotation is bool:
        return None if isinstance(value, bool) else f"must be true or false, got {value!r}"
    if annotation is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
        return None if ok else f"must be an integer, got {value!r}"
    if annotation is float:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        return None if ok else f"must be a number, got {value!r}"
    if annotation is str:
        return None if isinstance(value, str) else f"must be a string, got {value!r}"
    raise TypeError(f"unsupported knob type {annotation}")


def _value_error(value: Any, k: Knob) -> str | None:
    """Bounds and choices of a value that has the right type; a list's elements are each
    checked (``None`` of an optional field passes)."""
    allowed = k.allowed()
    values = value if isinstance(value, list) else [value]
    if allowed is not None:
        bad = next((v for v in values if v is not None and v not in allowed), None)
        if bad is not None:
            return f"unknown value {bad!r}; valid: {', '.join(map(str, allowed))}"
    for v in values:
        if not isinstance(v, int | float) or isinstance(v, bool):
            continue
        if v != v or v in (float("inf"), float("-inf")):
            return "must be a finite number"
        if k.low is not None and v < k.low:
            return f"must be >= {k.low:g}, got {v}"
        if k.high is not None and v > k.high:
            return f"must be <= {k.high:g}, got {v}"
    if isinstance(value, list) and not value:
        return "must not be empty"
    return None


def validate(cls: type[C], values: Mapping[str, Any]) -> tuple[C | None, FieldErrors]:
    """Check ``values`` against ``cls``'s knobs; build the config when they pass.

    Returns:
        The config (None if any error) and the errors as (field, message) pairs.
    """
    table = knobs(cls)
    errors: FieldErrors = [
        (key, f"unknown field {key!r}; valid: {', '.join(table)}")
        for key in values
        if key not in table
    ]
    for name, (annotation, k, _) in table.items():
        if name not in values:
            continue
        message = _type_error(values[name], annotation) or _value_error(values[name], k)
        if message:
            errors.append((name, message))
    if errors:
        return None, errors
    return cls(**{k: v for k, v in values.items() if k in table}), []


def describe(cls: type) -> dict[str, dict[str, Any]]:
    """The knobs of ``cls`` as JSON for the catalog."""
    out = {}
    for name, (annotation, k, default) in knobs(cls).items():
        entry: dict[str, Any] = {"type": _type_name(annotation), "default": default, "doc": k.doc}
        if k.low is not None:
            entry["low"] = k.low
        if k.high is not None:
            entry["high"] = k.high
        if k.allowed() is not None:
            entry["choices"] = k.allowed()
        entry["searchable"] = k.searchable
        out[name] = entry
    return out


def _type_name(annotation: Any) -> str:
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return " | ".join(_type_name(a) for a in typing.get_args(annotation))
    if typing.get_origin(annotation) is list:
        return f"list[{typing.get_args(annotation)[0].__name__}]"
    return "null" if annotation is type(None) else str(annotation.__name__)

"""One way to declare a setting: its type, default, bounds, choices and meaning.

A group of settings is a frozen ``@dataclass`` whose fields are declared with :func:`setting`:
a model family's config, the training config, DARTS' config, each search algorithm's settings,
each dataset generator's options and each synthetic function's arguments. :func:`check` reads a
JSON mapping against the declaration, strictly (``"64"`` is no integer, ``true`` is no number),
and builds the dataclass; :func:`describe` lists the settings for ``GET /api/v1/catalog`` and
``GET /api/v1/algorithms``. The rules are written once, where the setting is declared.
"""

import dataclasses
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

C = TypeVar("C")
# (setting name, message): the caller places it (a model field, an algorithm setting, ...).
FieldErrors = list[tuple[str, str]]
REQUIRED: Any = dataclasses.MISSING  # a setting without a default must be given
# The longest list a setting may hold (a model's layers or stages): a check or a build is
# never asked to walk an unbounded list.
MAX_LIST_ITEMS = 32


@dataclass(frozen=True)
class Rules:
    """The constraints and documentation of one setting."""

    doc: str
    low: float | None = None
    high: float | None = None
    choices: Callable[[], Sequence[Any]] | Sequence[Any] | None = None
    searchable: bool = True

    def allowed(self) -> list[Any] | None:
        """The values a setting may take, when they are a fixed list."""
        if self.choices is None:
            return None
        return list(self.choices() if callable(self.choices) else self.choices)


def setting(
    default: Any,
    doc: str,
    *,
    low: float | None = None,
    high: float | None = None,
    choices: Callable[[], Sequence[Any]] | Sequence[Any] | None = None,
    searchable: bool = True,
) -> Any:
    """A dataclass field with a default (or :data:`REQUIRED`) and its :class:`Rules`.

    Args:
        default: the value when none is given; a list default is copied for every instance.
        doc: one sentence for the catalog.
        low: inclusive lower bound of a number (of each element of a list).
        high: inclusive upper bound.
        choices: the allowed values (or a function that lists them, read when checked).
        searchable: whether a study may search it (a search-space parameter may set it).
    """
    rules = Rules(doc, low, high, choices, searchable)
    if isinstance(default, list):
        items = list(default)
        return dataclasses.field(default_factory=lambda: list(items), metadata={"rules": rules})
    return dataclasses.field(default=default, metadata={"rules": rules})


@dataclass(frozen=True)
class Declared:
    """One declared setting: its name, type annotation, default and rules."""

    name: str
    annotation: Any
    default: Any
    rules: Rules

    @property
    def required(self) -> bool:
        return self.default is REQUIRED

    @property
    def type_name(self) -> str:
        """The JSON type, e.g. ``int``, ``list[int] | null``."""
        return _type_name(self.annotation)

    @property
    def base_type(self) -> str:
        """The type without ``null``: what a given value must be."""
        names = [n for n in self.type_name.split(" | ") if n != "null"]
        return " | ".join(names) or "null"


def declared(cls: type) -> dict[str, Declared]:
    """Setting name → :class:`Declared`, in declaration order, for a settings dataclass."""
    hints = typing.get_type_hints(cls)
    out = {}
    for f in dataclasses.fields(cls):
        factory: Any = f.default_factory
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif factory is not dataclasses.MISSING:
            default = factory()
        else:
            default = REQUIRED
        out[f.name] = Declared(f.name, hints[f.name], default, f.metadata["rules"])
    return out


def defaults(cls: type) -> dict[str, Any]:
    """Every setting with a default, and its default."""
    return {name: d.default for name, d in declared(cls).items() if not d.required}


_PHRASES = {
    bool: "a bool (true or false)",
    int: "an integer",
    float: "a number",
    str: "a string",
}


def _type_error(value: Any, annotation: Any) -> str | None:
    """Strict JSON type check: bools are not ints, strings are not numbers."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        errors = [_type_error(value, a) for a in typing.get_args(annotation)]
        if any(e is None for e in errors):
            return None
        return next(e for e in errors if e is not None and not e.startswith("must be null"))
    if annotation is type(None):
        return None if value is None else f"must be null, got {value!r}"
    if origin is list:
        (item,) = typing.get_args(annotation)
        if not isinstance(value, list):
            return f"must be a list of {_PHRASES.get(item, item.__name__)}s, got {value!r}"
        bad = next((v for v in value if _type_error(v, item)), None)
        if bad is None:
            return None
        return f"must be a list of {_PHRASES.get(item, item.__name__)}s, got {bad!r} in it"
    if annotation is bool:
        ok = isinstance(value, bool)
    elif annotation is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif annotation is float:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
    elif annotation is str:
        ok = isinstance(value, str)
    else:
        raise TypeError(f"unsupported setting type {annotation}")
    return None if ok else f"must be {_PHRASES[annotation]}, got {value!r}"


def _value_error(value: Any, rules: Rules) -> str | None:
    """Bounds and choices of a value that has the right type; a list's elements are each
    checked (``None`` of an optional setting passes)."""
    if isinstance(value, list) and len(value) > MAX_LIST_ITEMS:
        return f"must have at most {MAX_LIST_ITEMS} items, got {len(value)}"
    allowed = rules.allowed()
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
        if rules.low is not None and v < rules.low:
            return f"must be >= {rules.low:g}, got {v}"
        if rules.high is not None and v > rules.high:
            return f"must be <= {rules.high:g}, got {v}"
    if isinstance(value, list) and not value:
        return "must not be empty"
    return None


def problem(value: Any, d: Declared) -> str | None:
    """Why ``value`` cannot be setting ``d`` (type, bounds, choices), or None."""
    return _type_error(value, d.annotation) or _value_error(value, d.rules)


def check(
    cls: type[C],
    values: Mapping[str, Any],
    what: str = "field",
    owner: str = "",
    named: bool = False,
) -> tuple[C | None, FieldErrors]:
    """Check ``values`` against ``cls``'s declared settings; build ``cls`` when they pass.

    Args:
        cls: a settings dataclass.
        values: the given settings (JSON); missing ones take their defaults.
        what: what a setting is called in messages (``field``, ``setting``, ``option``).
        owner: who has the settings, for the unknown-name message (``" for 'tpe'"``).
        named: start every message with the setting's name (``setting 'seed' must be an
            integer, got 1.5``), for messages read without their location.

    Returns:
        The settings (None if any error) and the errors as (setting, message) pairs.
    """
    table = declared(cls)
    valid = ", ".join(table) or "none"
    errors: FieldErrors = [
        (key, f"unknown {what} {key!r}{owner}; valid: {valid}")
        for key in values
        if key not in table
    ]
    for name, d in table.items():
        if name not in values:
            if d.required:
                errors.append((name, f"{what} {name!r} is required"))
            continue
        message = problem(values[name], d)
        if message and named:
            sep = ": " if message.startswith("unknown") else " "
            message = f"{what} {name!r}{sep}{message}"
        if message:
            errors.append((name, message))
    if errors:
        return None, errors
    return cls(**{k: v for k, v in values.items() if k in table}), []


def build(cls: type[C], values: Mapping[str, Any]) -> C:
    """The settings of a record checked when it was written (a stored study): every known
    value as stored, defaults for the rest. Reading is lenient: a bound or a choice tightened
    by a later release does not apply to what was accepted before, and a setting a later
    release dropped is ignored.

    Raises:
        ValueError: a required setting is missing (a record no release could have written).
    """
    table = declared(cls)
    missing = [name for name, d in table.items() if d.required and name not in values]
    if missing:
        raise ValueError(f"setting {missing[0]!r} is required")
    return cls(**{k: v for k, v in values.items() if k in table})


def as_dict(settings: Any) -> dict[str, Any]:
    """A settings dataclass's values, by name."""
    return {f.name: getattr(settings, f.name) for f in dataclasses.fields(settings)}


def describe(cls: type) -> dict[str, dict[str, Any]]:
    """The settings of ``cls`` as JSON: type, default, doc, bounds, choices, searchable."""
    out = {}
    for name, d in declared(cls).items():
        entry: dict[str, Any] = {"type": d.type_name, "doc": d.rules.doc}
        if not d.required:
            entry["default"] = d.default
        if d.rules.low is not None:
            entry["low"] = d.rules.low
        if d.rules.high is not None:
            entry["high"] = d.rules.high
        if d.rules.allowed() is not None:
            entry["choices"] = d.rules.allowed()
        entry["searchable"] = d.rules.searchable
        out[name] = entry
    return out


def _type_name(annotation: Any) -> str:
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return " | ".join(_type_name(a) for a in typing.get_args(annotation))
    if typing.get_origin(annotation) is list:
        return f"list[{typing.get_args(annotation)[0].__name__}]"
    return "null" if annotation is type(None) else str(annotation.__name__)

"""What every request schema shares: strict fields, and the size limits of a spec."""

from typing import Any

from pydantic import BaseModel, ConfigDict

MAX_DEPTH = 8  # of nested objects and lists in a spec
MAX_STRING = 1000  # characters of any string in a spec (keys included)
MAX_INT = 2**31 - 1  # ids fit the database's 32-bit INTEGER: a larger number is a 422, not a 500

Scalar = str | bool | int | float | None


def one_of(value: str, valid: list[str] | tuple[str, ...], what: str) -> str:
    if value not in valid:
        raise ValueError(f"unknown {what} {value!r}; valid: {', '.join(valid)}")
    return value


class Strict(BaseModel):
    # A typo in a field name is an error, not a silently ignored key; no float in a spec may
    # be infinite or NaN (an infinite bound would only fail later, inside the sampler). Types
    # are the document's: false is no number, 0 and "true" are no booleans, "5" is no integer
    # (strict; an integer still fits a number field).
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, strict=True)


def json_limit_error(value: Any, path: str = "", depth: int = 0) -> str | None:
    """Why a JSON value breaks the spec's size limits (nesting depth, string length), naming
    where; None when it does not."""
    if depth > MAX_DEPTH:
        return f"{path or 'the spec'} nests deeper than {MAX_DEPTH} levels"
    if isinstance(value, str) and len(value) > MAX_STRING:
        return f"{path or 'a string'} is longer than {MAX_STRING} characters"
    items: list[tuple[str, Any]] = []
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(key, str) and len(key) > MAX_STRING:
                return f"a key of {path or 'the spec'} is longer than {MAX_STRING} characters"
            items.append((f"{path}.{key}" if path else str(key), item))
    elif isinstance(value, list):
        items = [(f"{path}[{i}]", item) for i, item in enumerate(value)]
    for where, item in items:
        error = json_limit_error(item, where, depth + 1)
        if error:
            return error
    return None

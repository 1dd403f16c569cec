"""Study files: YAML (or JSON) read as plain data, never as objects."""

import re
from typing import Any

import yaml


class SpecLoader(yaml.SafeLoader):
    """PyYAML's safe loader (plain data, no objects), reading numbers as YAML 1.2 does:
    ``1e-3`` is a float, as users write learning rates (YAML 1.1 wants ``1.0e-3``)."""


SpecLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?"
        r"|[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)"
        r"|\.[0-9_]+(?:[eE][-+]?[0-9]+)?"
        r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
    ),
    list("-+0123456789."),
)


def load_spec(text: str) -> Any:
    """A study spec from YAML (or JSON) text: plain data only (PyYAML's safe constructors)."""
    loader = SpecLoader(text)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()

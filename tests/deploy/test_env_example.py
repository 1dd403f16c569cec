"""The container deployment's settings: every setting is documented in .env.example with its
default, and so is every variable docker-compose.yml (and its CPU-only override) reads.

No Docker runs here: the files are read as text.
"""

import re
from typing import Any

import pytest

from service.config import Settings
from tests.deploy._deploy_files import (
    COMPOSE,
    COMPOSE_CPU,
    COMPOSE_RAY_DASHBOARD,
    ENV_EXAMPLE,
    _env_example,
    compose_variables,
)


def _documented(name: str) -> str | None:
    """The value .env.example gives ``name`` (set or commented), or None if it is not there."""
    match = re.search(rf"^#? ?{name}=(.*)$", ENV_EXAMPLE.read_text(), re.MULTILINE)
    return match[1] if match else None


def _as_env(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


@pytest.mark.parametrize("name", sorted(Settings.model_fields))
def test_every_setting_is_documented_with_its_default(name: str) -> None:
    variable = f"TUNEFORGE_{name.upper()}"
    documented = _documented(variable)
    assert documented is not None, f"{variable} is missing from .env.example"
    assert documented == _as_env(Settings.model_fields[name].default), variable


def test_every_variable_compose_reads_is_documented() -> None:
    for path in (COMPOSE, COMPOSE_CPU, COMPOSE_RAY_DASHBOARD):
        for variable in compose_variables(path.read_text()):
            assert _documented(variable) is not None, f"{path.name}: {variable} undocumented"
    assert _documented("COMPOSE_FILE") is not None, "the CPU-only switch"
    assert "POSTGRES_PASSWORD" in _env_example(), "compose refuses to start without it"

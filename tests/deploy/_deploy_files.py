"""Shared by the deployment tests: where the container deployment's files are, what
.env.example sets, and compose's variable interpolation."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
COMPOSE_CPU = ROOT / "docker-compose.cpu.yml"
COMPOSE_RAY_DASHBOARD = ROOT / "docker-compose.ray-dashboard.yml"
DOCKERFILE = ROOT / "Dockerfile"
ENV_EXAMPLE = ROOT / ".env.example"


def _env_example() -> dict[str, str]:
    """The variables .env.example sets (not the commented ones), as docker compose reads them."""
    values: dict[str, str] = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        match = re.match(r"^([A-Z_][A-Z0-9_]*)=(.*)$", line.strip())
        if match:
            values[match[1]] = match[2]
    return values


_VARIABLE = re.compile(r"\$\$|\$\{([A-Za-z_]\w*)(?:(:?[-?+])([^}]*))?\}|\$([A-Za-z_]\w*)")


def interpolate(text: str, env: dict[str, str]) -> str:
    """Compose's variable interpolation: ``${VAR}``, ``${VAR:-default}``, ``${VAR-default}``,
    ``${VAR:?error}``, ``${VAR?error}``, ``${VAR:+alternative}``, ``${VAR+alternative}``,
    ``$VAR``; ``$$`` is a literal ``$``."""

    def one(match: re.Match[str]) -> str:
        if match[0] == "$$":
            return "$"
        name = match[1] or match[4]
        op, arg = match[2], match[3]
        value = env.get(name)
        unset = value is None or (value == "" and op is not None and op.startswith(":"))
        if op is not None and op.endswith("?") and unset:
            raise KeyError(f"${{{name}}} is required: {arg}")
        if op is not None and op.endswith("-") and unset:
            return arg
        if op is not None and op.endswith("+"):
            return "" if unset else arg
        return value or ""

    return _VARIABLE.sub(one, text)


def compose_variables(text: str) -> set[str]:
    """The variables compose substitutes in a file (``$${X}`` is left to the container)."""
    return {m[1] or m[4] for m in _VARIABLE.finditer(text) if m[0] != "$$"}

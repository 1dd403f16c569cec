"""The Python client and the CLI's client commands: they import nothing of the server.

``from service.client import Client`` gives the typed client (:mod:`service.client.api`); it is
imported on first use, so the CLI (:mod:`service.client.cli`) starts without the HTTP stack.
"""

from typing import Any

__all__ = ["ApiError", "Client", "Unreachable"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from service.client import api

        return getattr(api, name)
    raise AttributeError(f"module 'service.client' has no attribute {name!r}")

"""The client's errors: the API refused (:class:`ApiError`), or nothing answered
(:class:`Unreachable`). Both modules of the client raise them: :mod:`service.client.api` (which
re-exports them) and :mod:`service.client.external` (which catches them)."""

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import httpx


class ApiError(Exception):
    """The API answered 4xx or 5xx. ``errors`` lists ``(path, message)`` for a 422,
    ``fields`` its items as sent (``loc``, ``path``, ``msg``, ``type``); ``retry_after`` the
    seconds a 429 (or 503) asks to wait, None when it named none."""

    def __init__(self, status: int, detail: Any, retry_after: float | None = None) -> None:
        self.status = status
        self.detail = detail
        self.retry_after = retry_after
        self.errors: list[tuple[str, str]] = []
        self.fields: list[dict[str, Any]] = []
        if isinstance(detail, list):
            self.fields = [e for e in detail if isinstance(e, dict)]
            self.errors = [(str(e.get("path") or "(body)"), str(e.get("msg"))) for e in detail]
            message = "; ".join(f"{p}: {m}" for p, m in self.errors)
        else:
            message = str(detail)
        super().__init__(f"{status}: {message}")


class Unreachable(Exception):
    """No tuneforge answers at the client's URL."""


def error_from(resp: "httpx.Response") -> ApiError:
    """The :class:`ApiError` of an answer of status 400 or more."""
    try:
        body = resp.json()
    except ValueError:
        body = None
    detail = body.get("detail", resp.text) if isinstance(body, dict) else resp.text
    return ApiError(resp.status_code, detail, _seconds(resp.headers.get("Retry-After")))


def _seconds(header: str | None) -> float | None:
    # Retry-After in seconds; its HTTP-date form is not one tuneforge sends.
    try:
        return max(0.0, float(header)) if header else None
    except ValueError:
        return None

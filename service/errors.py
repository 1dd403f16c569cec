"""The service's domain errors. Each maps to one HTTP status, in one place:
:mod:`service.api.errors`."""

from collections.abc import Sequence

Loc = tuple[str | int, ...]


class ServiceError(Exception):
    """Base of the errors a route may raise (see :mod:`service.api.errors` for the statuses)."""


class Unauthorized(ServiceError):
    """No API key, or one that is unknown or revoked."""


class Forbidden(ServiceError):
    """A valid key without the right (a tenant key on an admin route)."""


class NotFound(ServiceError):
    """No such resource for this tenant."""


class Conflict(ServiceError):
    """The resource is in use (an active study, a dataset an active study trains on)."""


class OverLimit(ServiceError):
    """A limit of the caller's key or tenant is reached: the answer names the limit, the usage
    and what to do. ``status``: 429 where waiting helps (something in use ends), 403 where
    only the caller's own action or an admin's can (delete something, raise the quota)."""

    def __init__(
        self,
        quota: str,
        limit: int,
        usage: int,
        advice: str,
        status: int = 429,
        retry_after: int = 5,
    ) -> None:
        super().__init__(f"{quota} is {limit} and {usage} are in use; {advice}")
        self.quota, self.limit, self.usage, self.status = quota, limit, usage, status
        self.retry_after = retry_after  # seconds, the Retry-After of a 429


class SpecInvalid(ServiceError):
    """Input whose fields are each valid but do not fit together; ``errors`` = (loc, msg),
    each loc relative to the request body (or the form)."""

    def __init__(self, errors: Sequence[tuple[Loc, str]]) -> None:
        super().__init__("; ".join(m for _, m in errors))
        self.errors = list(errors)

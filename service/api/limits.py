"""Request-size limit enforced on the bytes received, not only on ``Content-Length``.

A chunked request carries no length header; counting what arrives closes that gap.
"""

from collections.abc import Mapping

from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class BodyLimit:
    """Answer 413 to any request whose body exceeds its path's limit in bytes.

    ``overrides`` maps path prefixes to their own limits (``{"/api/v1/datasets": 50_000_000}``
    for uploads); a prefix matches itself and the paths below it, the longest match wins, and
    every other path gets ``limit``.
    """

    def __init__(
        self, app: ASGIApp, limit: int, overrides: Mapping[str, int] | None = None
    ) -> None:
        self.app = app
        self.limit = limit
        # Longest prefix first, so the most specific override wins.
        self.overrides = sorted(
            ((p.rstrip("/"), n) for p, n in (overrides or {}).items()),
            key=lambda pn: len(pn[0]),
            reverse=True,
        )

    def limit_for(self, path: str) -> int:
        """The body limit of a request path."""
        for prefix, limit in self.overrides:
            if path == prefix or path.startswith(prefix + "/"):
                return limit
        return self.limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope["path"])
        detail = f"request body over {limit} bytes"
        length = dict(scope["headers"]).get(b"content-length", b"")
        if length.isdigit() and int(length) > limit:
            await JSONResponse({"detail": detail}, status_code=413)(scope, receive, send)
            return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > limit:
                # Raised while the route reads its body; FastAPI re-raises HTTPExceptions and
                # the exception middleware turns this one into the 413 response.
                raise HTTPException(413, detail)
            return message

        await self.app(scope, counted, send)

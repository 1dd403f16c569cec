"""At most N requests inside the app at once; the others wait their turn in the event loop.

FastAPI runs each sync dependency and route, and their response's serialization, as separate
steps on one threadpool, and a request's database session keeps its connection from one step
to the next. With more requests in flight than threads, every thread can end up waiting for a
connection that belongs to a request waiting for a thread: nothing moves until the pool's
30 s timeout answers 500 (``benchmarks/load.py`` found it: 50 submissions with 200 polls/s).
Admitting fewer requests than there are threads leaves a thread for every step of the
requests admitted, so they always finish, and the queue drains.
"""

import asyncio

from starlette.types import ASGIApp, Receive, Scope, Send

# Paths that touch no database answer at once (health checks under load). An event stream
# lasts as long as its study: it takes no slot, and each of its looks at the database is a
# short step of its own (see ``routes/events.py``).
_UNQUEUED = frozenset({"/healthz"})
_UNQUEUED_SUFFIX = "/events"


class Admission:
    """Let at most ``limit`` HTTP requests run at once (pure ASGI: streaming bodies pass)."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit
        self._slots: asyncio.Semaphore | None = None  # made in the server's event loop

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or path in _UNQUEUED or path.endswith(_UNQUEUED_SUFFIX):
            await self.app(scope, receive, send)
            return
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.limit)
        async with self._slots:
            await self.app(scope, receive, send)

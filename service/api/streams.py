"""Event streams an API process holds open: counted per key, and looked through few threads.

A stream is cheap while it waits, but each look reads the database in a worker thread. Without
limits, one key opening hundreds of streams took every thread the API's requests need. So a key
may hold ``TUNEFORGE_MAX_STREAMS_PER_KEY`` streams at once (one more is a 429 naming the limit),
and every stream's looks share a few threads of their own, apart from the requests' threads.
"""

import threading
from collections import Counter

import anyio

from service.errors import OverLimit

LOOK_THREADS = 4  # threads every stream's looks share


class StreamSlots:
    """How many streams each key holds open in this process."""

    def __init__(self, per_key: int) -> None:
        self.per_key = per_key
        self._open: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._looks: anyio.CapacityLimiter | None = None

    def check(self, key: str) -> None:
        """Raise OverLimit if ``key`` holds ``per_key`` streams already."""
        held = self.held(key)
        if held >= self.per_key:
            raise OverLimit(
                "event streams per API key",
                self.per_key,
                held,
                "close one of this key's streams first (or use another key)",
            )

    def acquire(self, key: str) -> bool:
        """Count one more stream of ``key``; False (nothing counted) at the limit."""
        with self._lock:
            if self._open[key] >= self.per_key:
                return False
            self._open[key] += 1
            return True

    def release(self, key: str) -> None:
        with self._lock:
            self._open[key] -= 1
            if self._open[key] <= 0:
                del self._open[key]

    def held(self, key: str) -> int:
        with self._lock:
            return self._open[key]

    @property
    def looks(self) -> anyio.CapacityLimiter:
        """The threads streams look through (made in the event loop, on first use)."""
        if self._looks is None:
            self._looks = anyio.CapacityLimiter(LOOK_THREADS)
        return self._looks

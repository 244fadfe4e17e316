"""When the latest misses were looked up, so an answer stored later is credited with its seconds.

An adapter that sees a lookup miss and, later, the model's answer being stored (LangChain's
`BaseCache`: ``lookup`` then ``update``) starts the clock at the miss and reads it at the store.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Hashable


class MissClock:
    """The start times of the latest `size` misses, by key (thread-safe; the oldest goes first)."""

    def __init__(self, size: int = 1024) -> None:
        self._size = size
        self._started: dict[Hashable, float] = {}
        self._lock = threading.Lock()

    def start(self, key: Hashable) -> None:
        """Note that the request `key` missed now: the model is being asked."""
        with self._lock:
            self._started[key] = time.monotonic()
            if len(self._started) > self._size:
                del self._started[next(iter(self._started))]

    def seconds(self, key: Hashable) -> float:
        """Seconds since `key` missed, forgetting it; 0.0 when no miss of `key` is known."""
        with self._lock:
            started = self._started.pop(key, None)
        return 0.0 if started is None else time.monotonic() - started

"""Rate-limited warnings: an outage logs one line per kind and interval, not one per request.

>>> warnings = RateLimitedLog(logging.getLogger("stepcache"), interval=60.0)  # doctest: +SKIP
>>> warnings.warning("store", "stepcache: %s failed: %s", "lookup", exc)  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

__all__ = ["RateLimitedLog"]


class RateLimitedLog:
    """Logs at most one warning per `interval` seconds for each *kind* of failure.

    The first warning of a kind is logged at once; later ones within `interval` seconds of it are
    counted, not logged, and the next logged warning of that kind says how many were left out.
    `reset(kind)` (the failure is over) lets the next failure of that kind log at once.
    Thread-safe. `clock` is monotonic seconds (a fake one in tests).
    """

    def __init__(
        self,
        logger: logging.Logger,
        interval: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._logger = logger
        self.interval = interval
        self._clock = clock
        self._last: dict[str, float] = {}  # kind -> when its last warning was logged
        self._suppressed: dict[str, int] = {}  # kind -> warnings left out since then
        self._lock = threading.Lock()

    def warning(self, kind: str, msg: str, *args: object) -> bool:
        """Log `msg % args` unless a warning of `kind` was logged within `interval` seconds;
        return whether it was logged."""
        with self._lock:
            now = self._clock()
            last = self._last.get(kind)
            if last is not None and now - last < self.interval:
                self._suppressed[kind] = self._suppressed.get(kind, 0) + 1
                return False
            self._last[kind] = now
            left_out = self._suppressed.pop(kind, 0)
        if left_out:
            msg += " (%d more like it in the last %.0f s not logged)"
            args += (left_out, now - last if last is not None else 0.0)
        self._logger.warning(msg, *args)
        return True

    def reset(self, kind: str) -> None:
        """Forget `kind`: its next warning is logged at once."""
        with self._lock:
            self._last.pop(kind, None)
            self._suppressed.pop(kind, None)

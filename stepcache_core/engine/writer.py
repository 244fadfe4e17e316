"""The write-behind writer: served answers are stored off the request path, one at a time.

Until an entry is written it answers exact repeats from memory (`recall`). Once a reusable entry
is written its key joins the in-process shape index, so a later request of the same shape tries
it before any embedding. A failed embedding or store write is logged and counted as degraded,
never raised: a cache failure never breaks the user's call.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter, OrderedDict
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as futures_wait
from typing import Any, TypeVar

from stepcache_core.embed import Embedder
from stepcache_core.ratelimit import RateLimitedLog
from stepcache_core.store import Entry, StepStore

log = logging.getLogger("stepcache")
T = TypeVar("T")

#: The longest a request waits for earlier answers' background writes before it searches.
WRITE_WAIT_S = 10.0

#: How many shape keys one StepCache remembers (an in-process index, a few MB at most).
MAX_SHAPES = 50_000

#: How many of the latest entries of one shape are tried before an embedding (those of all the
#: request's shapes are read in the same store call as the exact key).
SHAPE_DEPTH = 4


class Writer:
    """Writes entries to `store` (embedding them with `embedder` when reusable), now or in one
    background thread; failures add to `counters["degraded"]` and warn through `warnings`."""

    def __init__(
        self,
        store: StepStore,
        embedder: Embedder,
        counters: Counter[str],
        warnings: RateLimitedLog | None = None,
    ) -> None:
        self._store = store
        self._embedder = embedder
        self._counters = counters
        self._warnings = warnings if warnings is not None else RateLimitedLog(log)
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        self._pending: set[Future[Any]] = set()
        #: Entries handed to the background thread and not yet written, by key.
        self._unwritten: dict[str, Entry] = {}
        #: shape key -> exact keys of the latest reusable entries of that shape, newest first
        #: (an index of this process's writes; entries are re-read from the store to be used).
        self._shapes: OrderedDict[str, list[str]] = OrderedDict()
        #: Traffic counts not yet added to the store, by (namespace, tenant).
        self._counts: dict[tuple[str, str], Counter[str]] = {}
        self._counting = False  # a counters flush is queued and has not taken the counts yet

    def count(self, namespace: str, tenant: str, counts: Mapping[str, float]) -> None:
        """Add one request's traffic counts to the store's counters in the background: counts
        of many requests are added in one store write (`StepStore.add_counters`)."""
        with self._lock:
            self._counts.setdefault((namespace, tenant), Counter()).update(counts)
            if self._counting:
                return
            self._counting = True
            if self._pool is None:
                self._pool = ThreadPoolExecutor(1, thread_name_prefix="stepcache-store")
            future = self._pool.submit(self._add_counts)
            self._pending.add(future)
        future.add_done_callback(self._counted)

    def _add_counts(self) -> None:
        with self._lock:
            taken, self._counts, self._counting = self._counts, {}, False
        for (namespace, tenant), counts in taken.items():
            self._attempt("counters write", self._store.add_counters, namespace, tenant, counts)

    def _counted(self, future: Future[Any]) -> None:
        with self._lock:
            self._pending.discard(future)

    def recall(self, key: str, shapes: Sequence[str]) -> tuple[Entry | None, list[str]]:
        """The entry under `key` not yet written, and the indexed keys of `shapes` (most
        specific shape first, no repeats, without `key`)."""
        with self._lock:
            entry = self._unwritten.get(key)
            listed = (k for shape in shapes for k in self._shapes.get(shape, ()))
            shaped = [k for k in dict.fromkeys(listed) if k != key]
        return entry, shaped

    def forget(self, shapes: Sequence[str], key: str) -> None:
        """Drop `key` from the index of `shapes` (its entry is no longer in the store)."""
        with self._lock:
            for shape in shapes:
                keys = self._shapes.get(shape)
                if keys is not None and key in keys:
                    keys.remove(key)

    def forget_all(self) -> None:
        """Empty the shape index (the store was cleared)."""
        with self._lock:
            self._shapes.clear()

    def has_pending(self) -> bool:
        """Whether some background write has not finished yet."""
        with self._lock:
            return bool(self._pending)

    def store_behind(self, entry: Entry, shapes: tuple[str, ...], vector: Any) -> None:
        """Write `entry` in the background: serving it waits neither for the write nor for its
        embedding. Until written, the entry answers exact repeats from memory."""
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(1, thread_name_prefix="stepcache-store")
            self._unwritten[entry.key] = entry
            if entry.reusable:  # a shaped request right after this one finds it in memory
                self._index(entry.key, shapes)
            future = self._pool.submit(self.write, entry, shapes, vector)
            self._pending.add(future)
        future.add_done_callback(lambda done: self._written(done, entry))

    def _written(self, future: Future[Any], entry: Entry) -> None:
        with self._lock:
            self._pending.discard(future)
            if self._unwritten.get(entry.key) is entry:
                del self._unwritten[entry.key]

    def flush(self, timeout: float | None = None) -> None:
        """Wait until the answers stored in the background are written."""
        with self._lock:
            pending = list(self._pending)
        futures_wait(pending, timeout=timeout)

    def write(self, entry: Entry, shapes: Sequence[str], vector: Any) -> Entry | None:
        """Write `entry` now (embedding it first when it is reusable and has no vector yet);
        index a reusable one under `shapes`. The entry written, or None."""
        if entry.reusable and vector is None:
            vector = self._attempt("embedding", self._embedder.embed, entry.prompt)
        if (entry.reusable and vector is None) or not self._attempt(
            "store write", _put, self._store, entry, vector
        ):
            self.forget(shapes, entry.key)
            return None
        if entry.reusable:
            with self._lock:
                self._index(entry.key, shapes)
        return entry

    def unwritten(self, keys: Sequence[str]) -> dict[str, Entry]:
        """The entries under `keys` still waiting for their write (read your own writes)."""
        with self._lock:
            return {k: self._unwritten[k] for k in keys if k in self._unwritten}

    def _index(self, key: str, shapes: Sequence[str]) -> None:
        """Make `key` the newest entry of each of `shapes` (call with the lock held)."""
        for shape in shapes:
            keys = self._shapes.pop(shape, [])
            self._shapes[shape] = [key, *(k for k in keys if k != key)][:SHAPE_DEPTH]
        while len(self._shapes) > MAX_SHAPES:
            self._shapes.popitem(last=False)

    def _attempt(self, what: str, fn: Callable[..., T], *args: Any) -> T | None:
        """Run a cache operation; on failure log a warning and degrade to a miss (None)."""
        try:
            return fn(*args)
        except Exception as exc:
            self._counters["degraded"] += 1
            self._warnings.warning(
                what, "stepcache: %s failed, continuing without the cache: %s", what, exc
            )
            return None


def _put(store: StepStore, entry: Entry, vector: Any) -> bool:
    store.put(entry, vector)
    return True

"""`InMemoryStore`: a dict-backed store for tests and single-process use."""

from __future__ import annotations

import math
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence

from stepcache_core.store.entry import Bounds, Entry, Neighbour
from stepcache_core.store.protocol import StepStore


class InMemoryStore(StepStore):
    """A dict-and-list store for unit tests and throwaway caches (brute-force cosine)."""

    def __init__(
        self,
        *,
        max_entries: int | None = None,
        ttl_seconds: float | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.bounds = Bounds(max_entries, ttl_seconds)
        self._clock = clock
        self._entries: dict[str, tuple[Entry, tuple[float, ...] | None]] = {}
        self._counts: dict[tuple[str, str], Counter[str]] = {}
        self._lock = threading.Lock()

    def add_counters(self, namespace: str, tenant: str, counts: Mapping[str, float]) -> None:
        with self._lock:
            self._counts.setdefault((namespace, tenant), Counter()).update(counts)

    def counters(self, namespace: str | None = None, tenant: str | None = None) -> dict[str, float]:
        total: Counter[str] = Counter()
        with self._lock:
            for (ns, te), counts in self._counts.items():
                if namespace in (None, ns) and tenant in (None, te):
                    total.update(counts)
        return dict(total)

    def clear_counters(self, namespace: str | None = None, tenant: str | None = None) -> None:
        with self._lock:
            for ns, te in list(self._counts):
                if namespace in (None, ns) and tenant in (None, te):
                    del self._counts[(ns, te)]

    def get(self, key: str) -> Entry | None:
        with self._lock:
            found = self._entries.get(key)
        if found is None or self.bounds.expired(found[0].created_at, self._clock()):
            return None
        return found[0]

    def nearest(
        self,
        vector: Sequence[float],
        namespace: str,
        tenant: str,
        context: str,
        task: str | None,
        k: int = 4,
    ) -> list[Neighbour]:
        now = self._clock()
        with self._lock:
            rows = list(self._entries.values())
        scored = [
            Neighbour(entry, _cosine(vector, vec))
            for entry, vec in rows
            if vec is not None
            and entry.reusable
            and entry.namespace == namespace
            and entry.tenant == tenant
            and entry.context == context
            and (task is None or entry.task == task)
            and not self.bounds.expired(entry.created_at, now)
        ]
        scored.sort(key=lambda n: n.similarity, reverse=True)
        return scored[:k]

    def put(self, entry: Entry, vector: Sequence[float] | None) -> None:
        with self._lock:
            self._entries[entry.key] = (entry, tuple(vector) if vector is not None else None)
            cutoff = self.bounds.cutoff(self._clock())
            if cutoff is not None:
                for key in [k for k, (e, _) in self._entries.items() if e.created_at < cutoff]:
                    del self._entries[key]
            limit = self.bounds.max_entries
            if limit is not None and len(self._entries) > limit:
                order = sorted(self._entries.items(), key=lambda kv: (kv[1][0].created_at, kv[0]))
                for key, _ in order[: len(order) - self.bounds.low_water()]:
                    del self._entries[key]

    def clear(self, namespace: str | None = None, tenant: str | None = None) -> int:
        with self._lock:
            doomed = [
                k
                for k, (e, _) in self._entries.items()
                if namespace in (None, e.namespace) and tenant in (None, e.tenant)
            ]
            for key in doomed:
                del self._entries[key]
        return len(doomed)

    def count(self, namespace: str | None = None) -> int:
        with self._lock:
            return sum(namespace in (None, e.namespace) for e, _ in self._entries.values())


def _cosine(a: Sequence[float], b: Sequence[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    na = math.sqrt(sum(x * x for x in a))
    nb = math.sqrt(sum(y * y for y in b))
    return dot / (na * nb) if na and nb else 0.0

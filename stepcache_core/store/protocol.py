"""The `StepStore` protocol every store implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence

from stepcache_core.store.entry import Entry, Neighbour


class StepStore(ABC):
    """Persistence for cached requests; implementations must be safe to share between threads."""

    @abstractmethod
    def get(self, key: str) -> Entry | None:
        """The entry stored under `key`, or None."""

    def get_many(self, keys: Sequence[str]) -> dict[str, Entry]:
        """The entries stored under `keys`, by key (missing ones left out); stores that can
        read several rows in one call override this."""
        return {key: entry for key in dict.fromkeys(keys) if (entry := self.get(key)) is not None}

    @abstractmethod
    def nearest(
        self,
        vector: Sequence[float],
        namespace: str,
        tenant: str,
        context: str,
        task: str | None,
        k: int = 4,
    ) -> list[Neighbour]:
        """Up to `k` reusable entries of `task` (None: any) in this scope, most similar first."""

    @abstractmethod
    def put(self, entry: Entry, vector: Sequence[float] | None) -> None:
        """Insert or replace `entry` (vector None: reachable by exact key only)."""

    @abstractmethod
    def clear(self, namespace: str | None = None, tenant: str | None = None) -> int:
        """Delete every entry (of `namespace` and/or `tenant` when given); return how many."""

    @abstractmethod
    def count(self, namespace: str | None = None) -> int:
        """How many entries are stored (in `namespace` when given)."""

    def add_counters(self, namespace: str, tenant: str, counts: Mapping[str, float]) -> None:
        """Add `counts` to the traffic counters of (`namespace`, `tenant`). Additive: concurrent
        adds from any number of processes are all kept. A store without counters ignores them."""
        return None

    def counters(self, namespace: str | None = None, tenant: str | None = None) -> dict[str, float]:
        """The sums of every count added (of `namespace` and/or `tenant` when given)."""
        return {}

    def clear_counters(self, namespace: str | None = None, tenant: str | None = None) -> None:
        """Reset the traffic counters (of `namespace` and/or `tenant` when given) to zero: later
        reads count only what is added afterwards, by any process. A store without counters
        has nothing to reset."""
        return None

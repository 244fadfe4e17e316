"""`UnavailableStore`: the stand-in for a default store that could not be opened."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from stepcache_core.errors import StoreError
from stepcache_core.store.entry import Entry, Neighbour
from stepcache_core.store.protocol import StepStore


class UnavailableStore(StepStore):
    """A store that could not be opened: every operation raises `StoreError` with the reason.

    For callers that must not fail when the cache cannot be opened (a default store made for an
    adapter): the engine turns each failure into a miss, so every call is answered uncached.
    """

    def __init__(self, reason: str) -> None:
        self.reason = reason

    def _fail(self) -> StoreError:
        return StoreError(f"the cache is unavailable: {self.reason}")

    def get(self, key: str) -> Entry | None:
        raise self._fail()

    def nearest(
        self,
        vector: Sequence[float],
        namespace: str,
        tenant: str,
        context: str,
        task: str | None,
        k: int = 4,
    ) -> list[Neighbour]:
        raise self._fail()

    def put(self, entry: Entry, vector: Sequence[float] | None) -> None:
        raise self._fail()

    def add_counters(self, namespace: str, tenant: str, counts: Mapping[str, float]) -> None:
        raise self._fail()

    def counters(self, namespace: str | None = None, tenant: str | None = None) -> dict[str, float]:
        raise self._fail()

    def clear_counters(self, namespace: str | None = None, tenant: str | None = None) -> None:
        raise self._fail()

    def clear(self, namespace: str | None = None, tenant: str | None = None) -> int:
        raise self._fail()

    def count(self, namespace: str | None = None) -> int:
        raise self._fail()

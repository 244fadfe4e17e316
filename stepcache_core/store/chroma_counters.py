"""The traffic counters of a Chroma store: one row per store object and scope."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Mapping
from typing import Any

from stepcache_core.store.chroma_connection import ChromaConnection
from stepcache_core.store.codec import (
    _SCHEMA_KEY,
    SCHEMA_VERSION,
    _hash,
    _placeholder,
)

#: Prefix of the counter fields of a counters row (the rest of its metadata is its scope).
_COUNT_PREFIX = "n:"


class ChromaCounters(ChromaConnection):
    """The traffic counters of a `ChromaStore`.

    Counters live in a collection of their own, one row per store object and scope, holding
    that object's running totals: only this object ever writes its rows, so each write is the
    whole total (an upsert, never a read-modify-write) and adds from many processes at once
    are all kept; a failed write is made good by the next one. `counters` sums the rows.
    """

    _counter_source: str
    _counts: dict[tuple[str, str], Counter[str]]
    _counts_lock: threading.Lock

    def _counter_rows(self, create: bool) -> Any | None:
        """The counters collection (created when `create`), or None when there is none yet."""
        name = f"stepcache-counters-{_hash([self._name])[:40]}"
        if not create:
            return self._scope(name)
        return self._handle(name, "l2", "create counters")

    def add_counters(self, namespace: str, tenant: str, counts: Mapping[str, float]) -> None:
        added = {k: v for k, v in counts.items() if isinstance(v, int | float) and v}
        if not added:
            return
        with self._counts_lock:  # held while writing: a later total never lands first
            totals = self._counts.setdefault((namespace, tenant), Counter())
            totals.update(added)
            values = {f"{_COUNT_PREFIX}{k}": v for k, v in totals.items()}
            meta = {"namespace": namespace, "tenant": tenant, _SCHEMA_KEY: SCHEMA_VERSION, **values}
            row = _hash([self._counter_source, namespace, tenant])
            handle = self._counter_rows(create=True)
            assert handle is not None
            self._guard(
                "counters",
                lambda: handle.upsert(ids=[row], embeddings=[_placeholder(row)], metadatas=[meta]),
            )

    def counters(self, namespace: str | None = None, tenant: str | None = None) -> dict[str, float]:
        handle = self._counter_rows(create=False)
        if handle is None:
            return {}
        clauses = [
            {k: v} for k, v in (("namespace", namespace), ("tenant", tenant)) if v is not None
        ]
        where: dict[str, Any] | None = (
            None if not clauses else clauses[0] if len(clauses) == 1 else {"$and": clauses}
        )
        got = self._guard("counters", lambda: handle.get(where=where, include=["metadatas"]))
        total: dict[str, float] = {}
        for meta in got["metadatas"]:
            for key, value in (meta or {}).items():
                if key.startswith(_COUNT_PREFIX) and isinstance(value, int | float):
                    name = key[len(_COUNT_PREFIX) :]
                    total[name] = total.get(name, 0) + value
        return total

    def count(self, namespace: str | None = None) -> int:
        if namespace is None:
            return int(self._run("count", lambda c: c.count()))
        got = self._run("get", lambda c: c.get(where={"namespace": namespace}, include=[]))
        return len(got["ids"])

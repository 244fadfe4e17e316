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
#: Metadata flag of a scope's reset row: minus the totals its writers' rows held at the last reset.
_RESET_KEY = "reset"
#: Decimal places a float total is rounded to (sums in another order differ in the last bits).
_FLOAT_PLACES = 9


class ChromaCounters(ChromaConnection):
    """The traffic counters of a `ChromaStore`.

    Counters live in a collection of their own, one row per store object and scope, holding
    that object's running totals: only this object ever writes its rows, so each write is the
    whole total (an upsert, never a read-modify-write) and adds from many processes at once
    are all kept; a failed write is made good by the next one. `counters` sums the rows.

    `clear_counters` cannot delete those rows: a process still running would write its whole
    total back on its next add. It writes one reset row per scope instead, holding minus the
    sum of the writers' rows at that moment, so the sum counts only what is added afterwards.
    For the same reason rows are never merged (compacted): nothing tells a finished process's
    row from one whose owner will write again.
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
            _add_row(total, meta or {})
        rounded = {
            k: round(v, _FLOAT_PLACES) if isinstance(v, float) else v for k, v in total.items()
        }
        return {k: v for k, v in rounded.items() if v}  # a count reset to zero reads as absent

    def clear_counters(self, namespace: str | None = None, tenant: str | None = None) -> None:
        handle = self._counter_rows(create=False)
        if handle is None:
            return
        clauses = [
            {k: v} for k, v in (("namespace", namespace), ("tenant", tenant)) if v is not None
        ]
        where: dict[str, Any] | None = (
            None if not clauses else clauses[0] if len(clauses) == 1 else {"$and": clauses}
        )
        got = self._guard("counters", lambda: handle.get(where=where, include=["metadatas"]))
        written: dict[tuple[str, str], dict[str, float]] = {}
        for meta in got["metadatas"]:
            meta = meta or {}
            scope = (str(meta.get("namespace", "")), str(meta.get("tenant", "")))
            totals = written.setdefault(scope, {})
            if not meta.get(_RESET_KEY):
                _add_row(totals, meta)
        if not written:
            return
        ids, metas = [], []
        for (ns, te), totals in written.items():
            ids.append(_hash([_RESET_KEY, ns, te]))
            values = {f"{_COUNT_PREFIX}{k}": -v for k, v in totals.items()}
            metas.append(
                {"namespace": ns, "tenant": te, _SCHEMA_KEY: SCHEMA_VERSION, _RESET_KEY: True,
                 **values}
            )  # fmt: skip
        vectors = [_placeholder(i) for i in ids]
        self._guard("counters", lambda: handle.upsert(ids=ids, embeddings=vectors, metadatas=metas))

    def count(self, namespace: str | None = None) -> int:
        if namespace is None:
            return int(self._run("count", lambda c: c.count()))
        got = self._run("get", lambda c: c.get(where={"namespace": namespace}, include=[]))
        return len(got["ids"])


def _add_row(total: dict[str, float], meta: Mapping[str, Any]) -> None:
    """Add the counter fields of one counters row to `total`."""
    for key, value in meta.items():
        if key.startswith(_COUNT_PREFIX) and isinstance(value, int | float):
            name = key[len(_COUNT_PREFIX) :]
            total[name] = total.get(name, 0) + value

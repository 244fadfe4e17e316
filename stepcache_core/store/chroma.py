"""`ChromaStore`: the Chroma-backed store, embedded on disk or on a Chroma server."""

from __future__ import annotations

import logging
import math
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

from stepcache_core.errors import SchemaVersionError, StoreError
from stepcache_core.ratelimit import RateLimitedLog
from stepcache_core.store.chroma_connection import (
    _WARN_INTERVAL_S,
    _forget_failed_system,
    _unopenable,
)
from stepcache_core.store.chroma_counters import ChromaCounters
from stepcache_core.store.codec import (
    _created_at,
    _decode,
    _encode,
    _hash,
    _in_scope,
    _placeholder,
    _scope_of,
    _slug,
)
from stepcache_core.store.entry import Bounds, Entry, Neighbour
from stepcache_core.store.protocol import StepStore

log = logging.getLogger("stepcache")


#: Most vector hits one similarity query fetches per scope while looking past dropped rows.
_MAX_FETCH = 256


#: Threads of one store that query scope collections in parallel (a search over every task).
_SEARCH_THREADS = 4


_CHUNK = 5000


class ChromaStore(ChromaCounters, StepStore):
    """Chroma-backed store: embedded on disk by default, or a Chroma server when `host` is given.

    Layout (schema version 3): one *main* collection holds every entry, keyed by its exact key
    (documents and metadata; a 1-d placeholder vector), and serves `get`, `count`, `clear`,
    eviction and TTL. Each scope (namespace, tenant, context, task) has its own *scope*
    collection holding only the vectors of its reusable entries, keyed by the same exact key, so
    a similarity query needs no metadata filter and can only ever see its own scope's entries.
    A small *registry* collection maps each scope collection to its scope. `nearest` queries the
    scope collection, then reads the hits' documents from the main collection by id and checks
    them again (digest, scope, TTL): the main row is the entry's one source of truth.

    A ``PersistentClient`` is not safe across processes: several processes (or machines) share one
    cache through a Chroma server (``chroma run --path DIR --host 127.0.0.1 --port N``) and
    ``host=``/``port=``. Every request to a server, connecting and reconnecting included, runs in
    a worker thread that the caller waits for at most `timeout` seconds: a server that is down,
    unreachable or hung (accepting connections, never answering) makes operations raise
    `StoreError` within `timeout` (the engine turns that into a miss), and for `retry_seconds`
    after that at once, without a request. The store logs one warning per outage (at most one a
    minute) and reconnects by itself, at most once per `retry_seconds`.

    An embedded directory that cannot be opened (damaged, read-only, being created by another
    process at the same instant) raises `StoreError` naming the path and the remedy.

    Args:
        path: directory of the embedded store (ignored with `host` or `client`).
        host, port: a Chroma server.
        collection: collection name prefix; the embedder's name is appended (vectors of two
            embedders never mix).
        client: a ready chromadb client (tests, custom settings).
        max_entries, ttl_seconds: bounds, see `Bounds`. Give every process the same values.
        timeout: seconds a server request (connection included) may take before it fails
            (None: no limit).
        retry_seconds: pause between reconnection attempts while the server is unreachable.
        clock: the wall clock used for TTLs (entries carry their `created_at`).

    Raises:
        SchemaVersionError: the collection was written by another StepCache schema version.
        StoreError: the embedded directory cannot be opened.
    """

    def __init__(
        self,
        path: str | Path | None = None,
        *,
        host: str | None = None,
        port: int = 8000,
        collection: str = "stepcache",
        embedder_name: str = "all-MiniLM-L6-v2",
        client: Any = None,
        max_entries: int | None = None,
        ttl_seconds: float | None = None,
        timeout: float | None = 10.0,
        retry_seconds: float = 2.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.bounds = Bounds(max_entries, ttl_seconds)
        self._clock = clock
        self._host = host
        self._port = port
        self._timeout = timeout
        self._retry_seconds = retry_seconds
        self._embedder_name = embedder_name
        self._name = f"{collection}-{_slug(embedder_name)}"
        self._registry_name = f"stepcache-registry-{_hash([self._name])[:40]}"
        self._client: Any = client
        self._collection_handle: Any = None
        self._registry_handle: Any = None
        self._scopes: dict[str, Any] = {}  # scope collection name -> handle (this process)
        self._registered: set[str] = set()  # scope collections this process put in the registry
        self._lock = threading.Lock()  # held while connecting
        self._state_lock = threading.Lock()  # held while dropping a lost connection
        self._searchers: ThreadPoolExecutor | None = None  # parallel queries over scopes
        self._next_attempt = 0.0
        self._last_purge = -math.inf
        # Server requests run in worker threads the caller waits for at most `timeout` seconds.
        self._bounded = host is not None and client is None and timeout is not None
        self._connecting: Future[tuple[Any, Any, Any]] | None = None  # a connection in flight
        self._down = False  # the last request or connection failed: the server is unreachable
        self._warnings = RateLimitedLog(log, _WARN_INTERVAL_S)
        self._counter_source = uuid.uuid4().hex  # names this object's counter rows
        self._counts: dict[tuple[str, str], Counter[str]] = {}  # its running totals
        self._counts_lock = threading.Lock()
        if client is None and host is None:
            if path is None:
                raise StoreError("ChromaStore needs a path (embedded) or a host (server)")
            self._path: Path | None = Path(path)
        else:
            self._path = None
        try:
            self._connect()
        except SchemaVersionError:
            raise
        except Exception as exc:
            if self._path is not None:
                _forget_failed_system(self._path)
                raise StoreError(_unopenable(self._path, exc)) from exc
            if host is None or client is not None:
                raise
            self._went_down("unreachable", exc)

    # ---------------------------------------------------------------- StepStore

    def get(self, key: str) -> Entry | None:
        return self.get_many([key]).get(key)

    def get_many(self, keys: Sequence[str]) -> dict[str, Entry]:
        ids = list(dict.fromkeys(keys))
        if not ids:
            return {}
        got = self._run("get", lambda c: c.get(ids=ids, include=["documents", "metadatas"]))
        now = self._clock()
        out: dict[str, Entry] = {}
        for key, document, meta in zip(got["ids"], got["documents"], got["metadatas"], strict=True):
            entry = _decode(key, document, meta)
            if entry is not None and not self.bounds.expired(entry.created_at, now):
                out[key] = entry
        return out

    def nearest(
        self,
        vector: Sequence[float],
        namespace: str,
        tenant: str,
        context: str,
        task: str | None,
        k: int = 4,
    ) -> list[Neighbour]:
        if k < 1:
            return []
        if task is not None:
            names = [self._scope_name(namespace, tenant, context, task)]
        else:
            group = self._group(namespace, tenant, context)
            names = self._registry("registry", lambda r: r.get(where={"group": group}, include=[]))[
                "ids"
            ]
        scopes = [(name, handle) for name in names if (handle := self._scope(name)) is not None]
        if not scopes:
            return []
        query = [list(vector)]
        n = k
        while True:
            # No `where=`: each scope collection holds only its scope's reusable entries.
            hits: list[tuple[float, str, str]] = []
            exhausted = True
            for (name, _), got in zip(scopes, self._search_all(scopes, query, n), strict=True):
                ids = got["ids"][0]
                exhausted = exhausted and len(ids) < n
                hits.extend(
                    (float(d), key, name) for key, d in zip(ids, got["distances"][0], strict=True)
                )
            hits.sort()
            out = self._neighbours(hits, namespace, tenant, context, task, k)
            # Rows dropped by the checks (expired, stale, damaged) must not hide live ones.
            if len(out) >= k or exhausted or n >= _MAX_FETCH:
                return out
            n = min(n * 4, _MAX_FETCH)

    def _search_all(
        self, scopes: Sequence[tuple[str, Any]], query: list[list[float]], n: int
    ) -> list[Any]:
        """`_search` of every scope; several scopes (a query for any task) are searched in
        parallel threads (Chroma releases the GIL while it searches)."""
        if len(scopes) == 1:
            return [self._search(*scopes[0], query, n)]
        with self._lock:
            if self._searchers is None:
                self._searchers = ThreadPoolExecutor(
                    _SEARCH_THREADS, thread_name_prefix="stepcache-search"
                )
            pool = self._searchers
        futures = [pool.submit(self._search, name, handle, query, n) for name, handle in scopes]
        return [f.result() for f in futures]

    def _search(self, name: str, handle: Any, query: list[list[float]], n: int) -> Any:
        """The `n` nearest vectors in one scope collection (no filter)."""
        search = partial(handle.query, query_embeddings=query, n_results=n, include=["distances"])
        for pause in (0.01, 0.05, 0.0):
            try:
                return self._guard("query", search, scope=name)
            except Exception as exc:
                # Chroma (1.5) fails a query that overlaps the first writes into a new collection
                # ("Error creating hnsw segment reader: Nothing found on disk"): its index is not
                # on disk yet. Retry briefly; then the scope reads as not written yet.
                if "Nothing found on disk" not in str(exc):
                    raise
                if pause:
                    time.sleep(pause)
        log.debug("stepcache: scope collection %s has no index yet, searched as empty", name)
        return {"ids": [[]], "distances": [[]]}

    def _neighbours(
        self,
        hits: Sequence[tuple[float, str, str]],
        namespace: str,
        tenant: str,
        context: str,
        task: str | None,
        k: int,
    ) -> list[Neighbour]:
        """The entries behind vector hits, read from the main collection and checked again."""
        keys = list(dict.fromkeys(key for _, key, _ in hits))
        if not keys:
            return []
        got = self._run("get", lambda c: c.get(ids=keys, include=["documents", "metadatas"]))
        rows = dict(
            zip(got["ids"], zip(got["documents"], got["metadatas"], strict=True), strict=True)
        )
        now = self._clock()
        out: list[Neighbour] = []
        seen: set[str] = set()
        for dist, key, name in hits:
            row = rows.get(key)
            if key in seen or row is None:
                continue  # a vector whose entry is gone (or not yet written): not an entry
            document, meta = row
            if not isinstance(meta, dict) or meta.get("scope") != name:
                continue  # a stale vector: the entry now lives elsewhere or is exact-only
            entry = _decode(key, document, meta)
            if (
                entry is None
                or not _in_scope(entry, namespace, tenant, context, task)
                or self.bounds.expired(entry.created_at, now)  # TTL: checked after the query
            ):
                continue
            seen.add(key)
            out.append(Neighbour(entry, 1.0 - dist))
            if len(out) == k:
                break
        return out

    def put(self, entry: Entry, vector: Sequence[float] | None) -> None:
        reusable = entry.reusable and vector is not None
        scope = (
            self._scope_name(entry.namespace, entry.tenant, entry.context, entry.task)
            if reusable
            else ""
        )
        document, meta = _encode(entry, reusable=reusable, scope=scope)
        before = self._run("get", lambda c: c.get(ids=[entry.key], include=["metadatas"]))
        old = _scope_of(before["metadatas"][0]) if before["ids"] else ""
        # Write order (see docs/reliability.md): the vector first, then the main row, which is
        # the commit. A crash in between leaves a vector without an entry, which no reader
        # returns; a visible reusable entry always has its vector.
        if reusable:
            assert vector is not None
            handle = self._scope_for_write(scope, entry)
            emb = [list(vector)]
            self._guard("upsert", lambda: handle.upsert(ids=[entry.key], embeddings=emb), scope)
        self._run(
            "upsert",
            lambda c: c.upsert(
                ids=[entry.key],
                embeddings=[_placeholder(entry.key)],
                documents=[document],
                metadatas=[meta],
            ),
        )
        if old and old != scope:  # the entry moved scope (another task) or became exact-only
            self._delete_vectors(old, [entry.key])
        self._enforce_bounds()

    def _enforce_bounds(self) -> None:
        now = self._clock()
        cutoff = self.bounds.cutoff(now)
        if cutoff is not None and now - self._last_purge >= self.bounds.purge_interval():
            self._last_purge = now
            got = self._run(
                "purge scan",
                lambda c: c.get(where={"created_at": {"$lt": cutoff}}, include=["metadatas"]),
            )
            self._delete_entries(list(zip(got["ids"], got["metadatas"], strict=True)))
        limit = self.bounds.max_entries
        if limit is None or self._run("count", lambda c: c.count()) <= limit:
            return
        got = self._run("scan", lambda c: c.get(include=["metadatas"]))
        order = sorted(
            zip(got["ids"], got["metadatas"], strict=True),
            key=lambda row: (_created_at(row[1]), row[0]),
        )
        self._delete_entries(order[: len(order) - self.bounds.low_water()])

    def _delete_entries(self, rows: Sequence[tuple[str, Any]]) -> None:
        """Delete entries: their vectors first, then their main rows (see docs/reliability.md)."""
        by_scope: dict[str, list[str]] = {}
        for key, meta in rows:
            scope = _scope_of(meta)
            if scope:
                by_scope.setdefault(scope, []).append(key)
        for scope, keys in by_scope.items():
            self._delete_vectors(scope, keys)
        self._delete([key for key, _ in rows])

    def _delete_vectors(self, scope: str, keys: Sequence[str]) -> None:
        handle = self._scope(scope)
        if handle is None:
            return
        for start in range(0, len(keys), _CHUNK):
            chunk = list(keys[start : start + _CHUNK])
            self._guard("delete", partial(handle.delete, ids=chunk), scope)

    def _delete(self, ids: Sequence[str]) -> None:
        for start in range(0, len(ids), _CHUNK):
            chunk = list(ids[start : start + _CHUNK])
            self._run("delete", lambda c: c.delete(ids=chunk))  # noqa: B023 - called at once

    def clear(self, namespace: str | None = None, tenant: str | None = None) -> int:
        clauses = [
            {k: v} for k, v in (("namespace", namespace), ("tenant", tenant)) if v is not None
        ]
        where: dict[str, Any] | None = (
            None if not clauses else clauses[0] if len(clauses) == 1 else {"$and": clauses}
        )
        # Every vector of a matching scope goes (orphans of crashed writes too), then the rows.
        scopes = self._registry("registry", lambda r: r.get(where=where, include=[]))["ids"]
        for scope in scopes:
            handle = self._scope(scope)
            if handle is not None:
                keys = self._guard("scan", partial(handle.get, include=[]), scope)["ids"]
                self._delete_vectors(scope, keys)
        ids = self._run("get", lambda c: c.get(where=where, include=[]))["ids"]
        self._delete(ids)
        return len(ids)

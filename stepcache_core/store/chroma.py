"""Where cached requests and their steps live: the StepStore protocol, Chroma and in-memory stores.

One record per cached request. Its steps travel inside the same record (a JSON document carrying a
sha256 digest of its content), so an entry is written by a single upsert of that record: a reader
sees the whole entry or none of it, never a request without its steps, and a damaged document
reads as absent. Vectors are explicit (``embedding_function=None``). Scope isolation is
structural: the vectors of each scope (namespace, tenant, context, task) live in a collection of
their own, so a similarity query runs without a metadata filter and cannot reach another scope.

Bounds live in the store, the one place every process's writes pass through: ``max_entries``
(eviction of the least recently *created* entries) and ``ttl_seconds`` (expired entries are neither
returned nor used as templates, and are purged on write).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import re
import socket
import threading
import time
import uuid
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from stepcache_core.errors import ConfigError, SchemaVersionError, StoreError
from stepcache_core.ratelimit import RateLimitedLog

log = logging.getLogger("stepcache")
T = TypeVar("T")

#: Version of the stored layout (key derivation, document and metadata fields, collections).
#: Version 2: keys hash a JSON array (injective), documents carry a sha256 digest of their
#: content. Version 3: vectors live in one collection per scope; the main collection keeps rows.
SCHEMA_VERSION = 3
_SCHEMA_KEY = "stepcache_schema"


@dataclass(frozen=True, slots=True)
class Entry:
    """One cached request and its answer."""

    key: str
    namespace: str
    context: str
    prompt: str
    answer: str
    steps: tuple[str, ...]
    task: str | None = None
    reusable: bool = False  # verified by its task: may serve as a template for other requests
    payload: str | None = None  # adapter data returned on exact hits (e.g. serialized generations)
    tenant: str = ""
    created_at: float = field(default_factory=time.time)
    #: The identity of the task registry that judged the answer (`TaskRegistry.identity`): an
    #: exact hit is served only to a reader whose registry is the same.
    registry: str = ""
    #: What the backend spent writing the answer (prompt + completion tokens, seconds); 0 when
    #: unknown. An answer served from this entry reports it as saved.
    cost_tokens: int = 0
    cost_seconds: float = 0.0


@dataclass(frozen=True, slots=True)
class Neighbour:
    entry: Entry
    similarity: float  # cosine similarity, 1.0 = same direction


def normalize_prompt(prompt: str) -> str:
    """The prompt as the exact tier sees it: runs of whitespace collapsed, ends stripped."""
    return " ".join(prompt.split())


def entry_key(namespace: str, tenant: str, context: str, prompt: str) -> str:
    """The exact-match key of a request (whitespace-normalised prompt).

    The parts are hashed as a JSON array, an injective encoding: no namespace, tenant, context or
    prompt text (separator characters, quotes, another tenant's name) can make two different
    scopes share a key.
    """
    raw = json.dumps([namespace, tenant, context, normalize_prompt(prompt)], ensure_ascii=False)
    return hashlib.sha256(raw.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass(frozen=True, slots=True)
class Bounds:
    """Size and age limits of a store.

    `max_entries`: when a write takes the store above it, the least recently created entries are
    deleted down to a low-water mark (95 % of it for bounds of 20 and more, else exactly it), so
    the scan that finds them runs once per many writes. `ttl_seconds`: an entry older than this
    is neither returned nor used as a template, and is deleted on a later write.
    """

    max_entries: int | None = None
    ttl_seconds: float | None = None

    def __post_init__(self) -> None:
        if self.max_entries is not None and (
            isinstance(self.max_entries, bool) or self.max_entries < 1
        ):
            raise ConfigError(f"max_entries must be >= 1 or None, got {self.max_entries!r}")
        ttl = self.ttl_seconds
        if ttl is not None and not (ttl > 0 and math.isfinite(ttl)):
            raise ConfigError(f"ttl_seconds must be a positive finite number or None, got {ttl!r}")

    def cutoff(self, now: float) -> float | None:
        """Entries created before this instant are expired (None: no TTL)."""
        return None if self.ttl_seconds is None else now - self.ttl_seconds

    def expired(self, created_at: float, now: float) -> bool:
        cutoff = self.cutoff(now)
        return cutoff is not None and created_at < cutoff

    def low_water(self) -> int:
        """How many entries eviction keeps."""
        assert self.max_entries is not None
        return self.max_entries - self.max_entries // 20

    def purge_interval(self) -> float:
        """At most one TTL purge per this many seconds per store object."""
        return 0.0 if self.ttl_seconds is None else min(60.0, self.ttl_seconds / 4)


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

    def clear(self, namespace: str | None = None, tenant: str | None = None) -> int:
        raise self._fail()

    def count(self, namespace: str | None = None) -> int:
        raise self._fail()


def _cosine(a: Sequence[float], b: Sequence[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    na = math.sqrt(sum(x * x for x in a))
    nb = math.sqrt(sum(y * y for y in b))
    return dot / (na * nb) if na and nb else 0.0


class ChromaStore(StepStore):
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

    # ---------------------------------------------------------------- connection

    def _connect(self) -> Any:
        """Open the client (when needed) and the main and registry collections; install them."""
        if self._bounded:
            client, handle, registry = self._await_connection()
        else:
            client, handle, registry = self._open_store(self._client)
        self._client, self._registry_handle = client, registry
        self._collection_handle = handle
        return handle

    def _await_connection(self) -> tuple[Any, Any, Any]:
        """A new server connection, waited for at most `timeout` seconds.

        A connection that did not finish in time stays in flight (chromadb's first request has
        no timeout and cannot be cancelled); the next attempt waits for that same one instead of
        starting another, so a hung server holds at most one connecting thread per store.
        """
        pending = self._connecting
        if pending is None:
            pending = self._connecting = _in_thread(partial(self._open_store, None))
        try:
            result = pending.result(self._timeout)
        except TimeoutError:
            raise _NoAnswer(f"no answer within {self._timeout:g} s") from None
        except BaseException:
            self._connecting = None
            raise
        self._connecting = None
        return result

    def _open_store(self, client: Any) -> tuple[Any, Any, Any]:
        """`client` (a new one when None) with the main and registry collections opened."""
        if client is None:
            client = self._new_client()
        handle = self._open(client, self._name, "l2")
        registry = self._open(client, self._registry_name, "l2", main=self._name)
        return client, handle, registry

    def _new_client(self) -> Any:
        import chromadb
        from chromadb.config import Settings

        settings = Settings(anonymized_telemetry=False)
        if self._host is not None:
            # Fail fast on a dead or black-holed address before chromadb's unbounded requests.
            socket.create_connection((self._host, self._port), timeout=self._timeout).close()
            client = chromadb.HttpClient(host=self._host, port=self._port, settings=settings)
            _set_timeout(client, self._timeout)
            return client
        assert self._path is not None
        self._path.mkdir(parents=True, exist_ok=True)
        return chromadb.PersistentClient(path=str(self._path), settings=settings)

    def _open(self, client: Any, name: str, space: str, **extra: str) -> Any:
        """Get or create a collection of this store and check its schema version."""
        handle = client.get_or_create_collection(
            name,
            embedding_function=None,
            configuration={"hnsw": {"space": space}},
            metadata={_SCHEMA_KEY: SCHEMA_VERSION, "embedder": self._embedder_name, **extra},
        )
        _check_schema(name, handle)
        return handle

    @property
    def _collection(self) -> Any:
        """The main collection, connecting (or reconnecting to a server) when needed."""
        handle = self._collection_handle
        if handle is not None:
            return handle
        with self._lock:
            if self._collection_handle is not None:
                return self._collection_handle
            now = time.monotonic()
            if now < self._next_attempt:
                raise StoreError(
                    f"chroma server {self._host}:{self._port} unreachable (next retry in "
                    f"{self._next_attempt - now:.1f} s)"
                )
            try:
                handle = self._connect()
            except SchemaVersionError:
                raise
            except Exception as exc:
                self._went_down("unreachable", exc)
                raise StoreError(
                    f"chroma server {self._host}:{self._port} unreachable: {exc}"
                ) from exc
            if self._down:
                self._down = False
                self._warnings.reset("server")
                log.info("stepcache: chroma server %s:%s answers again", self._host, self._port)
            return handle

    def _went_down(self, how: str, exc: BaseException) -> None:
        """Drop the connection; retry it in `retry_seconds`; warn once per outage."""
        with self._state_lock:
            self._collection_handle = None
            self._registry_handle = None
            self._scopes.clear()
            self._registered.clear()
            self._client = None
            self._next_attempt = time.monotonic() + self._retry_seconds
            self._down = True
        self._warnings.warning(
            "server",
            "stepcache: chroma server %s:%s %s, running without the cache until it answers "
            "(retried at most every %g s): %s",
            self._host,
            self._port,
            how,
            self._retry_seconds,
            exc,
        )

    def _call(self, fn: Callable[[], T]) -> T:
        """`fn()`, waited for at most `timeout` seconds when talking to a server."""
        if not self._bounded:
            return fn()
        try:
            return _in_thread(fn).result(self._timeout)
        except TimeoutError:
            raise _NoAnswer(f"no answer within {self._timeout:g} s") from None

    def _guard(self, what: str, fn: Callable[[], T], scope: str | None = None) -> T:
        """Run `fn` (bounded by `timeout`); a server that went away or hangs is reconnected to
        on a later call."""
        try:
            return self._call(fn)
        except _NoAnswer as exc:
            self._went_down("not answering", exc)
            raise StoreError(f"chroma {what} failed, server not answering: {exc}") from exc
        except Exception as exc:
            if scope is not None and _not_found(exc):
                # A scope collection dropped behind this process's back: look it up again later.
                self._scopes.pop(scope, None)
                self._registered.discard(scope)
                raise StoreError(f"chroma {what} failed, scope collection gone: {exc}") from exc
            if self._host is not None and _lost_server(exc):
                self._went_down("unreachable", exc)
                raise StoreError(f"chroma {what} failed, server unreachable: {exc}") from exc
            raise

    def _run(self, what: str, op: Callable[[Any], T]) -> T:
        """Run `op` on the main collection."""
        collection = self._collection
        return self._guard(what, lambda: op(collection))

    def _registry(self, what: str, op: Callable[[Any], T]) -> T:
        """Run `op` on the registry collection."""
        self._collection  # noqa: B018 - connects when needed
        registry = self._registry_handle
        if registry is None:
            raise StoreError("chroma registry unavailable (reconnecting)")
        return self._guard(what, lambda: op(registry))

    def _scope(self, name: str) -> Any | None:
        """The scope collection `name`, or None when no process has created it yet."""
        handle = self._scopes.get(name)
        if handle is not None:
            return handle
        self._collection  # noqa: B018 - connects when needed
        client = self._client

        def fetch() -> Any:
            try:
                return client.get_collection(name, embedding_function=None)
            except Exception as exc:
                if _not_found(exc):
                    return None
                raise

        handle = self._guard("open scope", fetch)
        if handle is not None:
            _check_schema(name, handle)
            if (handle.metadata or {}).get("main") != self._name:
                raise StoreError(f"collection {name!r} is not a scope of {self._name!r}")
            self._scopes[name] = handle
        return handle

    def _scope_for_write(self, name: str, entry: Entry) -> Any:
        """The scope collection `name`, registered and created first when needed."""
        if name not in self._registered:
            meta = {
                "namespace": entry.namespace,
                "tenant": entry.tenant,
                "context": entry.context,
                "task": entry.task or "",
                "group": self._group(entry.namespace, entry.tenant, entry.context),
                _SCHEMA_KEY: SCHEMA_VERSION,
            }
            self._registry(
                "register scope",
                lambda r: r.upsert(ids=[name], embeddings=[_placeholder(name)], metadatas=[meta]),
            )
            self._registered.add(name)
        handle = self._scopes.get(name)
        if handle is None:
            self._collection  # noqa: B018 - connects when needed
            client = self._client
            if client is None:
                raise StoreError("chroma client unavailable (reconnecting)")
            handle = self._guard(
                "create scope", lambda: self._open(client, name, "cosine", main=self._name)
            )
            self._scopes[name] = handle
        return handle

    def _scope_name(self, namespace: str, tenant: str, context: str, task: str | None) -> str:
        """The scope collection of a scope: a hash, so any strings give a valid, short name."""
        return f"stepcache-scope-{_hash([self._name, namespace, tenant, context, task or ''])[:40]}"

    def _group(self, namespace: str, tenant: str, context: str) -> str:
        """The registry key of a scope without its task (queries for any task)."""
        return _hash([self._name, namespace, tenant, context])[:40]

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

    # ---------------------------------------------------------------- counters
    #
    # Counters live in a collection of their own, one row per store object and scope, holding
    # that object's running totals: only this object ever writes its rows, so each write is the
    # whole total (an upsert, never a read-modify-write) and adds from many processes at once
    # are all kept; a failed write is made good by the next one. `counters` sums the rows.

    def _counter_rows(self, create: bool) -> Any | None:
        """The counters collection (created when `create`), or None when there is none yet."""
        name = f"stepcache-counters-{_hash([self._name])[:40]}"
        if not create:
            return self._scope(name)
        handle = self._scopes.get(name)
        if handle is None:
            self._collection  # noqa: B018 - connects when needed
            client = self._client
            if client is None:
                raise StoreError("chroma client unavailable (reconnecting)")
            handle = self._guard(
                "create counters", lambda: self._open(client, name, "l2", main=self._name)
            )
            self._scopes[name] = handle
        return handle

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


#: Prefix of the counter fields of a counters row (the rest of its metadata is its scope).
_COUNT_PREFIX = "n:"

#: At most one "server unreachable" warning per this many seconds per store.
_WARN_INTERVAL_S = 60.0


class _NoAnswer(StoreError):
    """A server request (or connection) did not finish within the store's timeout."""


def _in_thread(fn: Callable[[], T]) -> Future[T]:
    """Run `fn` in a daemon thread: a caller may stop waiting for a hung request (chromadb's
    requests cannot be cancelled) without that thread holding up the interpreter's exit."""
    future: Future[T] = Future()

    def run() -> None:
        if future.set_running_or_notify_cancel():
            try:
                future.set_result(fn())
            except BaseException as exc:  # handed to the waiting caller
                future.set_exception(exc)

    threading.Thread(target=run, name="stepcache-chroma", daemon=True).start()
    return future


def _unopenable(path: Path, exc: BaseException) -> str:
    """The message of an embedded store that cannot be opened: the path and the remedies."""
    return (
        f"cannot open the embedded Chroma store at {str(path)!r}: {exc}. If the directory is "
        "damaged or read-only, move it away (StepCache creates a new, empty cache in its "
        "place) or fix its permissions. An embedded store is for one process: to share one "
        "cache between processes, run a Chroma server (chroma run --path DIR --host 127.0.0.1 "
        "--port N) and use ChromaStore(host=..., port=...)."
    )


def _forget_failed_system(path: Path) -> None:
    """Drop what chromadb kept of a path it failed to open (1.5 keeps the half-started system of
    a path and hands it to the next client of that path, which then fails too): once the damaged
    directory is moved away, the same process can open a new store there."""
    try:
        from chromadb.api.shared_system_client import SharedSystemClient

        key = str(path)
        if SharedSystemClient._identifier_to_refcount.get(key, 0) <= 0:
            SharedSystemClient._identifier_to_system.pop(key, None)
    except Exception as exc:  # another chromadb version: nothing to forget, or not this way
        log.debug("stepcache: could not reset chromadb's state for %s: %r", path, exc)


#: Most vector hits one similarity query fetches per scope while looking past dropped rows.
_MAX_FETCH = 256

#: Threads of one store that query scope collections in parallel (a search over every task).
_SEARCH_THREADS = 4

_CHUNK = 5000
_SCOPE_NAME = re.compile(r"stepcache-scope-[0-9a-f]{40}")


def _check_schema(name: str, handle: Any) -> None:
    found = (handle.metadata or {}).get(_SCHEMA_KEY)
    if found != SCHEMA_VERSION:
        raise SchemaVersionError(
            f"collection {name!r} has StepCache schema version {found!r}; this "
            f"StepCache reads and writes version {SCHEMA_VERSION} only and will not guess. "
            "Use another collection name, or delete the collection (chroma CLI, or "
            "client.delete_collection) to start an empty cache."
        )


def _hash(parts: Sequence[str]) -> str:
    raw = json.dumps(list(parts), ensure_ascii=False)
    return hashlib.sha256(raw.encode("utf-8", "surrogatepass")).hexdigest()


def _placeholder(key: str) -> list[float]:
    """The 1-d vector of a main or registry row: spread by key (identical points slow HNSW)."""
    digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).digest()
    return [int.from_bytes(digest[:4], "big") / 2**32]


def _scope_of(meta: Any) -> str:
    """The scope collection a main row names ("" for none, or for anything but a scope name)."""
    scope = meta.get("scope") if isinstance(meta, dict) else None
    return scope if isinstance(scope, str) and _SCOPE_NAME.fullmatch(scope) else ""


def _set_timeout(client: Any, timeout: float | None) -> None:
    """Bound chromadb's HTTP requests (its httpx session has no timeout by default)."""
    if timeout is None:
        return
    import httpx

    session = getattr(getattr(client, "_server", None), "_session", None)
    if isinstance(session, httpx.Client):
        session.timeout = httpx.Timeout(timeout)


def _lost_server(exc: BaseException) -> bool:
    """Whether `exc` means the server (or the collection on it) is gone: reconnect later."""
    import httpx

    if isinstance(exc, httpx.TransportError | ConnectionError | TimeoutError):
        return True
    return _not_found(exc)


def _not_found(exc: BaseException) -> bool:
    """Whether `exc` says a collection does not exist."""
    return "NotFound" in type(exc).__name__ or "does not exist" in str(exc)


def _slug(name: str) -> str:
    cleaned = "".join(c if c.isalnum() or c in "._-" else "-" for c in name)
    return cleaned.strip("-._") or "default"


def _digest(prompt: str, answer: str, steps: Sequence[str], payload: str | None) -> str:
    body = json.dumps([prompt, answer, list(steps), payload], ensure_ascii=False)
    return hashlib.sha256(body.encode("utf-8", "surrogatepass")).hexdigest()


def _encode(entry: Entry, *, reusable: bool, scope: str = "") -> tuple[str, dict[str, Any]]:
    """A main-collection document and metadata for `entry`: the whole entry, one record.

    `scope` names the scope collection holding the entry's vector ("" for none).
    """
    document = json.dumps(
        {
            "prompt": entry.prompt,
            "answer": entry.answer,
            "steps": list(entry.steps),
            "payload": entry.payload,
            "registry": entry.registry,
            "sha256": _digest(entry.prompt, entry.answer, entry.steps, entry.payload),
            # exact: Chroma keeps float metadata to ~16 digits (the metadata copy is for queries)
            "created_at": float(entry.created_at),
            "cost": [int(entry.cost_tokens), float(entry.cost_seconds)],
        },
        ensure_ascii=False,
    )
    meta = {
        "namespace": entry.namespace,
        "tenant": entry.tenant,
        "context": entry.context,
        "task": entry.task or "",
        "reusable": reusable,
        "created_at": float(entry.created_at),
        "scope": scope,
        _SCHEMA_KEY: SCHEMA_VERSION,
    }
    return document, meta


def _created_at(meta: Any) -> float:
    try:
        value = float(meta["created_at"])
    except (KeyError, TypeError, ValueError):
        return -math.inf  # unreadable rows go first
    return value if math.isfinite(value) else -math.inf


def _in_scope(entry: Entry, namespace: str, tenant: str, context: str, task: str | None) -> bool:
    """The scope of the searched collection, checked again on the decoded row (defence in depth)."""
    return (
        entry.reusable
        and (entry.namespace, entry.tenant, entry.context) == (namespace, tenant, context)
        and (task is None or entry.task == task)
    )


def _cost(value: Any) -> tuple[int, float]:
    """An entry's stored cost, (0, 0.0) when absent (older rows) or unreadable (never trusted
    for anything but the saved-cost estimate)."""
    if (
        isinstance(value, list)
        and len(value) == 2
        and isinstance(value[0], int)
        and isinstance(value[1], int | float)
        and value[0] >= 0
        and math.isfinite(value[1])
        and value[1] >= 0
    ):
        return value[0], float(value[1])
    return 0, 0.0


def _decode(key: str, document: str | None, meta: Any) -> Entry | None:
    """Rebuild an Entry from a Chroma row; a corrupt, torn or other-version row reads as absent."""
    try:
        if meta[_SCHEMA_KEY] != SCHEMA_VERSION:
            raise ValueError(f"row schema version {meta[_SCHEMA_KEY]!r} != {SCHEMA_VERSION}")
        data = json.loads(document or "")
        prompt, answer, steps, payload = (
            data["prompt"],
            data["answer"],
            data["steps"],
            data["payload"],
        )
        if not (
            isinstance(prompt, str)
            and isinstance(answer, str)
            and isinstance(steps, list)
            and all(isinstance(s, str) for s in steps)
            and (payload is None or isinstance(payload, str))
        ):
            raise TypeError("document fields have the wrong types")
        if data["sha256"] != _digest(prompt, answer, steps, payload):
            raise ValueError("document digest mismatch (torn or altered row)")
        registry = data.get("registry", "")  # rows written before registries were recorded: ""
        if not isinstance(registry, str):
            raise TypeError("the registry field has the wrong type")
        task = meta["task"]
        fields = (meta["namespace"], meta["context"], meta.get("tenant", ""), task)
        if not all(isinstance(f, str) for f in fields) or not isinstance(meta["reusable"], bool):
            raise TypeError("metadata fields have the wrong types")
        created_at = float(meta["created_at"])
        exact = data.get("created_at")
        if isinstance(exact, float) and abs(exact - created_at) <= 1e-6 * abs(created_at):
            created_at = exact
        if math.isnan(created_at):
            raise ValueError("created_at is NaN")
        cost_tokens, cost_seconds = _cost(data.get("cost"))
        return Entry(
            key=key,
            namespace=meta["namespace"],
            context=meta["context"],
            prompt=prompt,
            answer=answer,
            steps=tuple(steps),
            tenant=meta.get("tenant", ""),
            task=task or None,
            reusable=meta["reusable"],
            payload=payload,
            created_at=created_at,
            registry=registry,
            cost_tokens=cost_tokens,
            cost_seconds=cost_seconds,
        )
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        log.warning("stepcache: ignoring corrupt cache row %s: %r", key, exc)
        return None


__all__ = [
    "SCHEMA_VERSION",
    "Bounds",
    "ChromaStore",
    "Entry",
    "InMemoryStore",
    "Neighbour",
    "StepStore",
    "UnavailableStore",
    "entry_key",
    "normalize_prompt",
]

"""Where cached requests and their steps live: the StepStore protocol, Chroma and in-memory stores.

One record per cached request. Its steps travel inside the same record (a JSON document carrying a
sha256 digest of its content), so a write is a single upsert: a reader sees the whole entry or none
of it, never a request without its steps, and a damaged document reads as absent. Vectors are
explicit (``embedding_function=None``); the namespace and context filters run inside the query
(``where=``), never after it.

Bounds live in the store, the one place every process's writes pass through: ``max_entries``
(eviction of the least recently *created* entries) and ``ttl_seconds`` (expired entries are neither
returned nor used as templates, and are purged on write).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import socket
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from stepcache_core.errors import ConfigError, SchemaVersionError, StoreError

log = logging.getLogger("stepcache")
T = TypeVar("T")

#: Version of the stored layout (key derivation, document and metadata fields). Version 2: keys
#: hash a JSON array (injective), documents carry a sha256 digest of their content.
SCHEMA_VERSION = 2
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
        self._lock = threading.Lock()

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


class ChromaStore(StepStore):
    """Chroma-backed store: embedded on disk by default, or a Chroma server when `host` is given.

    A ``PersistentClient`` is not safe across processes: several processes (or machines) share one
    cache through a Chroma server (``chroma run --path DIR --host 127.0.0.1 --port N``) and
    ``host=``/``port=``. A server that is down when the store is made, or that goes away later,
    makes every operation raise `StoreError` quickly (the engine turns that into a miss with a
    logged warning); the store reconnects by itself, at most once per `retry_seconds`.

    Args:
        path: directory of the embedded store (ignored with `host` or `client`).
        host, port: a Chroma server.
        collection: collection name prefix; the embedder's name is appended (vectors of two
            embedders never mix).
        client: a ready chromadb client (tests, custom settings).
        max_entries, ttl_seconds: bounds, see `Bounds`. Give every process the same values.
        timeout: seconds a server request may take before it fails (None: no limit).
        retry_seconds: pause between reconnection attempts while the server is unreachable.
        clock: the wall clock used for TTLs (entries carry their `created_at`).

    Raises:
        SchemaVersionError: the collection was written by another StepCache schema version.
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
        self._client: Any = client
        self._collection_handle: Any = None
        self._lock = threading.Lock()
        self._next_attempt = 0.0
        self._last_purge = -math.inf
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
            if host is None or client is not None:
                raise
            log.warning(
                "stepcache: chroma server %s:%s unreachable, running without the cache until it "
                "answers: %s",
                host,
                port,
                exc,
            )
            self._next_attempt = time.monotonic() + retry_seconds

    # ---------------------------------------------------------------- connection

    def _connect(self) -> Any:
        import chromadb
        from chromadb.config import Settings

        settings = Settings(anonymized_telemetry=False)
        if self._client is None:
            if self._host is not None:
                # Fail fast on a dead or black-holed address before chromadb's unbounded requests.
                socket.create_connection((self._host, self._port), timeout=self._timeout).close()
                client = chromadb.HttpClient(host=self._host, port=self._port, settings=settings)
                _set_timeout(client, self._timeout)
            else:
                assert self._path is not None
                self._path.mkdir(parents=True, exist_ok=True)
                client = chromadb.PersistentClient(path=str(self._path), settings=settings)
            self._client = client
        handle = self._client.get_or_create_collection(
            self._name,
            embedding_function=None,
            configuration={"hnsw": {"space": "cosine"}},
            metadata={_SCHEMA_KEY: SCHEMA_VERSION, "embedder": self._embedder_name},
        )
        found = (handle.metadata or {}).get(_SCHEMA_KEY)
        if found != SCHEMA_VERSION:
            raise SchemaVersionError(
                f"collection {self._name!r} has StepCache schema version {found!r}; this "
                f"StepCache reads and writes version {SCHEMA_VERSION} only and will not guess. "
                "Use another collection name, or delete the collection (chroma CLI, or "
                "client.delete_collection) to start an empty cache."
            )
        self._collection_handle = handle
        return handle

    @property
    def _collection(self) -> Any:
        """The collection, connecting (or reconnecting to a server) when needed."""
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
                return self._connect()
            except SchemaVersionError:
                raise
            except Exception as exc:
                self._next_attempt = time.monotonic() + self._retry_seconds
                raise StoreError(
                    f"chroma server {self._host}:{self._port} unreachable: {exc}"
                ) from exc

    def _run(self, what: str, op: Callable[[Any], T]) -> T:
        """Run `op` on the collection; a server that went away is reconnected to on a later call."""
        collection = self._collection
        try:
            return op(collection)
        except Exception as exc:
            if self._host is not None and _lost_server(exc):
                with self._lock:
                    self._collection_handle = None
                    self._client = None
                raise StoreError(f"chroma {what} failed, server unreachable: {exc}") from exc
            raise

    # ---------------------------------------------------------------- StepStore

    def get(self, key: str) -> Entry | None:
        got = self._run("get", lambda c: c.get(ids=[key], include=["documents", "metadatas"]))
        if not got["ids"]:
            return None
        entry = _decode(got["ids"][0], got["documents"][0], got["metadatas"][0])
        if entry is None or self.bounds.expired(entry.created_at, self._clock()):
            return None
        return entry

    def nearest(
        self,
        vector: Sequence[float],
        namespace: str,
        tenant: str,
        context: str,
        task: str | None,
        k: int = 4,
    ) -> list[Neighbour]:
        clauses: list[dict[str, Any]] = [
            {"namespace": namespace},
            {"tenant": tenant},
            {"context": context},
            {"reusable": True},
        ]
        if task is not None:
            clauses.append({"task": task})
        cutoff = self.bounds.cutoff(self._clock())
        if cutoff is not None:
            clauses.append({"created_at": {"$gte": cutoff}})
        where: dict[str, Any] = {"$and": clauses}
        got = self._run(
            "query",
            lambda c: c.query(
                query_embeddings=[list(vector)],
                n_results=k,
                where=where,
                include=["documents", "metadatas", "distances"],
            ),
        )
        out = []
        for key, doc, meta, dist in zip(
            got["ids"][0],
            got["documents"][0],
            got["metadatas"][0],
            got["distances"][0],
            strict=True,
        ):
            entry = _decode(key, doc, meta)
            if entry is not None and _in_scope(entry, namespace, tenant, context, task):
                out.append(Neighbour(entry, 1.0 - float(dist)))
        return out

    def put(self, entry: Entry, vector: Sequence[float] | None) -> None:
        document, meta = _encode(entry, reusable=entry.reusable and vector is not None)
        # Vector-less entries (exact-only) still need a vector slot in Chroma: a zero-free constant
        # direction that the `reusable` filter keeps out of every similarity query.
        dim = len(vector) if vector is not None else self._dimension()
        emb = list(vector) if vector is not None else [1.0 / math.sqrt(dim)] * dim
        self._run(
            "upsert",
            lambda c: c.upsert(
                ids=[entry.key], embeddings=[emb], documents=[document], metadatas=[meta]
            ),
        )
        self._enforce_bounds()

    def _enforce_bounds(self) -> None:
        now = self._clock()
        cutoff = self.bounds.cutoff(now)
        if cutoff is not None and now - self._last_purge >= self.bounds.purge_interval():
            self._last_purge = now
            self._run("purge", lambda c: c.delete(where={"created_at": {"$lt": cutoff}}))
        limit = self.bounds.max_entries
        if limit is None or self._run("count", lambda c: c.count()) <= limit:
            return
        got = self._run("scan", lambda c: c.get(include=["metadatas"]))
        order = sorted(
            zip(got["ids"], got["metadatas"], strict=True),
            key=lambda row: (_created_at(row[1]), row[0]),
        )
        doomed = [key for key, _ in order[: len(order) - self.bounds.low_water()]]
        self._delete(doomed)

    def _dimension(self) -> int:
        got = self._run("get", lambda c: c.get(limit=1, include=["embeddings"]))
        embs = got.get("embeddings")
        return len(embs[0]) if embs is not None and len(embs) else 384

    def _delete(self, ids: Sequence[str]) -> None:
        for start in range(0, len(ids), 5000):
            chunk = list(ids[start : start + 5000])
            self._run("delete", lambda c, chunk=chunk: c.delete(ids=chunk))  # type: ignore[misc]

    def clear(self, namespace: str | None = None, tenant: str | None = None) -> int:
        clauses = [
            {k: v} for k, v in (("namespace", namespace), ("tenant", tenant)) if v is not None
        ]
        where: dict[str, Any] | None = (
            None if not clauses else clauses[0] if len(clauses) == 1 else {"$and": clauses}
        )
        ids = self._run("get", lambda c: c.get(where=where, include=[]))["ids"]
        self._delete(ids)
        return len(ids)

    def count(self, namespace: str | None = None) -> int:
        if namespace is None:
            return int(self._run("count", lambda c: c.count()))
        got = self._run("get", lambda c: c.get(where={"namespace": namespace}, include=[]))
        return len(got["ids"])


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
    return "NotFound" in type(exc).__name__ or "does not exist" in str(exc)


def _slug(name: str) -> str:
    cleaned = "".join(c if c.isalnum() or c in "._-" else "-" for c in name)
    return cleaned.strip("-._") or "default"


def _digest(prompt: str, answer: str, steps: Sequence[str], payload: str | None) -> str:
    body = json.dumps([prompt, answer, list(steps), payload], ensure_ascii=False)
    return hashlib.sha256(body.encode("utf-8", "surrogatepass")).hexdigest()


def _encode(entry: Entry, *, reusable: bool) -> tuple[str, dict[str, Any]]:
    """A Chroma document and metadata for `entry`: the whole entry, one record."""
    document = json.dumps(
        {
            "prompt": entry.prompt,
            "answer": entry.answer,
            "steps": list(entry.steps),
            "payload": entry.payload,
            "sha256": _digest(entry.prompt, entry.answer, entry.steps, entry.payload),
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
    """The `where=` filter, checked again on the decoded row (defence in depth)."""
    return (
        entry.reusable
        and (entry.namespace, entry.tenant, entry.context) == (namespace, tenant, context)
        and (task is None or entry.task == task)
    )


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
        task = meta["task"]
        fields = (meta["namespace"], meta["context"], meta.get("tenant", ""), task)
        if not all(isinstance(f, str) for f in fields) or not isinstance(meta["reusable"], bool):
            raise TypeError("metadata fields have the wrong types")
        created_at = float(meta["created_at"])
        if math.isnan(created_at):
            raise ValueError("created_at is NaN")
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
    "entry_key",
    "normalize_prompt",
]

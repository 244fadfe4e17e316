"""Where cached requests and their steps live: the StepStore protocol, Chroma and in-memory stores.

One record per cached request. Its steps travel inside the same record (a JSON document), so a
write is a single upsert: a reader sees the whole entry or none of it, never a request without its
steps. Vectors are explicit (``embedding_function=None``); the namespace and context filters run
inside the query (``where=``), never after it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stepcache_core.errors import SchemaVersionError, StoreError

log = logging.getLogger("stepcache")

SCHEMA_VERSION = 1
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


def entry_key(namespace: str, tenant: str, context: str, prompt: str) -> str:
    """The exact-match key of a request (whitespace-normalised prompt)."""
    raw = "\x1f".join((namespace, tenant, context, " ".join(prompt.split())))
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()


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

    def __init__(self) -> None:
        self._entries: dict[str, tuple[Entry, tuple[float, ...] | None]] = {}
        self._lock = threading.Lock()

    def get(self, key: str) -> Entry | None:
        with self._lock:
            found = self._entries.get(key)
        return found[0] if found else None

    def nearest(
        self,
        vector: Sequence[float],
        namespace: str,
        tenant: str,
        context: str,
        task: str | None,
        k: int = 4,
    ) -> list[Neighbour]:
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
        ]
        scored.sort(key=lambda n: n.similarity, reverse=True)
        return scored[:k]

    def put(self, entry: Entry, vector: Sequence[float] | None) -> None:
        with self._lock:
            self._entries[entry.key] = (entry, tuple(vector) if vector is not None else None)

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

    A ``PersistentClient`` is not safe across processes: several processes share one cache through a
    Chroma server (``chroma run --path DIR --host 127.0.0.1 --port N``) and ``host=``/``port=``.
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
    ) -> None:
        import chromadb
        from chromadb.config import Settings

        settings = Settings(anonymized_telemetry=False)
        if client is not None:
            self._client = client
        elif host is not None:
            self._client = chromadb.HttpClient(host=host, port=port, settings=settings)
        else:
            if path is None:
                raise StoreError("ChromaStore needs a path (embedded) or a host (server)")
            Path(path).mkdir(parents=True, exist_ok=True)
            self._client = chromadb.PersistentClient(path=str(path), settings=settings)
        name = f"{collection}-{_slug(embedder_name)}"
        self._collection = self._client.get_or_create_collection(
            name,
            embedding_function=None,
            configuration={"hnsw": {"space": "cosine"}},
            metadata={_SCHEMA_KEY: SCHEMA_VERSION, "embedder": embedder_name},
        )
        found = (self._collection.metadata or {}).get(_SCHEMA_KEY)
        if found != SCHEMA_VERSION:
            raise SchemaVersionError(
                f"collection {name!r} has StepCache schema version {found!r}; this StepCache reads "
                f"version {SCHEMA_VERSION}. Use another collection name or clear the store."
            )

    def get(self, key: str) -> Entry | None:
        got = self._collection.get(ids=[key], include=["documents", "metadatas"])
        if not got["ids"]:
            return None
        return _decode(got["ids"][0], got["documents"][0], got["metadatas"][0])

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
        where: dict[str, Any] = {"$and": clauses}
        got = self._collection.query(
            query_embeddings=[list(vector)],
            n_results=k,
            where=where,
            include=["documents", "metadatas", "distances"],
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
            if entry is not None:
                out.append(Neighbour(entry, 1.0 - float(dist)))
        return out

    def put(self, entry: Entry, vector: Sequence[float] | None) -> None:
        document = json.dumps(
            {
                "prompt": entry.prompt,
                "answer": entry.answer,
                "steps": list(entry.steps),
                "payload": entry.payload,
            },
            ensure_ascii=False,
        )
        meta = {
            "namespace": entry.namespace,
            "tenant": entry.tenant,
            "context": entry.context,
            "task": entry.task or "",
            "reusable": entry.reusable and vector is not None,
            "created_at": entry.created_at,
            _SCHEMA_KEY: SCHEMA_VERSION,
        }
        # Vector-less entries (exact-only) still need a vector slot in Chroma: a zero-free constant
        # direction that the `reusable` filter keeps out of every similarity query.
        dim = len(vector) if vector is not None else self._dimension()
        emb = list(vector) if vector is not None else [1.0 / math.sqrt(dim)] * dim
        self._collection.upsert(
            ids=[entry.key], embeddings=[emb], documents=[document], metadatas=[meta]
        )

    def _dimension(self) -> int:
        got = self._collection.get(limit=1, include=["embeddings"])
        embs = got.get("embeddings")
        return len(embs[0]) if embs is not None and len(embs) else 384

    def clear(self, namespace: str | None = None, tenant: str | None = None) -> int:
        clauses = [
            {k: v} for k, v in (("namespace", namespace), ("tenant", tenant)) if v is not None
        ]
        where: dict[str, Any] | None = (
            None if not clauses else clauses[0] if len(clauses) == 1 else {"$and": clauses}
        )
        got = self._collection.get(where=where, include=[])
        ids = got["ids"]
        for start in range(0, len(ids), 5000):
            self._collection.delete(ids=ids[start : start + 5000])
        return len(ids)

    def count(self, namespace: str | None = None) -> int:
        if namespace is None:
            return int(self._collection.count())
        return len(self._collection.get(where={"namespace": namespace}, include=[])["ids"])


def _slug(name: str) -> str:
    cleaned = "".join(c if c.isalnum() or c in "._-" else "-" for c in name)
    return cleaned.strip("-._") or "default"


def _decode(key: str, document: str | None, meta: Any) -> Entry | None:
    """Rebuild an Entry from a Chroma row; a corrupt row reads as absent."""
    try:
        data = json.loads(document or "")
        return Entry(
            key=key,
            namespace=str(meta["namespace"]),
            context=str(meta["context"]),
            prompt=str(data["prompt"]),
            answer=str(data["answer"]),
            steps=tuple(str(s) for s in data["steps"]),
            tenant=str(meta.get("tenant", "")),
            task=str(meta["task"]) or None,
            reusable=bool(meta["reusable"]),
            payload=data.get("payload"),
            created_at=float(meta.get("created_at", 0.0)),
        )
    except (ValueError, KeyError, TypeError) as exc:
        log.warning("stepcache: ignoring corrupt cache row %s: %r", key, exc)
        return None


__all__ = [
    "SCHEMA_VERSION",
    "ChromaStore",
    "Entry",
    "InMemoryStore",
    "Neighbour",
    "StepStore",
    "entry_key",
]

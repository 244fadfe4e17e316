"""A Chroma store's connection: the client, its reconnection after an outage, the timeout that
bounds every server request, and the scope collections it opens.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from stepcache_core.errors import SchemaVersionError, StoreError
from stepcache_core.ratelimit import RateLimitedLog
from stepcache_core.store.codec import (
    _SCHEMA_KEY,
    SCHEMA_VERSION,
    _check_schema,
    _hash,
    _placeholder,
)
from stepcache_core.store.entry import Entry

log = logging.getLogger("stepcache")
T = TypeVar("T")

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


class ChromaConnection:
    """The connection half of `ChromaStore`: opening the client and its main and registry
    collections, reconnecting to a server that went away, bounding every server request by the
    store's timeout, and opening or creating scope collections. `ChromaStore.__init__` sets the
    state declared here."""

    _host: str | None
    _port: int
    _timeout: float | None
    _retry_seconds: float
    _embedder_name: str
    _name: str
    _registry_name: str
    _path: Path | None
    _client: Any
    _collection_handle: Any
    _registry_handle: Any
    _scopes: dict[str, Any]
    _registered: set[str]
    _lock: threading.Lock
    _state_lock: threading.Lock
    _next_attempt: float
    _bounded: bool
    _connecting: Future[tuple[Any, Any, Any]] | None
    _down: bool
    _warnings: RateLimitedLog

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
        return self._handle(name, "cosine", "create scope")

    def _handle(self, name: str, space: str, what: str) -> Any:
        """The collection `name`, opened (or created with distance `space`) once, then kept."""
        handle = self._scopes.get(name)
        if handle is None:
            self._collection  # noqa: B018 - connects when needed
            client = self._client
            if client is None:
                raise StoreError("chroma client unavailable (reconnecting)")
            handle = self._guard(what, lambda: self._open(client, name, space, main=self._name))
            self._scopes[name] = handle
        return handle

    def _scope_name(self, namespace: str, tenant: str, context: str, task: str | None) -> str:
        """The scope collection of a scope: a hash, so any strings give a valid, short name."""
        return f"stepcache-scope-{_hash([self._name, namespace, tenant, context, task or ''])[:40]}"

    def _group(self, namespace: str, tenant: str, context: str) -> str:
        """The registry key of a scope without its task (queries for any task)."""
        return _hash([self._name, namespace, tenant, context])[:40]

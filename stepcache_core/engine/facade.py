"""StepCache, the public facade: construction and the calls a user makes.

Each call builds a `Request`, runs the one request flow (`engine.flow`) under the sync or the
async driver (`engine.drivers`), and answers are stored by the write-behind writer
(`engine.writer`).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from pathlib import Path as FsPath
from typing import Any

from stepcache_core.backends.base import Backend
from stepcache_core.config import CacheConfig
from stepcache_core.embed import Embedder, MiniLMEmbedder
from stepcache_core.engine.drivers import Drivers
from stepcache_core.engine.flow import detect_task, request_flow
from stepcache_core.engine.request import Request, StepListener, Usage, answer_entry
from stepcache_core.engine.writer import WRITE_WAIT_S, Writer
from stepcache_core.errors import InvalidPromptError, StoreError
from stepcache_core.ratelimit import RateLimitedLog
from stepcache_core.store import ChromaStore, Entry, StepStore, UnavailableStore
from stepcache_core.streaming import StepOrResult, astream_steps, stream_steps
from stepcache_core.tasks.base import PatchRequest, Task
from stepcache_core.tasks.registry import TaskRegistry
from stepcache_core.types import Path, Result

log = logging.getLogger("stepcache")


#: Paths served from the cache: what a hit rate counts.
_HITS = (Path.EXACT.value, Path.REUSE.value, Path.PATCH.value)


def summarize_counters(raw: Mapping[str, float]) -> dict[str, Any]:
    """A store's raw counters (`StepStore.counters`) as totals, paths and tasks with hit rates."""
    requests = int(raw.get("requests", 0))
    paths = {p.value: int(raw.get(f"path.{p.value}", 0)) for p in Path}
    tasks: dict[str, dict[str, Any]] = {}
    for key, value in raw.items():
        if key.startswith("task."):
            name, _, path = key[len("task.") :].rpartition(".")
            tasks.setdefault(name, {p.value: 0 for p in Path})[path] = int(value)
    for counts in tasks.values():
        done = sum(counts[p.value] for p in Path)
        counts["hit_rate"] = sum(counts[p] for p in _HITS) / done if done else 0.0
    return {
        "requests": requests,
        "paths": paths,
        "hit_rate": sum(paths[p] for p in _HITS) / requests if requests else 0.0,
        "tasks": dict(sorted(tasks.items())),
        "backend_calls": int(raw.get("backend_calls", 0)),
        "prompt_tokens": int(raw.get("prompt_tokens", 0)),
        "completion_tokens": int(raw.get("completion_tokens", 0)),
        "backend_seconds": float(raw.get("backend_seconds", 0.0)),
        "tokens_saved": int(raw.get("tokens_saved", 0)),
        "seconds_saved": float(raw.get("seconds_saved", 0.0)),
        "fallbacks": int(raw.get("fallbacks", 0)),
    }


def default_cache_dir() -> FsPath:
    """Where the embedded Chroma store lives unless told otherwise."""
    import os

    home = os.environ.get("STEPCACHE_HOME")
    return FsPath(home) if home else FsPath.home() / ".cache" / "stepcache"


class StepCache:
    """Step-level answer cache: exact tier, nearest-neighbour templates, verify, patch, skip.

    Slightly over ~300 lines because it is the whole public surface (sync, async and streaming
    calls, lookups, `put`, `clear`, stats), each method thin over one request builder
    (`_request`); the work lives in the flow and the drivers.

    Args:
        store: where entries live; default a ``ChromaStore`` on disk under `path`. A store
            given here that fails later turns calls into misses; one that cannot be made
            raises where the caller makes it.
        path: directory of the default embedded store (default ``$STEPCACHE_HOME/chroma`` or
            ``~/.cache/stepcache/chroma``), ignored when `store` is given. Given or not, the
            store StepCache builds here is the default store: when it cannot be opened
            (damaged, unreadable, another schema version: a `StoreError`) StepCache logs one
            warning and answers every call without the cache (`UnavailableStore`) instead of
            raising. Pass ``store=ChromaStore(path, ...)`` to get the error instead.
        embedder: default the bundled all-MiniLM-L6-v2 (loaded on first use).
        tasks: task registry, or a sequence of tasks; default the built-ins.
        config: thresholds and budgets.
    """

    def __init__(
        self,
        store: StepStore | None = None,
        *,
        path: str | FsPath | None = None,
        embedder: Embedder | None = None,
        tasks: TaskRegistry | Sequence[Task[Any]] | None = None,
        config: CacheConfig | None = None,
    ) -> None:
        self.embedder = embedder if embedder is not None else MiniLMEmbedder()
        self.store = store if store is not None else self._default_store(path)
        if tasks is None:
            self.tasks = TaskRegistry.with_builtins()
        elif isinstance(tasks, TaskRegistry):
            self.tasks = tasks
        else:
            self.tasks = TaskRegistry(tasks)
        self.config = config if config is not None else CacheConfig()
        self._paths: Counter[str] = Counter()
        self._counters: Counter[str] = Counter()
        #: One warning per kind of failure a minute, however many calls it breaks.
        self._warnings = RateLimitedLog(log)
        self._writer = Writer(self.store, self.embedder, self._counters, self._warnings)
        self._drivers = Drivers(
            self.config,
            self.store,
            self.embedder,
            self._writer,
            self._paths,
            self._counters,
            self._warnings,
        )

    def _default_store(self, path: str | FsPath | None) -> StepStore:
        """The embedded store under `path`, or an `UnavailableStore` when it cannot be opened."""
        where = FsPath(path) if path is not None else default_cache_dir() / "chroma"
        try:
            return ChromaStore(where, embedder_name=self.embedder.name)
        except StoreError as exc:
            log.warning("stepcache: answering every call without the cache: %s", exc)
            return UnavailableStore(str(exc))

    def generate(
        self,
        prompt: str,
        backend: Backend,
        *,
        namespace: str = "default",
        tenant: str = "",
        context: str = "",
        on_step: StepListener | None = None,
    ) -> Result:
        """Answer `prompt`, reusing cached steps where they verify; `backend` fills the rest.

        `on_step` receives every served step once it is final, in order: reused steps at once
        (before the backend is called to patch the rest), patched and generated steps while the
        backend is still writing (`Backend.complete_streaming`), each once whole and verified.
        The steps it receives always join to `Result.text`.
        """
        req = self._request(prompt, namespace, tenant, context, can_generate=True, backend=True)
        req.on_step = on_step
        result = self._drivers.run(request_flow(req, self.config, self.tasks), backend, req)
        assert result is not None  # a generating flow always ends with a result
        return result

    async def agenerate(
        self,
        prompt: str,
        backend: Backend,
        *,
        namespace: str = "default",
        tenant: str = "",
        context: str = "",
        on_step: StepListener | None = None,
    ) -> Result:
        """Async `generate`: backend calls are awaited; `on_step` as in `generate`."""
        req = self._request(prompt, namespace, tenant, context, can_generate=True, backend=True)
        req.on_step = on_step
        result = await self._drivers.arun(request_flow(req, self.config, self.tasks), backend, req)
        assert result is not None
        return result

    def stream(
        self,
        prompt: str,
        backend: Backend,
        *,
        namespace: str = "default",
        tenant: str = "",
        context: str = "",
    ) -> Iterator[StepOrResult]:
        """`generate`, yielding each served step once final (reused ones first), then the Result."""
        return stream_steps(
            lambda on_step: self.generate(
                prompt,
                backend,
                namespace=namespace,
                tenant=tenant,
                context=context,
                on_step=on_step,
            )
        )

    def astream(
        self,
        prompt: str,
        backend: Backend,
        *,
        namespace: str = "default",
        tenant: str = "",
        context: str = "",
    ) -> AsyncIterator[StepOrResult]:
        """Async `stream`."""
        return astream_steps(
            lambda on_step: self.agenerate(
                prompt,
                backend,
                namespace=namespace,
                tenant=tenant,
                context=context,
                on_step=on_step,
            )
        )

    def lookup(
        self,
        prompt: str,
        *,
        namespace: str = "default",
        tenant: str = "",
        context: str = "",
        backend: Backend | None = None,
    ) -> Result | None:
        """A cached answer (exact, reuse, or patched with `backend` / the fallback), or None.

        Never generates an answer from scratch; that is the caller's job (then `put` it).
        """
        req = self._request(prompt, namespace, tenant, context, False, backend is not None)
        return self._drivers.run(request_flow(req, self.config, self.tasks), backend, req)

    async def alookup(
        self,
        prompt: str,
        *,
        namespace: str = "default",
        tenant: str = "",
        context: str = "",
        backend: Backend | None = None,
    ) -> Result | None:
        """Async `lookup`."""
        req = self._request(prompt, namespace, tenant, context, False, backend is not None)
        return await self._drivers.arun(request_flow(req, self.config, self.tasks), backend, req)

    def put(
        self,
        prompt: str,
        answer: str,
        *,
        namespace: str = "default",
        tenant: str = "",
        context: str = "",
        payload: str | None = None,
        prompt_tokens: int = 0,
        completion_tokens: int = 0,
        seconds: float = 0.0,
    ) -> Entry | None:
        """Store an answer produced elsewhere. Verified answers become reusable templates.

        `prompt_tokens`, `completion_tokens` and `seconds`: what the model spent writing
        `answer`, when known; stored with the entry, reported as saved when it is reused.

        An answer its task proves wrong is repaired with the deterministic fallback when the task
        has one (else not stored); one its task can neither verify nor prove wrong is stored as
        written, unverified: it answers exact repeats of `prompt` and is never a template.
        Nothing is stored for a prompt over `max_prompt_chars` or an answer over
        `max_answer_chars` (counted in `stats()["oversized"]`). Returns the entry stored, or None.
        """
        req = self._request(prompt, namespace, tenant, context, can_generate=False, backend=False)
        req.usage = Usage(max(0, prompt_tokens), max(0, completion_tokens), 1, max(0.0, seconds))
        if len(prompt) > self.config.max_prompt_chars:
            log.info("stepcache: not storing an answer to a prompt over max_prompt_chars")
            return None
        if not isinstance(answer, str):
            raise TypeError(f"answer must be a str, got {type(answer).__name__}")
        if len(answer) > self.config.max_answer_chars:
            self._counters["oversized"] += 1
            log.info("stepcache: not storing an answer over max_answer_chars")
            return None
        detected = detect_task(self.tasks, prompt)
        if detected is None:
            return self._write(req, None, answer, verified=False, payload=payload)
        task, spec = detected
        check = task.integrity(answer, spec)
        if check.ok:
            return self._write(req, task, answer, verified=True, payload=payload)
        if not task.proven_wrong(answer, spec, check):
            return self._write(req, task, answer, verified=False, payload=payload)
        if self.config.fallback:
            steps = task.segment(answer)
            request = PatchRequest(prompt, spec, steps, task.verify(steps, spec, spec))
            repaired = task.fallback(request)
            if repaired is not None:
                text = task.stitch([s.text for s in repaired])
                if task.integrity(text, spec).ok:
                    return self._write(req, task, text, verified=True)
        log.info("stepcache: not storing an answer its task proves wrong (%s)", task.name)
        return None

    def record(self, result: Result, *, namespace: str = "default", tenant: str = "") -> None:
        """Count a request answered outside the request flow in `stats()` and the store's
        counters, as the flow counts its own: the adapters' exact-only requests (tools or a
        response format bound), served by `stepcache_core.exact` or passed to the model."""
        self._drivers.count(namespace, tenant, result)

    def clear(self, namespace: str | None = None, tenant: str | None = None) -> int:
        """Delete cached entries (all, or of one namespace and/or tenant); return how many."""
        self.flush()  # a write still pending would otherwise land after the clear
        self._writer.forget_all()
        return self.store.clear(namespace=namespace, tenant=tenant)

    def clear_counters(self, namespace: str | None = None, tenant: str | None = None) -> None:
        """Reset the store's traffic counters (all, or of one namespace and/or tenant) to zero
        for every process: `store_stats` then counts only later requests. This process's
        pending counts are written first (and so reset too); `stats()`'s own counts since this
        object was made are kept."""
        self.flush()
        self.store.clear_counters(namespace=namespace, tenant=tenant)

    def flush(self, timeout: float | None = None) -> None:
        """Wait until the answers stored in the background are written."""
        self._writer.flush(timeout)

    def stats(self, namespace: str | None = None, tenant: str | None = None) -> dict[str, Any]:
        """Counts of paths taken and backend work since this object was made (this process);
        `degraded`: cache operations that failed (served without the cache); `oversized`:
        answers over `max_answer_chars`, served as written and not stored; `store`: the
        counters kept in the store (of `namespace` and/or `tenant` when given), the traffic
        of every process that used it (see `store_stats`)."""
        try:
            size: int | None = self.store.count(namespace)
        except Exception as exc:  # a stats call must not fail because the store is down
            self._warnings.warning("store count", "stepcache: store count failed: %s", exc)
            size = None
        return {
            "requests": sum(self._paths.values()),
            "paths": {p.value: self._paths[p.value] for p in Path},
            "backend_calls": self._counters["backend_calls"],
            "prompt_tokens": self._counters["prompt_tokens"],
            "completion_tokens": self._counters["completion_tokens"],
            "backend_seconds": self._counters["backend_seconds_ms"] / 1000,
            "tokens_saved": self._counters["tokens_saved"],
            "seconds_saved": self._counters["seconds_saved_ms"] / 1000,
            "fallbacks": self._counters["fallbacks"],
            "degraded": self._counters["degraded"],
            "oversized": self._counters["oversized"],
            "entries": size,
            "store": self.store_stats(namespace, tenant),
        }

    def store_stats(
        self, namespace: str | None = None, tenant: str | None = None
    ) -> dict[str, Any] | None:
        """The traffic counters kept in the store (of `namespace` and/or `tenant`), summed over
        every process that used it, this one's counts written first; None when the store
        cannot be read. Paths and tasks carry hit rates: the share of requests served from
        the cache (exact, reuse, patch)."""
        self.flush(WRITE_WAIT_S)
        try:
            raw = self.store.counters(namespace, tenant)
        except Exception as exc:
            self._warnings.warning("store counters", "stepcache: store counters failed: %s", exc)
            return None
        return summarize_counters(raw)

    def _request(
        self,
        prompt: Any,
        namespace: str,
        tenant: str,
        context: str,
        can_generate: bool,
        backend: bool,
    ) -> Request:
        if not isinstance(prompt, str):
            raise InvalidPromptError(f"prompt must be a str, got {type(prompt).__name__}")
        if not prompt.strip():
            raise InvalidPromptError("prompt is empty")
        for label, value in (("namespace", namespace), ("tenant", tenant), ("context", context)):
            if not isinstance(value, str):
                raise InvalidPromptError(f"{label} must be a str, got {type(value).__name__}")
        return Request(
            prompt, namespace, tenant, context, can_generate, backend, self.tasks.identity
        )

    def _write(
        self,
        req: Request,
        task: Task[Any] | None,
        text: str,
        verified: bool,
        payload: str | None = None,
    ) -> Entry | None:
        """Write an answer now (embedding it first when it is reusable)."""
        entry = answer_entry(req, self.config, task, text, verified, payload)
        return self._writer.write(entry, req.shapes, None)

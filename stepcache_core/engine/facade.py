"""StepCache, the public facade: construction and the calls a user makes.

Each call builds a `Request`, runs the one request flow (`engine.flow`) under the sync or the
async driver (`engine.drivers`), and answers are stored by the write-behind writer
(`engine.writer`).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path as FsPath
from typing import Any

from stepcache_core.backends.base import Backend
from stepcache_core.config import CacheConfig
from stepcache_core.embed import Embedder, MiniLMEmbedder
from stepcache_core.engine.drivers import Drivers
from stepcache_core.engine.flow import detect_task, request_flow
from stepcache_core.engine.request import Request, StepListener, answer_entry
from stepcache_core.engine.writer import Writer
from stepcache_core.errors import InvalidPromptError, StoreError
from stepcache_core.ratelimit import RateLimitedLog
from stepcache_core.store import ChromaStore, Entry, StepStore, UnavailableStore
from stepcache_core.streaming import StepOrResult, astream_steps, stream_steps
from stepcache_core.tasks.base import PatchRequest, Task
from stepcache_core.tasks.registry import TaskRegistry
from stepcache_core.types import Path, Result

log = logging.getLogger("stepcache")


def default_cache_dir() -> FsPath:
    """Where the embedded Chroma store lives unless told otherwise."""
    import os

    home = os.environ.get("STEPCACHE_HOME")
    return FsPath(home) if home else FsPath.home() / ".cache" / "stepcache"


class StepCache:
    """Step-level answer cache: exact tier, nearest-neighbour templates, verify, patch, skip.

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
    ) -> Entry | None:
        """Store an answer produced elsewhere. Verified answers become reusable templates.

        An answer its task proves wrong is repaired with the deterministic fallback when the task
        has one (else not stored); one its task can neither verify nor prove wrong is stored as
        written, unverified: it answers exact repeats of `prompt` and is never a template.
        Nothing is stored for a prompt over `max_prompt_chars` or an answer over
        `max_answer_chars` (counted in `stats()["oversized"]`). Returns the entry stored, or None.
        """
        req = self._request(prompt, namespace, tenant, context, can_generate=False, backend=False)
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

    def clear(self, namespace: str | None = None, tenant: str | None = None) -> int:
        """Delete cached entries (all, or of one namespace and/or tenant); return how many."""
        self.flush()  # a write still pending would otherwise land after the clear
        self._writer.forget_all()
        return self.store.clear(namespace=namespace, tenant=tenant)

    def flush(self, timeout: float | None = None) -> None:
        """Wait until the answers stored in the background are written."""
        self._writer.flush(timeout)

    def stats(self) -> dict[str, Any]:
        """Counts of paths taken and backend tokens spent since this object was made;
        `degraded`: cache operations that failed (served without the cache); `oversized`:
        answers over `max_answer_chars`, served as written and not stored."""
        try:
            size: int | None = self.store.count()
        except Exception as exc:  # a stats call must not fail because the store is down
            self._warnings.warning("store count", "stepcache: store count failed: %s", exc)
            size = None
        return {
            "requests": sum(self._paths.values()),
            "paths": {p.value: self._paths[p.value] for p in Path},
            "backend_calls": self._counters["backend_calls"],
            "prompt_tokens": self._counters["prompt_tokens"],
            "completion_tokens": self._counters["completion_tokens"],
            "fallbacks": self._counters["fallbacks"],
            "degraded": self._counters["degraded"],
            "oversized": self._counters["oversized"],
            "entries": size,
        }

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

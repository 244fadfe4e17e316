"""StepCache: the one request flow of DESIGN.md, with a sync and an async driver.

The flow is written once, as a generator that yields the backend work it needs (`_Call`, `_Patch`)
and receives the results; `generate` drives it with blocking calls, `agenerate` with awaited ones.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import AsyncIterator, Callable, Generator, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as futures_wait
from dataclasses import dataclass, field, replace
from pathlib import Path as FsPath
from typing import Any, TypeVar

from stepcache_core import delta as text_delta
from stepcache_core.backends.base import Backend
from stepcache_core.config import CacheConfig
from stepcache_core.embed import Embedder, MiniLMEmbedder
from stepcache_core.errors import InvalidPromptError
from stepcache_core.segment import segment_text
from stepcache_core.store import (
    ChromaStore,
    Entry,
    Neighbour,
    StepStore,
    entry_key,
    normalize_prompt,
)
from stepcache_core.streaming import StepOrResult, astream_steps, stream_steps
from stepcache_core.tasks.base import Assemble, Check, Generate, PatchRequest, Task
from stepcache_core.tasks.registry import TaskRegistry
from stepcache_core.types import Completion, Path, Result, StepOrigin, StepOutcome

log = logging.getLogger("stepcache")
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class _Call:
    """Ask the backend to complete `prompt`; with `assemble`, its verified steps may be streamed
    as they are written (`task` None: an untyped answer, streamed unverified as it comes)."""

    prompt: str
    max_tokens: int | None
    assemble: Assemble | None = None
    task: Task[Any] | None = None
    spec: Any = None


@dataclass(frozen=True, slots=True)
class _Patch:
    """Run a task's patch plan, which may call the backend."""

    task: Task[Any]
    request: PatchRequest[Any]


@dataclass(frozen=True, slots=True)
class _Io:
    """Blocking cache I/O (store, embedder): inline when sync, in a worker thread when async."""

    fn: Callable[..., Any]
    args: tuple[Any, ...]


class _BackendFailure(Exception):
    """Carries the user's backend error through the flow so it is re-raised unchanged."""

    def __init__(self, error: BaseException) -> None:
        super().__init__(repr(error))
        self.error = error


@dataclass(slots=True)
class _Usage:
    """Backend work done for one request."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    calls: int = 0
    seconds: float = 0.0

    def add(self, completion: Completion, seconds: float) -> None:
        self.prompt_tokens += completion.prompt_tokens
        self.completion_tokens += completion.completion_tokens
        self.calls += 1
        self.seconds += seconds


@dataclass(frozen=True, slots=True)
class _Patchable:
    """A cached entry whose transferred steps partly verify: worth patching."""

    entry: Entry
    similarity: float | None
    steps: list[str]
    checks: list[Check]
    failure: str

    @property
    def passed(self) -> int:
        return sum(c.ok for c in self.checks)


@dataclass(slots=True)
class _Request:
    """One request's identity and bookkeeping while it flows through the engine."""

    prompt: str
    namespace: str
    tenant: str
    context: str
    can_generate: bool  # False in `lookup`: full generations are not allowed
    has_backend: bool
    on_step: StepListener | None = None
    shapes: tuple[str, ...] = ()  # the request's shape keys (most specific first), if any
    usage: _Usage = field(default_factory=_Usage)
    timings: dict[str, float] = field(default_factory=dict)
    started: float = field(default_factory=time.perf_counter)
    emitted: list[str] = field(default_factory=list)  # step texts already given to `on_step`

    def emit(self, outcomes: Sequence[StepOutcome]) -> None:
        """Hand the steps beyond those already emitted to the listener, in order."""
        if self.on_step is None:
            return
        done = len(self.emitted)
        if [o.text for o in outcomes[:done]] != self.emitted:
            log.warning("stepcache: served steps differ from the steps already streamed")
            return
        for outcome in outcomes[done:]:
            self.emitted.append(outcome.text)
            self.on_step(outcome)

    @property
    def key(self) -> str:
        return entry_key(self.namespace, self.tenant, self.context, self.prompt)


@dataclass(slots=True)
class _StepGate:
    """Streams one backend call's answer to the request's listener step by step, as it is
    written: a step goes out once the next one has started and it verifies, and only as far as
    the task keeps steps verbatim through any later repair (`Task.kept_prefix`), so a streamed
    step is never taken back."""

    req: _Request
    assemble: Assemble
    task: Task[Any] | None
    spec: Any
    text: str = ""
    settled: int = 0
    broken: bool = False

    def feed(self, piece: str) -> None:
        if self.broken:
            return
        self.text += piece
        try:
            steps = list(self.assemble(self.text))[:-1]  # the last step may still grow
            if len(steps) <= self.settled:
                return
            self.settled = len(steps)
            if self.task is not None:
                checks = self.task.verify([o.text for o in steps], self.spec, self.spec)
                steps = steps[: self.task.kept_prefix(checks)]
            self.req.emit(steps)
        except Exception as exc:  # a task bug must not break the backend call: stop streaming
            self.broken = True
            log.warning("stepcache: streaming steps failed, the rest comes at the end: %r", exc)


#: Called with each served step as soon as it is final (reused steps before any backend call).
StepListener = Callable[[StepOutcome], None]
Effect = _Call | _Patch | _Io
Flow = Generator[Effect, Any, Result | None]


def default_cache_dir() -> FsPath:
    """Where the embedded Chroma store lives unless told otherwise."""
    import os

    home = os.environ.get("STEPCACHE_HOME")
    return FsPath(home) if home else FsPath.home() / ".cache" / "stepcache"


class StepCache:
    """Step-level answer cache: exact tier, nearest-neighbour templates, verify, patch, skip.

    Args:
        store: where entries live; default a ``ChromaStore`` on disk under `path`.
        path: directory of the default embedded store (default ``$STEPCACHE_HOME`` or
            ``~/.cache/stepcache``), ignored when `store` is given.
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
        if store is None:
            store = ChromaStore(
                FsPath(path) if path is not None else default_cache_dir() / "chroma",
                embedder_name=self.embedder.name,
            )
        self.store = store
        if tasks is None:
            self.tasks = TaskRegistry.with_builtins()
        elif isinstance(tasks, TaskRegistry):
            self.tasks = tasks
        else:
            self.tasks = TaskRegistry(tasks)
        self.config = config if config is not None else CacheConfig()
        self._paths: Counter[str] = Counter()
        self._counters: Counter[str] = Counter()
        self._writer: ThreadPoolExecutor | None = None
        self._writer_lock = threading.Lock()
        self._pending: set[Future[Any]] = set()
        #: Entries handed to the background writer and not yet written, by key.
        self._unwritten: dict[str, Entry] = {}
        #: shape key -> exact keys of the latest reusable entries of that shape, newest first
        #: (an index of this process's writes; entries are re-read from the store to be used).
        self._shapes: OrderedDict[str, list[str]] = OrderedDict()

    # ------------------------------------------------------------------ public API

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
        result = self._drive_sync(self._flow(req), backend, req)
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
        result = await self._drive_async(self._flow(req), backend, req)
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
        return self._drive_sync(self._flow(req), backend, req)

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
        return await self._drive_async(self._flow(req), backend, req)

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

        An answer its task rejects is repaired with the deterministic fallback when the task has
        one, else not stored (a rejected answer is never served from cache). Returns the entry
        stored, or None.
        """
        req = self._request(prompt, namespace, tenant, context, can_generate=False, backend=False)
        detected = self._detect(prompt)
        if detected is None:
            return _drain(self._store(req, None, answer, None, verified=False, payload=payload))
        task, spec = detected
        if task.integrity(answer, spec).ok:
            return _drain(self._store(req, task, answer, None, verified=True, payload=payload))
        if self.config.fallback:
            steps = task.segment(answer)
            request = PatchRequest(prompt, spec, steps, task.verify(steps, spec, spec))
            repaired = task.fallback(request)
            if repaired is not None:
                text = task.stitch([s.text for s in repaired])
                if task.integrity(text, spec).ok:
                    return _drain(self._store(req, task, text, None, verified=True))
        log.info("stepcache: not storing an answer its task rejects (%s)", task.name)
        return None

    def clear(self, namespace: str | None = None, tenant: str | None = None) -> int:
        """Delete cached entries (all, or of one namespace and/or tenant); return how many."""
        self.flush()  # a write still pending would otherwise land after the clear
        with self._writer_lock:
            self._shapes.clear()
        return self.store.clear(namespace=namespace, tenant=tenant)

    def stats(self) -> dict[str, Any]:
        """Counts of paths taken and backend tokens spent since this object was made."""
        try:
            size: int | None = self.store.count()
        except Exception as exc:  # a stats call must not fail because the store is down
            log.warning("stepcache: store count failed: %s", exc)
            size = None
        return {
            "requests": sum(self._paths.values()),
            "paths": {p.value: self._paths[p.value] for p in Path},
            "backend_calls": self._counters["backend_calls"],
            "prompt_tokens": self._counters["prompt_tokens"],
            "completion_tokens": self._counters["completion_tokens"],
            "fallbacks": self._counters["fallbacks"],
            "degraded": self._counters["degraded"],
            "entries": size,
        }

    # ------------------------------------------------------------------ drivers

    def _request(
        self,
        prompt: Any,
        namespace: str,
        tenant: str,
        context: str,
        can_generate: bool,
        backend: bool,
    ) -> _Request:
        if not isinstance(prompt, str):
            raise InvalidPromptError(f"prompt must be a str, got {type(prompt).__name__}")
        if not prompt.strip():
            raise InvalidPromptError("prompt is empty")
        for label, value in (("namespace", namespace), ("tenant", tenant), ("context", context)):
            if not isinstance(value, str):
                raise InvalidPromptError(f"{label} must be a str, got {type(value).__name__}")
        return _Request(prompt, namespace, tenant, context, can_generate, backend)

    def _drive_sync(self, flow: Flow, backend: Backend | None, req: _Request) -> Result | None:
        def call(prompt: str, max_tokens: int | None, gate: _StepGate | None = None) -> Completion:
            assert backend is not None
            t0 = time.perf_counter()
            try:
                if gate is None:
                    completion = backend.complete(prompt, max_tokens)
                else:
                    completion = backend.complete_streaming(prompt, max_tokens, gate.feed)
            except Exception as exc:
                raise _BackendFailure(exc) from exc
            req.usage.add(completion, time.perf_counter() - t0)
            return completion

        try:
            effect = next(flow)
            while True:
                if isinstance(effect, _Io):
                    try:
                        value: Any = effect.fn(*effect.args)
                    except Exception as exc:
                        effect = flow.throw(exc)
                        continue
                elif isinstance(effect, _Call):
                    value = call(effect.prompt, effect.max_tokens, self._call_gate(req, effect))
                else:
                    value = effect.task.patch(
                        effect.request, self._patch_generate(req, effect, call)
                    )
                effect = flow.send(value)
        except StopIteration as stop:
            return self._finish(stop.value, req)
        except _BackendFailure as failure:
            raise failure.error from None
        except Exception as exc:  # a bug in a task or in the engine: answer without the cache
            if not req.can_generate:
                self._internal_error(exc)
                return None
            try:
                completion = call(req.prompt, None)
            except _BackendFailure as failure:
                raise failure.error from None
            return self._finish(self._without_cache(exc, completion), req)

    async def _drive_async(
        self, flow: Flow, backend: Backend | None, req: _Request
    ) -> Result | None:
        loop = asyncio.get_running_loop()

        async def acall(
            prompt: str, max_tokens: int | None, gate: _StepGate | None = None
        ) -> Completion:
            assert backend is not None
            t0 = time.perf_counter()
            try:
                if gate is None:
                    completion = await backend.acomplete(prompt, max_tokens)
                else:
                    completion = await backend.acomplete_streaming(prompt, max_tokens, gate.feed)
            except Exception as exc:
                raise _BackendFailure(exc) from exc
            req.usage.add(completion, time.perf_counter() - t0)
            return completion

        def bridge(
            prompt: str, max_tokens: int | None, gate: _StepGate | None = None
        ) -> Completion:
            # Runs in the patch worker thread; the backend call itself is awaited on the loop
            # (so streamed steps reach the listener on the loop too).
            coroutine = acall(prompt, max_tokens, gate)
            return asyncio.run_coroutine_threadsafe(coroutine, loop).result()

        try:
            effect = next(flow)
            while True:
                if isinstance(effect, _Io):
                    try:
                        value: Any = await asyncio.to_thread(effect.fn, *effect.args)
                    except Exception as exc:
                        effect = flow.throw(exc)
                        continue
                elif isinstance(effect, _Call):
                    value = await acall(
                        effect.prompt, effect.max_tokens, self._call_gate(req, effect)
                    )
                else:
                    generate = self._patch_generate(req, effect, bridge)
                    value = await asyncio.to_thread(effect.task.patch, effect.request, generate)
                effect = flow.send(value)
        except StopIteration as stop:
            return self._finish(stop.value, req)
        except _BackendFailure as failure:
            raise failure.error from None
        except Exception as exc:  # a bug in a task or in the engine: answer without the cache
            if not req.can_generate:
                self._internal_error(exc)
                return None
            try:
                completion = await acall(req.prompt, None)
            except _BackendFailure as failure:
                raise failure.error from None
            return self._finish(self._without_cache(exc, completion), req)

    def _call_gate(self, req: _Request, call: _Call) -> _StepGate | None:
        """Stream a full generation's steps when the caller listens (see `_StepGate`)."""
        if req.on_step is None or call.assemble is None:
            return None
        return _StepGate(req, call.assemble, call.task, call.spec)

    def _patch_generate(
        self,
        req: _Request,
        patch: _Patch,
        call: Callable[[str, int | None, _StepGate | None], Completion],
    ) -> Generate:
        """The `generate` a task's patch plan calls. Its steps are streamed only when the
        deterministic fallback backs the patch: a failed patch then keeps what was streamed."""
        task, spec = patch.task, patch.request.spec
        backed = self.config.fallback and type(task).fallback is not Task.fallback

        def generate(
            prompt: str, max_tokens: int | None, assemble: Assemble | None = None
        ) -> Completion:
            gate = None
            if req.on_step is not None and assemble is not None and backed:
                gate = _StepGate(req, assemble, task, spec)
            return call(prompt, max_tokens, gate)

        return generate

    def _internal_error(self, exc: Exception) -> None:
        self._counters["degraded"] += 1
        log.warning("stepcache: internal error, answering without the cache: %r", exc)

    def _without_cache(self, exc: Exception, completion: Completion) -> Result:
        self._internal_error(exc)
        generated = (StepOutcome(completion.text, StepOrigin.GENERATED),)
        return Result(completion.text, Path.MISS, generated, reason=f"cache error: {exc!r}")

    def _finish(self, result: Result | None, req: _Request) -> Result | None:
        if result is None:
            return None
        req.emit(result.steps)
        total = time.perf_counter() - req.started
        timings = dict(req.timings)
        timings.update(backend=req.usage.seconds, total=total, overhead=total - req.usage.seconds)
        self._paths[result.path.value] += 1
        self._counters["backend_calls"] += req.usage.calls
        self._counters["prompt_tokens"] += req.usage.prompt_tokens
        self._counters["completion_tokens"] += req.usage.completion_tokens
        self._counters["fallbacks"] += int(result.fallback_used)
        return replace(
            result,
            prompt_tokens=req.usage.prompt_tokens,
            completion_tokens=req.usage.completion_tokens,
            backend_calls=req.usage.calls,
            timings=timings,
        )

    # ------------------------------------------------------------------ the flow

    def _flow(self, req: _Request) -> Flow:
        cfg = self.config
        if len(req.prompt) > cfg.max_prompt_chars:
            if not req.can_generate:
                return None
            completion = yield _Call(req.prompt, cfg.max_tokens)
            reason = f"prompt longer than max_prompt_chars ({cfg.max_prompt_chars}): not cached"
            return Result(completion.text, Path.MISS, reason=reason)

        # 1. Task detection, then one store read for the exact key and for the recent entries of
        #    the request's shapes (same structure, other numbers, variable or words).
        t0 = time.perf_counter()
        detected = self._detect(req.prompt)
        req.timings["detect"] = time.perf_counter() - t0
        if detected is not None:
            req.shapes = self._shape_keys(req, *detected)
        with self._writer_lock:
            entry = self._unwritten.get(req.key)
            listed = (k for shape in req.shapes for k in self._shapes.get(shape, ()))
            shaped = [k for k in dict.fromkeys(listed) if k != req.key]
        keys = [req.key, *shaped] if entry is None else shaped
        found: dict[str, Entry] = {}
        if keys:
            read = yield from self._io(req, "lookup", "exact lookup", self.store.get_many, keys)
            found = read or {}
        entry = entry or found.get(req.key)

        # 2. Exact tier: a repeated prompt pays for neither an embedding nor verification.
        if entry is not None and _same_request(entry, req):
            served = tuple(StepOutcome(s, StepOrigin.REUSED) for s in entry.steps)
            return Result(
                entry.answer,
                Path.EXACT,
                served,
                task=entry.task,
                similarity=1.0,
                cached_prompt=entry.prompt,
                verified=entry.reusable,
                payload=entry.payload,
                reason="same prompt cached",
            )

        if detected is None:
            if cfg.semantic_min_similarity is None:
                # Only an exact match serves an answer no task verifies: nothing to search for.
                return (yield from self._untyped(req, None, None))
            vector, neighbours = yield from self._search(req, None)
            return (yield from self._untyped(req, vector, neighbours))
        task, spec = detected

        # 3. Shape tier: recent entries shaped like the request are tried before any embedding;
        #    one that serves as it is ends the request here.
        t0 = time.perf_counter()
        judged: dict[str, Result | _Patchable | str | None] = {}
        for key in shaped:
            if key not in found:
                self._forget_shaped(req.shapes, key)  # cleared, evicted or expired
                continue
            verdict = judged[key] = self._evaluate(req, task, spec, found[key], None)
            if isinstance(verdict, Result):
                req.timings["verify"] = time.perf_counter() - t0
                self._store_behind(req, task, verdict.text, None)
                return verdict
        req.timings["verify"] = time.perf_counter() - t0

        # 4. Nearest cached requests: each close one not judged above is tried as a template
        #    (compare, transfer, verify); the best to patch is chosen among all of them.
        vector, neighbours = yield from self._search(req, task.name)
        t0 = time.perf_counter()
        for n in neighbours:
            key = n.entry.key
            if key in judged:  # a shape candidate: judged already, now its similarity is known
                seen = judged[key]
                if isinstance(seen, _Patchable) and seen.similarity is None:
                    judged[key] = replace(seen, similarity=n.similarity)
                continue
            if n.similarity < cfg.min_similarity:
                continue
            verdict = judged[key] = self._evaluate(req, task, spec, n.entry, n.similarity)
            if isinstance(verdict, Result):
                req.timings["verify"] += time.perf_counter() - t0
                self._store_behind(req, task, verdict.text, vector)
                return verdict
        req.timings["verify"] += time.perf_counter() - t0
        best = _best_patchable(judged.values())
        refusals = [v for v in judged.values() if isinstance(v, str)]

        if best is not None:
            repaired = yield from self._repair(
                req, task, spec, best.steps, best.checks, best.failure
            )
            if repaired is not None:
                outcomes, text, used_fallback = repaired
                self._store_behind(req, task, text, vector)
                return Result(
                    text,
                    Path.PATCH,
                    outcomes,
                    task=task.name,
                    similarity=best.similarity,
                    cached_prompt=best.entry.prompt,
                    fallback_used=used_fallback,
                    verified=True,
                    reason=best.failure,
                )
            refusals.append(f"patching failed every attempt ({best.failure})")

        path = Path.SKIP if refusals else Path.MISS
        if not req.can_generate:
            return None
        reason = "; ".join(refusals) if refusals else "no cached request of this task nearby"
        return (yield from self._generate_verified(req, task, spec, vector, path, reason))

    def _search(
        self, req: _Request, task: str | None
    ) -> Generator[Effect, Any, tuple[Any, list[Neighbour]]]:
        """The request's embedding and its nearest cached requests in the same scope (of `task`;
        None: of any task), once the answers still being written in the background have landed
        (read your writes: a request right after another one finds it; writes take ms)."""
        with self._writer_lock:
            pending = bool(self._pending)
        if pending:
            yield from self._io(req, "lookup", "pending writes", self.flush, _WRITE_WAIT_S)
        vector = yield from self._io(req, "embed", "embedding", self.embedder.embed, req.prompt)
        if vector is None:
            return None, []
        found = yield from self._io(
            req,
            "search",
            "similarity search",
            self.store.nearest,
            vector,
            req.namespace,
            req.tenant,
            req.context,
            task,
            self.config.candidates,
        )
        return vector, found or []

    def _evaluate(
        self, req: _Request, task: Task[Any], spec: Any, entry: Entry, similarity: float | None
    ) -> Result | _Patchable | str | None:
        """Judge one cached entry as a template for the request: a reuse Result, a patchable
        plan, a refusal reason, or None when the entry is not of this task at all."""
        cached_spec = task.detect(entry.prompt)
        if cached_spec is None:
            return None
        delta = text_delta.merge(
            text_delta.analyze(entry.prompt, req.prompt),
            task.compare(entry.prompt, cached_spec, req.prompt, spec),
        )
        if delta.core:
            return delta.reason
        steps = task.transfer_steps(entry.steps, cached_spec, spec)
        checks = task.verify(steps, cached_spec, spec)
        failing = [(i, c) for i, c in enumerate(checks) if not c.ok]
        if not failing:
            text = task.stitch(steps)
            integrity = task.integrity(text, spec)
            if integrity.ok:
                return Result(
                    text,
                    Path.REUSE,
                    tuple(StepOutcome(s, StepOrigin.REUSED) for s in steps),
                    task=task.name,
                    similarity=similarity,
                    cached_prompt=entry.prompt,
                    verified=True,
                    reason=f"every step verified ({', '.join(sorted(delta.kinds)) or 'same'})",
                )
            failure = f"every step verified but the whole answer did not: {integrity.reason}"
        else:
            i, check = failing[0]
            failure = f"step {i + 1} of {len(checks)} failed: {check.reason}"
        if not task.worth_patching(checks):
            return f"{len(failing)}/{len(checks)} steps fail: reuse would not pay"
        return _Patchable(entry, similarity, steps, checks, failure)

    def _shape_keys(self, req: _Request, task: Task[Any], spec: Any) -> tuple[str, ...]:
        return tuple(
            entry_key(req.namespace, req.tenant, req.context, f"{task.name}\x00{shape}")
            for shape in task.shapes(req.prompt, spec)
        )

    def _forget_shaped(self, shapes: Sequence[str], key: str) -> None:
        with self._writer_lock:
            for shape in shapes:
                keys = self._shapes.get(shape)
                if keys is not None and key in keys:
                    keys.remove(key)

    def _untyped(self, req: _Request, vector: Any, neighbours: list[Neighbour] | None) -> Flow:
        """Prompts no task recognises: exact reuse only, unless semantic reuse is opted in (then
        `neighbours` are the nearest cached requests of any task; None: not searched)."""
        cfg = self.config
        same_kind = [n for n in neighbours or () if n.entry.task is None]
        best = same_kind[0] if same_kind else None
        sem = cfg.semantic_min_similarity
        if best is not None and sem is not None and best.similarity >= sem:
            steps = tuple(StepOutcome(s, StepOrigin.REUSED) for s in best.entry.steps)
            return Result(
                best.entry.answer,
                Path.REUSE,
                steps,
                similarity=best.similarity,
                cached_prompt=best.entry.prompt,
                payload=best.entry.payload,
                reason=f"semantic reuse at similarity {best.similarity:.3f} >= {sem}",
            )
        if not req.can_generate:
            return None
        near = neighbours[0] if neighbours else None
        if neighbours is None:
            path, reason = Path.MISS, "no task verifies this request: reused on an exact match only"
        elif near is not None and near.similarity >= cfg.min_skip_similarity:
            path, reason = Path.SKIP, "no task verifies this request: the neighbour is not reused"
        else:
            path, reason = Path.MISS, "no task verifies this request and nothing similar is cached"
        completion = yield _Call(req.prompt, cfg.max_tokens, _untyped_steps)
        self._store_behind(
            req, None, completion.text, vector if sem is not None else None, verified=False
        )
        return Result(completion.text, path, tuple(_untyped_steps(completion.text)), reason=reason)

    def _generate_verified(
        self, req: _Request, task: Task[Any], spec: Any, vector: Any, path: Path, reason: str
    ) -> Flow:
        """Full generation, then the task's integrity check; a failing answer gets repaired."""

        def assemble(raw: str) -> list[StepOutcome]:
            return [StepOutcome(s, StepOrigin.GENERATED) for s in task.segment(raw)]

        completion = yield _Call(req.prompt, self.config.max_tokens, assemble, task, spec)
        text = completion.text
        integrity = task.integrity(text, spec)
        if integrity.ok:
            self._store_behind(req, task, text, vector)
            return Result(
                text, path, tuple(assemble(text)), task=task.name, verified=True, reason=reason
            )
        own_steps = task.segment(text)
        checks = task.verify(own_steps, spec, spec)
        has_fallback = self.config.fallback and type(task).fallback is not Task.fallback
        attempts = self.config.max_miss_repairs if has_fallback else 1 + self.config.max_repairs
        repaired = yield from self._repair(
            req, task, spec, own_steps, checks, integrity.reason, attempts
        )
        if repaired is not None:
            outcomes, fixed, used_fallback = repaired
            self._store_behind(req, task, fixed, vector)
            return Result(
                fixed,
                path,
                outcomes,
                task=task.name,
                fallback_used=used_fallback,
                verified=True,
                reason=f"{reason}; the model's answer failed ({integrity.reason}) and was repaired",
            )
        log.info("stepcache: serving an unverified model answer (%s)", integrity.reason)
        steps = tuple(StepOutcome(s, StepOrigin.GENERATED) for s in own_steps)
        return Result(
            text,
            path,
            steps,
            task=task.name,
            verified=False,
            reason=f"{reason}; the model's answer failed ({integrity.reason}) and was not stored",
        )

    def _repair(
        self,
        req: _Request,
        task: Task[Any],
        spec: Any,
        steps: Sequence[str],
        checks: Sequence[Check],
        last_failure: str = "",
        attempts: int | None = None,
    ) -> Generator[Effect, Any, tuple[tuple[StepOutcome, ...], str, bool] | None]:
        """Up to `attempts` backend patches (default: one plus `max_repairs` repairs), then the
        deterministic fallback."""
        cfg = self.config
        attempts = 1 + cfg.max_repairs if attempts is None else attempts
        max_tokens = cfg.patch_max_tokens or cfg.max_tokens
        request = PatchRequest(req.prompt, spec, steps, checks, 0, last_failure, max_tokens)
        if cfg.fallback:  # the fallback keeps this prefix too, so it is final: stream it now
            kept = task.kept_prefix(checks)
            req.emit([StepOutcome(s, StepOrigin.REUSED) for s in steps[:kept]])
        if req.has_backend:
            for attempt in range(attempts):
                steps, checks = _with_streamed(req, task, spec, steps, checks)
                request = PatchRequest(
                    req.prompt, spec, steps, checks, attempt, last_failure, max_tokens
                )
                outcome = yield _Patch(task, request)
                if outcome:
                    text = task.stitch([o.text for o in outcome])
                    integrity = task.integrity(text, spec)
                    if integrity.ok:
                        return tuple(outcome), text, False
                    last_failure = integrity.reason
                else:
                    last_failure = "the patch produced no answer"
        if cfg.fallback:
            steps, checks = _with_streamed(req, task, spec, steps, checks)
            request = PatchRequest(req.prompt, spec, steps, checks, 0, last_failure, max_tokens)
            fallback = task.fallback(request)
            if fallback:
                text = task.stitch([o.text for o in fallback])
                if task.integrity(text, spec).ok:
                    return tuple(fallback), text, True
                log.warning("stepcache: %s fallback failed its own integrity check", task.name)
        return None

    # ------------------------------------------------------------------ helpers

    def _detect(self, prompt: str) -> tuple[Task[Any], Any] | None:
        try:
            return self.tasks.detect(prompt)
        except Exception as exc:  # a task bug must not break the user's call
            log.warning("stepcache: task detection failed, treating as no task: %s", exc)
            return None

    def _io(
        self, req: _Request, key: str, what: str, fn: Callable[..., T], *args: Any
    ) -> Generator[Effect, Any, T | None]:
        """Run a cache operation; on failure log a warning and degrade to a miss (None)."""
        t0 = time.perf_counter()
        try:
            value: T = yield _Io(fn, args)
            return value
        except Exception as exc:
            self._counters["degraded"] += 1
            log.warning("stepcache: %s failed, continuing without the cache: %s", what, exc)
            return None
        finally:
            req.timings[key] = req.timings.get(key, 0.0) + time.perf_counter() - t0

    def _store_behind(
        self,
        req: _Request,
        task: Task[Any] | None,
        text: str,
        vector: Any,
        verified: bool = True,
    ) -> None:
        """Store a served answer off the request path: serving it waits neither for the write nor
        for its embedding. Until written, the entry answers exact repeats from memory."""
        with self._writer_lock:
            if self._writer is None:
                self._writer = ThreadPoolExecutor(1, thread_name_prefix="stepcache-store")
            # A detached copy of the request: the write's timings are not the served request's.
            detached = _Request(req.prompt, req.namespace, req.tenant, req.context, False, False)
            detached.shapes = req.shapes
            entry = self._entry(detached, task, text, verified)
            self._unwritten[entry.key] = entry
            future = self._writer.submit(_drain, self._write(detached, entry, vector))
            self._pending.add(future)
        future.add_done_callback(lambda done: self._written(done, entry))

    def _written(self, future: Future[Any], entry: Entry) -> None:
        with self._writer_lock:
            self._pending.discard(future)
            if self._unwritten.get(entry.key) is entry:
                del self._unwritten[entry.key]

    def flush(self, timeout: float | None = None) -> None:
        """Wait until the answers stored in the background are written."""
        with self._writer_lock:
            pending = list(self._pending)
        futures_wait(pending, timeout=timeout)

    def _store(
        self,
        req: _Request,
        task: Task[Any] | None,
        text: str,
        vector: Any,
        verified: bool,
        payload: str | None = None,
    ) -> Generator[Effect, Any, Entry | None]:
        """Write an entry now (embedding it first when it is reusable and has no vector yet)."""
        return (
            yield from self._write(req, self._entry(req, task, text, verified, payload), vector)
        )

    def _entry(
        self,
        req: _Request,
        task: Task[Any] | None,
        text: str,
        verified: bool,
        payload: str | None = None,
    ) -> Entry:
        steps = task.segment(text) if task is not None else [text]
        return Entry(
            key=req.key,
            namespace=req.namespace,
            context=req.context,
            prompt=req.prompt,
            answer=text,
            steps=tuple(steps),
            task=task.name if task else None,
            reusable=verified or (task is None and self.config.semantic_min_similarity is not None),
            payload=payload,
            tenant=req.tenant,
        )

    def _write(
        self, req: _Request, entry: Entry, vector: Any
    ) -> Generator[Effect, Any, Entry | None]:
        if entry.reusable and vector is None:
            vector = yield from self._io(req, "embed", "embedding", self.embedder.embed, req.prompt)
            if vector is None:
                return None
        written = yield from self._io(req, "store", "store write", _put, self.store, entry, vector)
        if not written:
            return None
        if entry.reusable and req.shapes:
            with self._writer_lock:
                for shape in req.shapes:
                    keys = self._shapes.pop(shape, [])
                    self._shapes[shape] = [entry.key, *(k for k in keys if k != entry.key)][
                        :_SHAPE_DEPTH
                    ]
                while len(self._shapes) > _MAX_SHAPES:
                    self._shapes.popitem(last=False)
        return entry


#: The longest a request waits for earlier answers' background writes before it searches.
_WRITE_WAIT_S = 10.0

#: How many shape keys one StepCache remembers (an in-process index, a few MB at most).
_MAX_SHAPES = 50_000

#: How many of the latest entries of one shape are tried before an embedding (those of all the
#: request's shapes are read in the same store call as the exact key).
_SHAPE_DEPTH = 4


def _best_patchable(verdicts: Iterable[Result | _Patchable | str | None]) -> _Patchable | None:
    """The template that verifies the most steps (the first one on a tie)."""
    best: _Patchable | None = None
    for verdict in verdicts:
        if isinstance(verdict, _Patchable) and (best is None or verdict.passed > best.passed):
            best = verdict
    return best


def _put(store: StepStore, entry: Entry, vector: Any) -> bool:
    store.put(entry, vector)
    return True


def _drain(gen: Generator[Effect, Any, T]) -> T:
    """Run an I/O-only generator synchronously; I/O errors are thrown back into it."""
    try:
        effect = next(gen)
        while True:
            assert isinstance(effect, _Io)
            try:
                value = effect.fn(*effect.args)
            except Exception as exc:
                effect = gen.throw(exc)
                continue
            effect = gen.send(value)
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]


def _untyped_steps(text: str) -> list[StepOutcome]:
    """An answer no task verifies, in steps (lines) so that it streams as it is written."""
    return [StepOutcome(s, StepOrigin.GENERATED) for s in segment_text(text)]


def _with_streamed(
    req: _Request, task: Task[Any], spec: Any, steps: Sequence[str], checks: Sequence[Check]
) -> tuple[Sequence[str], Sequence[Check]]:
    """The steps a repair must keep: the ones already streamed to the caller when they reach
    beyond the verified prefix (a failed patch attempt streamed part of its continuation)."""
    if len(req.emitted) <= task.kept_prefix(checks):
        return steps, checks
    streamed = list(req.emitted)
    return streamed, task.verify(streamed, spec, spec)


def _same_request(entry: Entry, req: _Request) -> bool:
    """An exact hit is served only for the very same scope and prompt, never on the key alone."""
    return (entry.namespace, entry.tenant, entry.context) == (
        req.namespace,
        req.tenant,
        req.context,
    ) and normalize_prompt(entry.prompt) == normalize_prompt(req.prompt)

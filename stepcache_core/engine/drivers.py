"""The sync and the async driver: they run a request flow, carrying out each effect it yields.

Backend calls are blocking in `run` and awaited in `arun`; cache I/O runs inline in `run` and in
a worker thread in `arun`. A failed cache operation is sent to the flow as None (a miss); a
backend error is re-raised to the caller unchanged; any other error (a bug in a task or in the
engine) answers without the cache. `_StepGate` streams a backend call's verified steps to the
request's listener while the backend is still writing.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from stepcache_core.backends.base import Backend
from stepcache_core.config import CacheConfig
from stepcache_core.embed import Embedder
from stepcache_core.engine.effects import (
    CacheIo,
    Call,
    Embed,
    Flow,
    Forget,
    Nearest,
    Patch,
    Read,
    Recall,
    Settle,
    Store,
)
from stepcache_core.engine.request import Request
from stepcache_core.engine.writer import WRITE_WAIT_S, Writer
from stepcache_core.store import Entry, StepStore
from stepcache_core.tasks.base import Assemble, Generate, Task
from stepcache_core.types import Completion, Path, Result, StepOrigin, StepOutcome

log = logging.getLogger("stepcache")


class _BackendFailure(Exception):
    """Carries the user's backend error through the flow so it is re-raised unchanged."""

    def __init__(self, error: BaseException) -> None:
        super().__init__(repr(error))
        self.error = error


@dataclass(frozen=True, slots=True)
class _Job:
    """A blocking cache operation: the request timing it adds to, its name in a warning, and
    the call."""

    timing: str
    what: str
    fn: Callable[..., Any]
    args: tuple[Any, ...]

    def took(self, req: Request, started: float) -> None:
        """Add the time since `started` to the request's timing of this kind of operation."""
        elapsed = time.perf_counter() - started
        req.timings[self.timing] = req.timings.get(self.timing, 0.0) + elapsed


@dataclass(slots=True)
class _StepGate:
    """Streams one backend call's answer to the request's listener step by step, as it is
    written: a step goes out once the next one has started and it verifies, and only as far as
    the task keeps steps verbatim through any later repair (`Task.kept_prefix`), so a streamed
    step is never taken back."""

    req: Request
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


#: How a driver makes one backend call (optionally streaming its steps through a gate).
CallBackend = Callable[[str, int | None, _StepGate | None], Completion]


@dataclass(slots=True)
class Drivers:
    """Runs flows against one cache's store, embedder and writer; counts paths and usage."""

    config: CacheConfig
    store: StepStore
    embedder: Embedder
    writer: Writer
    paths: Counter[str]
    counters: Counter[str]

    def run(self, flow: Flow, backend: Backend | None, req: Request) -> Result | None:
        """Drive `flow` with blocking calls."""

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
                value: Any = None
                if isinstance(effect, Call):
                    value = call(effect.prompt, effect.max_tokens, self._call_gate(req, effect))
                elif isinstance(effect, Patch):
                    generate = self._patch_generate(req, effect, call)
                    value = effect.task.patch(effect.request, generate)
                elif isinstance(effect, Recall | Forget | Store):
                    value = self._writer_state(effect)
                else:
                    job = self._job(effect)
                    if job is not None:
                        t0 = time.perf_counter()
                        try:
                            value = job.fn(*job.args)
                        except Exception as exc:
                            self._degraded(job, exc)
                        job.took(req, t0)
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

    async def arun(self, flow: Flow, backend: Backend | None, req: Request) -> Result | None:
        """Drive `flow` with awaited backend calls; cache I/O and patch plans in threads."""
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
                value: Any = None
                if isinstance(effect, Call):
                    value = await acall(
                        effect.prompt, effect.max_tokens, self._call_gate(req, effect)
                    )
                elif isinstance(effect, Patch):
                    generate = self._patch_generate(req, effect, bridge)
                    value = await asyncio.to_thread(effect.task.patch, effect.request, generate)
                elif isinstance(effect, Recall | Forget | Store):
                    value = self._writer_state(effect)
                else:
                    job = self._job(effect)
                    if job is not None:
                        t0 = time.perf_counter()
                        try:
                            value = await asyncio.to_thread(job.fn, *job.args)
                        except Exception as exc:
                            self._degraded(job, exc)
                        job.took(req, t0)
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

    def _job(self, effect: CacheIo) -> _Job | None:
        """The blocking call that carries out a cache I/O effect (None: nothing to do)."""
        if isinstance(effect, Read):
            return _Job("lookup", "exact lookup", self._read, (list(effect.keys),))
        if isinstance(effect, Embed):
            return _Job("embed", "embedding", self.embedder.embed, (effect.prompt,))
        if isinstance(effect, Nearest):
            scope = (effect.namespace, effect.tenant, effect.context)
            args = (effect.vector, *scope, effect.task, effect.limit)
            return _Job("search", "similarity search", self.store.nearest, args)
        if isinstance(effect, Settle) and self.writer.has_pending():
            return _Job("lookup", "pending writes", self.writer.flush, (WRITE_WAIT_S,))
        return None

    def _read(self, keys: list[str]) -> dict[str, Entry]:
        """Entries by key: those still waiting for their background write from memory, the
        rest from the store in one call."""
        held = self.writer.unwritten(keys)
        rest = [k for k in keys if k not in held]
        return {**(self.store.get_many(rest) if rest else {}), **held}

    def _writer_state(self, effect: Recall | Forget | Store) -> Any:
        """Carry out an effect on the writer's in-process state (quick, under its lock)."""
        if isinstance(effect, Recall):
            return self.writer.recall(effect.key, effect.shapes)
        if isinstance(effect, Forget):
            self.writer.forget(effect.shapes, effect.key)
        else:
            self.writer.store_behind(effect.entry, effect.shapes, effect.vector)
        return None

    def _degraded(self, job: _Job, exc: Exception) -> None:
        self.counters["degraded"] += 1
        log.warning("stepcache: %s failed, continuing without the cache: %s", job.what, exc)

    def _call_gate(self, req: Request, call: Call) -> _StepGate | None:
        """Stream a full generation's steps when the caller listens (see `_StepGate`)."""
        if req.on_step is None or call.assemble is None:
            return None
        return _StepGate(req, call.assemble, call.task, call.spec)

    def _patch_generate(self, req: Request, patch: Patch, call: CallBackend) -> Generate:
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
        self.counters["degraded"] += 1
        log.warning("stepcache: internal error, answering without the cache: %r", exc)

    def _without_cache(self, exc: Exception, completion: Completion) -> Result:
        self._internal_error(exc)
        generated = (StepOutcome(completion.text, StepOrigin.GENERATED),)
        return Result(completion.text, Path.MISS, generated, reason=f"cache error: {exc!r}")

    def _finish(self, result: Result | None, req: Request) -> Result | None:
        if result is None:
            return None
        req.emit(result.steps)
        total = time.perf_counter() - req.started
        timings = dict(req.timings)
        timings.update(backend=req.usage.seconds, total=total, overhead=total - req.usage.seconds)
        self.paths[result.path.value] += 1
        self.counters["backend_calls"] += req.usage.calls
        self.counters["prompt_tokens"] += req.usage.prompt_tokens
        self.counters["completion_tokens"] += req.usage.completion_tokens
        self.counters["fallbacks"] += int(result.fallback_used)
        return replace(
            result,
            prompt_tokens=req.usage.prompt_tokens,
            completion_tokens=req.usage.completion_tokens,
            backend_calls=req.usage.calls,
            timings=timings,
        )

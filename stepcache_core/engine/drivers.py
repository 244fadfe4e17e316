"""The sync and the async driver: they run a request flow, carrying out each effect it yields.

Backend calls are blocking in `run` and awaited in `arun`; cache I/O runs inline in `run` and in
a worker thread in `arun`. A failed cache operation is sent to the flow as None (a miss), with a
rate-limited warning; a backend error is re-raised to the caller unchanged, and so is a
`BackendError` for an answer that is not a `Completion` with a `str` text; any other error (a
bug in a task or in the engine) answers without the cache, serving the model's answer when it
already has one: the backend is never called twice for the same answer. An answer longer than
`CacheConfig.max_answer_chars` is served as written, never parsed or stored. `_StepGate` streams
a backend call's verified steps to the request's listener while the backend is still writing.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass, replace
from typing import Any

from stepcache_core.backends.base import Backend, checked_completion
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
from stepcache_core.ratelimit import RateLimitedLog
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
    warnings: RateLimitedLog
    limit: int  # past this many characters the answer is not parsed: streaming stops
    text: str = ""
    settled: int = 0
    broken: bool = False

    def feed(self, piece: str) -> None:
        if self.broken:
            return
        try:
            self.text += piece
            if len(self.text) > self.limit:
                self.broken = True
                return
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
            self.warnings.warning(
                "streaming", "stepcache: streaming steps failed, the rest comes at the end: %r", exc
            )


#: How a driver makes one backend call (optionally streaming its steps through a gate).
#: A backend call: prompt, token cap, the step gate (streaming) and a JSON Schema the answer
#: must match (schema-constrained decoding where the backend has it).
CallBackend = Callable[[str, int | None, "_StepGate | None", Mapping[str, Any] | None], Completion]


@dataclass(slots=True)
class Drivers:
    """Runs flows against one cache's store, embedder and writer; counts paths and usage.

    Slightly over ~300 lines because it drives the flow two ways (blocking `run`, async `arun`,
    each streaming through the step gate), and both share the effect handlers and counters here
    that keep their behaviour identical.
    """

    config: CacheConfig
    store: StepStore
    embedder: Embedder
    writer: Writer
    paths: Counter[str]
    counters: Counter[str]
    warnings: RateLimitedLog

    def run(self, flow: Flow, backend: Backend | None, req: Request) -> Result | None:
        """Drive `flow` with blocking calls."""

        def call(
            prompt: str,
            max_tokens: int | None,
            gate: _StepGate | None = None,
            schema: Mapping[str, Any] | None = None,
        ) -> Completion:
            assert backend is not None
            t0 = time.perf_counter()
            try:
                if schema is not None:
                    answer: object = backend.complete_json(prompt, schema, max_tokens)
                elif gate is None:
                    answer = backend.complete(prompt, max_tokens)
                else:
                    answer = backend.complete_streaming(prompt, max_tokens, gate.feed)
                completion = checked_completion(answer)
            except Exception as exc:
                raise _BackendFailure(exc) from exc
            req.usage.add(completion, time.perf_counter() - t0)
            return completion

        whole: Completion | None = None  # the model's answer to the request, once it has one
        result: Result | None
        try:
            effect = next(flow)
            while True:
                value: Any = None
                if isinstance(effect, Call):
                    value = whole = call(
                        effect.prompt, effect.max_tokens, self._call_gate(req, effect)
                    )
                    if self._oversized(whole):
                        flow.close()
                        result = self._as_written(req, effect, whole)
                        break
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
            result = stop.value
        except _BackendFailure as failure:
            raise failure.error from None
        except Exception as exc:  # a bug in a task or in the engine: answer without the cache
            self._internal_error(exc)
            if whole is None and req.can_generate:  # the model has not answered yet: ask once
                try:
                    whole = call(req.prompt, self.config.max_tokens)
                except _BackendFailure as failure:
                    raise failure.error from None
            result = self._without_cache(exc, req, whole)
        return self._finish(result, req)

    async def arun(self, flow: Flow, backend: Backend | None, req: Request) -> Result | None:
        """Drive `flow` with awaited backend calls; cache I/O and patch plans in threads."""
        loop = asyncio.get_running_loop()

        async def acall(
            prompt: str,
            max_tokens: int | None,
            gate: _StepGate | None = None,
            schema: Mapping[str, Any] | None = None,
        ) -> Completion:
            assert backend is not None
            t0 = time.perf_counter()
            try:
                if schema is not None:
                    answer: object = await backend.acomplete_json(prompt, schema, max_tokens)
                elif gate is None:
                    answer = await backend.acomplete(prompt, max_tokens)
                else:
                    answer = await backend.acomplete_streaming(prompt, max_tokens, gate.feed)
                completion = checked_completion(answer)
            except Exception as exc:
                raise _BackendFailure(exc) from exc
            req.usage.add(completion, time.perf_counter() - t0)
            return completion

        guard = threading.Lock()
        cancelled = False  # the caller cancelled during a patch: its plan calls nothing more
        in_flight: set[Future[Completion]] = set()

        def bridge(
            prompt: str,
            max_tokens: int | None,
            gate: _StepGate | None = None,
            schema: Mapping[str, Any] | None = None,
        ) -> Completion:
            # Runs in the patch worker thread; the backend call itself is awaited on the loop
            # (so streamed steps reach the listener on the loop too).
            with guard:
                if cancelled:
                    raise asyncio.CancelledError("the request was cancelled")
                coro = acall(prompt, max_tokens, gate, schema)
                future = asyncio.run_coroutine_threadsafe(coro, loop)
                in_flight.add(future)
            try:
                return future.result()
            finally:
                with guard:
                    in_flight.discard(future)

        whole: Completion | None = None  # the model's answer to the request, once it has one
        result: Result | None
        try:
            effect = next(flow)
            while True:
                value: Any = None
                if isinstance(effect, Call):
                    value = whole = await acall(
                        effect.prompt, effect.max_tokens, self._call_gate(req, effect)
                    )
                    if self._oversized(whole):
                        flow.close()
                        result = self._as_written(req, effect, whole)
                        break
                elif isinstance(effect, Patch):
                    generate = self._patch_generate(req, effect, bridge)
                    try:
                        value = await asyncio.to_thread(effect.task.patch, effect.request, generate)
                    except asyncio.CancelledError:  # the thread runs on: stop its backend calls
                        with guard:
                            cancelled = True
                            for future in in_flight:
                                future.cancel()
                        raise
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
            result = stop.value
        except _BackendFailure as failure:
            raise failure.error from None
        except Exception as exc:  # a bug in a task or in the engine: answer without the cache
            self._internal_error(exc)
            if whole is None and req.can_generate:  # the model has not answered yet: ask once
                try:
                    whole = await acall(req.prompt, self.config.max_tokens)
                except _BackendFailure as failure:
                    raise failure.error from None
            result = self._without_cache(exc, req, whole)
        return self._finish(result, req)

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
        self.warnings.warning(
            job.what, "stepcache: %s failed, continuing without the cache: %s", job.what, exc
        )

    def _oversized(self, completion: Completion) -> bool:
        """Whether an answer is too long to parse or store (counted when it is)."""
        if len(completion.text) <= self.config.max_answer_chars:
            return False
        self.counters["oversized"] += 1
        return True

    def _gate(
        self, req: Request, assemble: Assemble, task: Task[Any] | None, spec: Any
    ) -> _StepGate:
        limit = self.config.max_answer_chars
        return _StepGate(req, assemble, task, spec, self.warnings, limit)

    def _call_gate(self, req: Request, call: Call) -> _StepGate | None:
        """Stream a full generation's steps when the caller listens (see `_StepGate`)."""
        if req.on_step is None or call.assemble is None:
            return None
        return self._gate(req, call.assemble, call.task, call.spec)

    def _patch_generate(self, req: Request, patch: Patch, call: CallBackend) -> Generate:
        """The `generate` a task's patch plan calls (it can also ask for JSON matching a schema:
        `_PatchGenerate.complete_json`). Its steps are streamed only when the deterministic
        fallback backs the patch: a failed patch then keeps what was streamed."""
        return _PatchGenerate(self, req, patch, call)

    def _internal_error(self, exc: Exception) -> None:
        self.counters["degraded"] += 1
        self.warnings.warning(
            "internal error", "stepcache: internal error, answering without the cache: %r", exc
        )

    def _without_cache(
        self, exc: Exception, req: Request, completion: Completion | None
    ) -> Result | None:
        """The model's answer served as written after an internal error (None: it has none)."""
        if completion is None:
            return None
        steps = _written_steps(req, completion.text)
        return Result(completion.text, Path.MISS, steps, reason=f"cache error: {exc!r}")

    def _as_written(self, req: Request, call: Call, completion: Completion) -> Result:
        """An answer too long to parse, served as the model wrote it and never stored."""
        limit = self.config.max_answer_chars
        return Result(
            completion.text,
            Path.MISS,
            _written_steps(req, completion.text),
            task=call.task.name if call.task is not None else None,
            reason=f"answer longer than max_answer_chars ({limit}): served as the model wrote "
            "it, not verified or cached",
        )

    def _finish(self, result: Result | None, req: Request) -> Result | None:
        total = time.perf_counter() - req.started
        timings = dict(req.timings)
        timings.update(backend=req.usage.seconds, total=total, overhead=total - req.usage.seconds)
        if result is None:  # a lookup found nothing to serve: the caller's model answers
            self._count(req, None)
            _log_request(req, None, timings)
            return None
        req.emit(result.steps)
        saved_tokens, saved_seconds = 0, 0.0
        if req.reused_cost is not None:
            spent = req.usage.prompt_tokens + req.usage.completion_tokens
            saved_tokens = max(0, req.reused_cost[0] - spent)
            saved_seconds = max(0.0, req.reused_cost[1] - req.usage.seconds)
        result = replace(
            result,
            prompt_tokens=req.usage.prompt_tokens,
            completion_tokens=req.usage.completion_tokens,
            backend_calls=req.usage.calls,
            timings=timings,
            tokens_saved=saved_tokens,
            seconds_saved=saved_seconds,
        )
        self._count(req, result)
        _log_request(req, result, timings)
        return result

    def _count(self, req: Request, result: Result | None) -> None:
        """Count the request in this process and in the store's counters of its scope; a lookup
        that found nothing (`result` None) counts as a miss with what the backend spent."""
        if result is None:
            usage = req.usage
            result = Result(
                "", Path.MISS, prompt_tokens=usage.prompt_tokens,
                completion_tokens=usage.completion_tokens, backend_calls=usage.calls,
                timings={"backend": usage.seconds},
            )  # fmt: skip
        self.count(req.namespace, req.tenant, result)

    def count(self, namespace: str, tenant: str, result: Result) -> None:
        """Count one served request in this process (`paths`, `counters`) and in the store's
        counters of (`namespace`, `tenant`), written in the background by the writer."""
        path = result.path.value
        counts = {
            "requests": 1,
            f"path.{path}": 1,
            "backend_calls": result.backend_calls,
            "prompt_tokens": result.prompt_tokens,
            "completion_tokens": result.completion_tokens,
            "backend_seconds": float(result.timings.get("backend", 0.0)),
            "fallbacks": int(result.fallback_used),
            "tokens_saved": result.tokens_saved,
            "seconds_saved": result.seconds_saved,
        }
        if result.task is not None:
            counts[f"task.{result.task}.{path}"] = 1
        self.paths[path] += 1
        for key in ("backend_calls", "prompt_tokens", "completion_tokens", "fallbacks"):
            self.counters[key] += int(counts[key])
        self.counters["tokens_saved"] += int(counts["tokens_saved"])
        for key in ("seconds_saved", "backend_seconds"):  # kept in ms: a Counter counts ints
            self.counters[f"{key}_ms"] += round(counts[key] * 1000)
        try:
            self.writer.count(namespace, tenant, counts)
        except Exception as exc:  # e.g. at interpreter exit: the counts are lost, not the call
            self.warnings.warning("counters", "stepcache: counting failed: %r", exc)


def _log_request(req: Request, result: Result | None, timings: Mapping[str, float]) -> None:
    """One DEBUG line per request: path, short reason, task and stage timings (ms)."""
    if not log.isEnabledFor(logging.DEBUG):
        return
    if result is None:
        path, task, reason = "miss", None, "lookup: nothing to serve, the caller's model answers"
    else:
        path, task, reason = result.path.value, result.task, result.reason
    stages = " ".join(f"{k}={v * 1000:.1f}ms" for k, v in timings.items())
    short = reason if len(reason) <= 120 else reason[:117] + "..."
    log.debug("stepcache: request path=%s task=%s reason=%r %s", path, task or "-", short, stages)


def _written_steps(req: Request, text: str) -> tuple[StepOutcome, ...]:
    """An answer served without parsing it: the steps already streamed, then the rest as one
    step (so the streamed steps still join to the text), or the whole text as one step."""
    streamed = "".join(req.emitted)
    if not text.startswith(streamed):
        return (StepOutcome(text, StepOrigin.GENERATED),)
    steps = [StepOutcome(s, StepOrigin.GENERATED) for s in req.emitted]
    if len(text) > len(streamed) or not steps:
        steps.append(StepOutcome(text[len(streamed) :], StepOrigin.GENERATED))
    return tuple(steps)


@dataclass(frozen=True, slots=True)
class _PatchGenerate:
    """What a task's patch plan calls to ask the backend: plain text (`__call__`, streamed when
    the fallback backs the patch) or JSON matching a schema (`complete_json`). Answers over the
    size cap reach the task empty: a failed patch attempt."""

    drivers: Drivers
    req: Request
    patch: Patch
    call: CallBackend

    def __call__(
        self, prompt: str, max_tokens: int | None, assemble: Assemble | None = None
    ) -> Completion:
        task, spec = self.patch.task, self.patch.request.spec
        backed = self.drivers.config.fallback and type(task).fallback is not Task.fallback
        gate = None
        if self.req.on_step is not None and assemble is not None and backed:
            gate = self.drivers._gate(self.req, assemble, task, spec)
        return self._capped(self.call(prompt, max_tokens, gate, None))

    def complete_json(
        self, prompt: str, schema: Mapping[str, Any], max_tokens: int | None
    ) -> Completion:
        return self._capped(self.call(prompt, max_tokens, None, schema))

    def _capped(self, completion: Completion) -> Completion:
        return replace(completion, text="") if self.drivers._oversized(completion) else completion

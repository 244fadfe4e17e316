"""The one request flow of DESIGN.md, as pure decisions: exact tier, shape tier, nearest
templates, verify, patch or repair, skip or miss.

`request_flow` is a generator. It never touches the store, the embedder, the backend, a thread
or a lock: it yields an effect (`engine.effects`) for everything it needs done and receives the
result, so the same flow runs under the sync and the async driver, and a test can step it by
hand. What it used to read under the writer's lock (the entries not yet written, the shape
index) it asks for with one `Recall` snapshot effect; what it used to hand to the background
writer it yields as a `Store` effect; a stale shape-index key becomes a `Forget` effect.
Answers to failed cache I/O arrive as None, which the flow treats as a miss; the drivers also
add the time each cache I/O effect takes to the request's timings (`lookup`, `embed`,
`search`), so the flow times only its own work (`detect`, `verify`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Generator, Sequence
from dataclasses import replace
from typing import Any

from stepcache_core.config import CacheConfig
from stepcache_core.engine.effects import (
    Call,
    Effect,
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
from stepcache_core.engine.request import Patchable, Request, answer_entry
from stepcache_core.engine.templates import best_patchable, evaluate, exact_hit
from stepcache_core.segment import segment_text
from stepcache_core.store import Entry, Neighbour, entry_key
from stepcache_core.tasks.base import Check, PatchRequest, Task
from stepcache_core.tasks.registry import TaskRegistry
from stepcache_core.types import Path, Result, StepOrigin, StepOutcome

log = logging.getLogger("stepcache")

Repaired = tuple[tuple[StepOutcome, ...], str, bool]  # served steps, their text, fallback used


def detect_task(tasks: TaskRegistry, prompt: str) -> tuple[Task[Any], Any] | None:
    """The task and spec of `prompt`, or None (also when detection itself fails)."""
    try:
        return tasks.detect(prompt)
    except Exception as exc:  # a task bug must not break the user's call
        log.warning("stepcache: task detection failed, treating as no task: %s", exc)
        return None


def request_flow(req: Request, cfg: CacheConfig, tasks: TaskRegistry) -> Flow:
    """Decide how to answer `req`; the Result (None: a lookup found nothing to serve)."""
    if len(req.prompt) > cfg.max_prompt_chars:
        if not req.can_generate:
            return None
        completion = yield Call(req.prompt, cfg.max_tokens)
        reason = f"prompt longer than max_prompt_chars ({cfg.max_prompt_chars}): not cached"
        return Result(completion.text, Path.MISS, reason=reason)

    # 1. Task detection, then one store read for the exact key and for the recent entries of
    #    the request's shapes (same structure, other numbers, variable or words).
    t0 = time.perf_counter()
    detected = detect_task(tasks, req.prompt)
    req.timings["detect"] = time.perf_counter() - t0
    if detected is not None:
        req.shapes = _shape_keys(req, *detected)
    entry: Entry | None
    entry, shaped = yield Recall(req.key, req.shapes)
    keys = [req.key, *shaped] if entry is None else shaped
    found: dict[str, Entry] = {}
    if keys:
        found = (yield Read(tuple(keys))) or {}
    entry = entry or found.get(req.key)

    # 2. Exact tier: a repeated prompt pays for neither an embedding nor a search.
    hit = exact_hit(entry, req, detected) if entry is not None else None
    if hit is not None and entry is not None:
        req.reuse(entry)
        return hit

    if detected is None:
        if cfg.semantic_min_similarity is None:
            # Only an exact match serves an answer no task verifies: nothing to search for.
            return (yield from _untyped(req, cfg, None, None))
        vector, neighbours = yield from _search(req, cfg, None)
        return (yield from _untyped(req, cfg, vector, neighbours))
    task, spec = detected

    # 3. Shape tier: recent entries shaped like the request are tried before any embedding;
    #    one that serves as it is ends the request here.
    t0 = time.perf_counter()
    judged: dict[str, Result | Patchable | str | None] = {}
    for key in shaped:
        if key not in found:
            yield Forget(req.shapes, key)  # cleared, evicted or expired
            continue
        verdict = judged[key] = evaluate(req, task, spec, found[key], None)
        if isinstance(verdict, Result):
            req.reuse(found[key])
            req.timings["verify"] = time.perf_counter() - t0
            yield _store(req, cfg, task, verdict.text, None)
            return verdict
    req.timings["verify"] = time.perf_counter() - t0

    # 4. Nearest cached requests: each close one not judged above is tried as a template
    #    (compare, transfer, verify); the best to patch is chosen among all of them.
    vector, neighbours = yield from _search(req, cfg, task.name)
    t0 = time.perf_counter()
    for n in neighbours:
        key = n.entry.key
        if key in judged:  # a shape candidate: judged already, now its similarity is known
            seen = judged[key]
            if isinstance(seen, Patchable) and seen.similarity is None:
                judged[key] = replace(seen, similarity=n.similarity)
            continue
        if n.similarity < cfg.min_similarity:
            continue
        verdict = judged[key] = evaluate(req, task, spec, n.entry, n.similarity)
        if isinstance(verdict, Result):
            req.reuse(n.entry)
            req.timings["verify"] += time.perf_counter() - t0
            yield _store(req, cfg, task, verdict.text, vector)
            return verdict
    req.timings["verify"] += time.perf_counter() - t0
    best = best_patchable(judged.values())
    refusals = [v for v in judged.values() if isinstance(v, str)]

    if best is not None:
        repaired = yield from _repair(req, cfg, task, spec, best.steps, best.checks, best.failure)
        if repaired is not None:
            req.reuse(best.entry)
            outcomes, text, used_fallback = repaired
            yield _store(req, cfg, task, text, vector)
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
    # Each candidate refused for the same words reads once.
    reason = (
        "; ".join(dict.fromkeys(refusals)) if refusals else "no cached request of this task nearby"
    )
    return (yield from _generate_verified(req, cfg, task, spec, vector, path, reason))


def _search(
    req: Request, cfg: CacheConfig, task: str | None
) -> Generator[Effect, Any, tuple[Any, list[Neighbour]]]:
    """The request's embedding and its nearest cached requests in the same scope (of `task`;
    None: of any task), once the answers still being written in the background have landed
    (read your writes: a request right after another one finds it; writes take ms)."""
    yield Settle()
    vector = yield Embed(req.prompt)
    if vector is None:
        return None, []
    scope = (req.namespace, req.tenant, req.context)
    found = yield Nearest(vector, *scope, task, cfg.candidates)
    return vector, found or []


def _store(
    req: Request,
    cfg: CacheConfig,
    task: Task[Any] | None,
    text: str,
    vector: Any,
    *,
    verified: bool | None = None,
) -> Store:
    """Store a served answer in the background (verified, by default, unless it has no task)."""
    ok = task is not None if verified is None else verified
    return Store(answer_entry(req, cfg, task, text, ok), req.shapes if ok else (), vector)


def _shape_keys(req: Request, task: Task[Any], spec: Any) -> tuple[str, ...]:
    return tuple(
        entry_key(req.namespace, req.tenant, req.context, f"{task.name}\x00{shape}")
        for shape in task.shapes(req.prompt, spec)
    )


def _untyped(
    req: Request, cfg: CacheConfig, vector: Any, neighbours: list[Neighbour] | None
) -> Flow:
    """Prompts no task recognises: exact reuse only, unless semantic reuse is opted in (then
    `neighbours` are the nearest cached requests of any task; None: not searched)."""
    same_kind = [n for n in neighbours or () if n.entry.task is None]
    best = same_kind[0] if same_kind else None
    sem = cfg.semantic_min_similarity
    if best is not None and sem is not None and best.similarity >= sem:
        req.reuse(best.entry)
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
    completion = yield Call(req.prompt, cfg.max_tokens, untyped_steps)
    yield _store(req, cfg, None, completion.text, vector if sem is not None else None)
    return Result(completion.text, path, tuple(untyped_steps(completion.text)), reason=reason)


def _generate_verified(
    req: Request,
    cfg: CacheConfig,
    task: Task[Any],
    spec: Any,
    vector: Any,
    path: Path,
    reason: str,
) -> Flow:
    """Full generation, then the task's integrity check; a failing answer gets repaired."""

    def assemble(raw: str) -> list[StepOutcome]:
        return [StepOutcome(s, StepOrigin.GENERATED) for s in task.segment(raw)]

    completion = yield Call(req.prompt, cfg.max_tokens, assemble, task, spec)
    text = completion.text
    integrity = task.integrity(text, spec)
    if integrity.ok:
        yield _store(req, cfg, task, text, vector)
        return Result(
            text, path, tuple(assemble(text)), task=task.name, verified=True, reason=reason
        )
    relaid = _relaid(req, task, spec, text)
    if relaid is not None:
        yield _store(req, cfg, task, relaid, vector)
        return Result(
            relaid,
            path,
            tuple(assemble(relaid)),
            task=task.name,
            verified=True,
            reason=f"{reason}; the model's answer laid out as the request asks "
            f"({integrity.reason})",
        )
    own_steps = task.segment(text)
    if completion.finish_reason == "length" and not integrity.wrong:
        # The backend says it stopped at its token limit: the answer is unfinished for certain;
        # the task still decides whether its parse is certain enough to finish it.
        stopped = f"{integrity.reason}; the backend stopped at its token limit"
        integrity = Check(False, stopped, wrong=True)
    if not task.proven_wrong(text, spec, integrity):
        # Never worse than the model: an answer the task cannot prove wrong is served as the
        # model wrote it, unverified; it answers exact repeats but is never a template.
        yield _store(req, cfg, task, text, None, verified=False)
        return Result(
            text,
            path,
            tuple(StepOutcome(s, StepOrigin.GENERATED) for s in own_steps),
            task=task.name,
            verified=False,
            reason=f"{reason}; served unverified as the model wrote it ({integrity.reason})",
        )
    checks = task.verify(own_steps, spec, spec)
    has_fallback = cfg.fallback and type(task).fallback is not Task.fallback
    attempts = cfg.max_miss_repairs if has_fallback else 1 + cfg.max_repairs
    repaired = yield from _repair(
        req, cfg, task, spec, own_steps, checks, integrity.reason, attempts
    )
    if repaired is not None:
        outcomes, fixed, used_fallback = repaired
        yield _store(req, cfg, task, fixed, vector)
        return Result(
            fixed,
            path,
            outcomes,
            task=task.name,
            fallback_used=used_fallback,
            verified=True,
            reason=f"{reason}; the model's answer failed ({integrity.reason}) and was repaired",
        )
    log.info("stepcache: serving a model answer proven wrong (%s)", integrity.reason)
    steps = tuple(StepOutcome(s, StepOrigin.GENERATED) for s in own_steps)
    return Result(
        text,
        path,
        steps,
        task=task.name,
        verified=False,
        reason=f"{reason}; the model's answer is wrong ({integrity.reason}), repairs failed, "
        "not stored",
    )


def _relaid(req: Request, task: Task[Any], spec: Any, text: str) -> str | None:
    """The model's answer with only the layout its request asks for changed (`Task.relayout`),
    when that alone makes it pass and it keeps every step already streamed; else None."""
    relaid = task.relayout(text, spec)
    if relaid is None or not relaid.startswith("".join(req.emitted)):
        return None
    return relaid if task.integrity(relaid, spec).ok else None


def _repair(
    req: Request,
    cfg: CacheConfig,
    task: Task[Any],
    spec: Any,
    steps: Sequence[str],
    checks: Sequence[Check],
    last_failure: str = "",
    attempts: int | None = None,
) -> Generator[Effect, Any, Repaired | None]:
    """Up to `attempts` backend patches (default: one plus `max_repairs` repairs), then the
    deterministic fallback."""
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
            outcome = yield Patch(task, request)
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


def _with_streamed(
    req: Request, task: Task[Any], spec: Any, steps: Sequence[str], checks: Sequence[Check]
) -> tuple[Sequence[str], Sequence[Check]]:
    """The steps a repair must keep: the ones already streamed to the caller when they reach
    beyond the verified prefix (a failed patch attempt streamed part of its continuation)."""
    if len(req.emitted) <= task.kept_prefix(checks):
        return steps, checks
    streamed = list(req.emitted)
    return streamed, task.verify(streamed, spec, spec)


def untyped_steps(text: str) -> list[StepOutcome]:
    """An answer no task verifies, in steps (lines) so that it streams as it is written."""
    return [StepOutcome(s, StepOrigin.GENERATED) for s in segment_text(text)]

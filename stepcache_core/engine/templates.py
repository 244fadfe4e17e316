"""Judging a cached entry for a request: the same request (exact tier), or a template whose
steps transfer and verify (reuse), partly verify (patch), or must not be reused (a reason)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from stepcache_core.engine.request import Patchable, Request
from stepcache_core.store import Entry
from stepcache_core.tasks.base import Task
from stepcache_core.tasks.understanding import residue_change
from stepcache_core.types import Path, Result, StepOrigin, StepOutcome


def exact_hit(entry: Entry, req: Request, detected: tuple[Task[Any], Any] | None) -> Result | None:
    """The stored answer of the very same request, or None.

    The same means: the same scope, the same raw prompt (the key collapses whitespace, which a
    task may read: a newline can split an equation, a doubled space is part of a quoted key), the
    same task registry, and the same task. A verified entry must still pass the request's own
    integrity check; an answer served unverified (the model's own, as written) is served again
    unless its task proves it wrong.
    """
    scope = (entry.namespace, entry.tenant, entry.context)
    if scope != (req.namespace, req.tenant, req.context) or entry.prompt != req.prompt:
        return None
    task, spec = detected if detected is not None else (None, None)
    if entry.registry != req.registry or entry.task != (task.name if task else None):
        return None
    verified = entry.reusable
    if task is not None:
        check = task.integrity(entry.answer, spec)
        if not check.ok and (entry.reusable or task.proven_wrong(entry.answer, spec, check)):
            return None
        verified = check.ok
    return Result(
        entry.answer,
        Path.EXACT,
        tuple(StepOutcome(s, StepOrigin.REUSED) for s in entry.steps),
        task=entry.task,
        similarity=1.0,
        cached_prompt=entry.prompt,
        verified=verified,
        payload=entry.payload,
        reason="same prompt cached"
        if verified or task is None
        else "same prompt cached "
        "(the model's own answer, served as written: its task could not verify it)",
    )


def evaluate(
    req: Request, task: Task[Any], spec: Any, entry: Entry, similarity: float | None
) -> Result | Patchable | str | None:
    """Judge one cached entry as a template for the request: a reuse Result, a patchable
    plan, a refusal reason, or None when the entry is not of this task at all."""
    cached_spec = task.detect(entry.prompt)
    if cached_spec is None:
        return None
    change = residue_change(task.residue(entry.prompt, cached_spec), task.residue(req.prompt, spec))
    if change:
        return change  # closed world: words the task does not parse changed
    delta = task.compare(entry.prompt, cached_spec, req.prompt, spec)
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
    return Patchable(entry, similarity, steps, checks, failure)


def best_patchable(verdicts: Iterable[Result | Patchable | str | None]) -> Patchable | None:
    """The template that verifies the most steps (the first one on a tie)."""
    best: Patchable | None = None
    for verdict in verdicts:
        if isinstance(verdict, Patchable) and (best is None or verdict.passed > best.passed):
            best = verdict
    return best

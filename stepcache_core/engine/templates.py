"""Judging a cached entry for a request: the same request (exact tier), or a template whose
steps transfer and verify (reuse), partly verify (patch), or must not be reused (a reason)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from stepcache_core import delta as text_delta
from stepcache_core.engine.request import Patchable, Request
from stepcache_core.store import Entry, normalize_prompt
from stepcache_core.tasks.base import Task
from stepcache_core.types import Path, Result, StepOrigin, StepOutcome


def same_request(entry: Entry, req: Request) -> bool:
    """An exact hit is served only for the very same scope and prompt, never on the key alone."""
    return (entry.namespace, entry.tenant, entry.context) == (
        req.namespace,
        req.tenant,
        req.context,
    ) and normalize_prompt(entry.prompt) == normalize_prompt(req.prompt)


def evaluate(
    req: Request, task: Task[Any], spec: Any, entry: Entry, similarity: float | None
) -> Result | Patchable | str | None:
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
    return Patchable(entry, similarity, steps, checks, failure)


def best_patchable(verdicts: Iterable[Result | Patchable | str | None]) -> Patchable | None:
    """The template that verifies the most steps (the first one on a tie)."""
    best: Patchable | None = None
    for verdict in verdicts:
        if isinstance(verdict, Patchable) and (best is None or verdict.passed > best.passed):
            best = verdict
    return best

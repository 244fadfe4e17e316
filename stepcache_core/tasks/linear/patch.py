"""Patch: keep the verified prefix, ask the backend to continue from it, stitch the continuation's
steps after it."""

from __future__ import annotations

from collections.abc import Sequence

from stepcache_core.segment import segment_text
from stepcache_core.tasks.base import Generate, PatchRequest
from stepcache_core.tasks.linear.spec import LinearSpec
from stepcache_core.types import StepOrigin, StepOutcome

__all__ = ["patch_answer", "patched_steps", "verified_prefix"]


def patch_answer(request: PatchRequest[LinearSpec], generate: Generate) -> list[StepOutcome] | None:
    """Keep the verified prefix, ask the backend to continue from it, stitch. The engine may
    stream the continuation's steps as they are written (`patched_steps` is prefix-stable)."""
    prefix = verified_prefix(request)

    def assemble(raw: str) -> list[StepOutcome]:
        return patched_steps(prefix, raw)

    completion = generate(_patch_prompt(request, "".join(prefix)), request.max_tokens, assemble)
    outcomes = assemble(completion.text)
    return outcomes if len(outcomes) > len(prefix) else None


def patched_steps(prefix: Sequence[str], raw: str) -> list[StepOutcome]:
    """The kept `prefix` followed by the steps of the backend's continuation `raw` (complete or
    still being written). A continuation that starts by repeating the prefix has the repeat
    removed; while it could still be such a repeat, it contributes no step yet."""
    prefix_text = "".join(prefix)
    kept = prefix_text.strip()
    continuation = raw
    if kept:
        body = raw.lstrip()
        if body.startswith(kept):
            continuation = body[len(kept) :]
        elif kept.startswith(body):  # nothing but (the start of) a repeat so far
            continuation = ""
    if prefix_text and not prefix_text.endswith("\n"):
        continuation = "\n" + continuation.lstrip("\n")
    elif prefix_text:
        continuation = continuation.lstrip("\n")
    outcomes = [StepOutcome(s, StepOrigin.REUSED) for s in prefix]
    if continuation.strip():
        outcomes += [StepOutcome(s, StepOrigin.PATCHED) for s in segment_text(continuation)]
    return outcomes


def verified_prefix(request: PatchRequest[LinearSpec]) -> list[str]:
    first = next((i for i, c in enumerate(request.checks) if not c.ok), len(request.steps))
    return list(request.steps[:first])


def _patch_prompt(request: PatchRequest[LinearSpec], prefix_text: str) -> str:
    spec = request.spec
    end = f"end with the line '{spec.variable} = <value>' (exact; a fraction like 25/3 if needed)"
    parts = [request.prompt.strip(), ""]
    if prefix_text.strip():
        parts += [
            "Here is the start of a solution; every step in it has been verified as correct:",
            "",
            prefix_text.rstrip(),
            "",
            "Continue the solution exactly from where it stops; do not repeat the steps above. "
            f"Write the remaining steps concisely, one per line, and {end}.",
        ]
    else:
        parts.append(
            f"Solve {spec.equation} step by step, concisely, one step per line, and {end}."
        )
    if request.attempt > 0 and request.last_failure:
        parts += [
            "",
            f"A previous answer was rejected: {request.last_failure}. Avoid that mistake.",
        ]
    return "\n".join(parts)

"""Exact-only answers: served to the very same request only, never a template, never repaired.

For requests whose answer the engine must not reuse step by step or repair (tools bound, a
response format, tool calls in the answer): the adapter stores the model's answer losslessly
as a payload and serves it back only to the same scope and prompt. A hit is counted in
`StepCache.stats()` and the store's counters (path ``exact``) here; the adapter counts a miss
(`StepCache.record`), since only it knows whether its model was called.
"""

from __future__ import annotations

from stepcache_core.engine import StepCache
from stepcache_core.store import Entry, entry_key
from stepcache_core.types import Path, Result

#: Why an exact-only request not in the cache goes to the caller's model.
NOT_CACHED = "exact-only request (tools or response format bound): not cached, the model answers"


def get_exact(
    cache: StepCache,
    prompt: str,
    *,
    namespace: str,
    tenant: str = "",
    context: str = "",
    count_miss: bool = False,
) -> Result | None:
    """The stored answer of this very request (with its payload), counted as an exact hit;
    None when there is none, counted as a miss with `count_miss` (the caller's model answers
    and the adapter sees no more of it)."""
    found = _stored(cache, prompt, namespace, tenant, context)
    if found is None:
        if count_miss:
            cache.record(
                Result("", Path.MISS, reason=NOT_CACHED), namespace=namespace, tenant=tenant
            )
        return None
    return found


def _stored(
    cache: StepCache, prompt: str, namespace: str, tenant: str, context: str
) -> Result | None:
    entry = cache.store.get(entry_key(namespace, tenant, context, prompt))
    if entry is None or entry.payload is None:
        return None
    if (entry.namespace, entry.tenant, entry.context) != (namespace, tenant, context):
        return None
    if entry.prompt != prompt or entry.registry != cache.tasks.identity:
        return None  # exact means identical, read by the same task registry
    result = Result(
        entry.answer, Path.EXACT, similarity=1.0, cached_prompt=entry.prompt,
        payload=entry.payload, reason="exact-only request: same request cached",
        tokens_saved=entry.cost_tokens, seconds_saved=entry.cost_seconds,
    )  # fmt: skip
    cache.record(result, namespace=namespace, tenant=tenant)
    return result


def put_exact(
    cache: StepCache,
    prompt: str,
    answer: str,
    payload: str,
    *,
    namespace: str,
    tenant: str = "",
    context: str = "",
    prompt_tokens: int = 0,
    completion_tokens: int = 0,
    seconds: float = 0.0,
) -> Entry:
    """Store `payload` (the model's whole answer) for this very request only: no task, no vector,
    not reusable, so no other request is ever served from it. `prompt_tokens`,
    `completion_tokens` and `seconds`: what the model spent on it, reported as saved on a hit."""
    entry = Entry(
        key=entry_key(namespace, tenant, context, prompt), namespace=namespace, context=context,
        prompt=prompt, answer=answer, steps=(answer,), payload=payload, tenant=tenant,
        registry=cache.tasks.identity,
        cost_tokens=max(0, prompt_tokens) + max(0, completion_tokens),
        cost_seconds=max(0.0, seconds),
    )  # fmt: skip
    cache.store.put(entry, None)
    return entry


def passed_through(
    reason: str,
    cache: StepCache | None = None,
    *,
    namespace: str = "default",
    tenant: str = "",
    context: str = "",
) -> Result:
    """What adapters report for an exact-only request their model answered (`reason`: why),
    counted in `cache` when given (`StepCache.record`; `context` is not part of the counters)."""
    result = Result("", Path.MISS, backend_calls=1, reason=reason)
    if cache is not None:
        cache.record(result, namespace=namespace, tenant=tenant)
    return result

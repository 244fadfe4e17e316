"""The request flow stepped by hand, without any I/O: each effect it yields is answered with a
scripted value (a store read, a backend completion, a patch), and its decisions are asserted."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import pytest

from stepcache_core import (
    CacheConfig,
    Completion,
    Delta,
    DeltaKind,
    Entry,
    Neighbour,
    Path,
    Result,
    StepOrigin,
    StepOutcome,
    TaskRegistry,
)
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
from stepcache_core.engine.flow import request_flow
from stepcache_core.engine.request import Request, answer_entry
from stepcache_core.segment import segment_text

from toy_tasks import MultiplesSpec, MultiplesTask, multiples_answer

VECTOR = [1.0, 0.0]


class ShapedMultiples(MultiplesTask):
    """The toy task with one shape for all its requests, and a core change when k differs."""

    def shapes(self, prompt: str, spec: MultiplesSpec) -> Sequence[str]:
        return ("multiples",)

    def compare(
        self, cached_prompt: str, cached: MultiplesSpec, prompt: str, spec: MultiplesSpec
    ) -> Delta:
        if cached.k != spec.k:
            return Delta(frozenset({DeltaKind.CORE}), "another multiplication table")
        return super().compare(cached_prompt, cached, prompt, spec)


TASK = ShapedMultiples()
CONFIG = CacheConfig()


def request(prompt: str, *, can_generate: bool = True) -> Request:
    return Request(prompt, "default", "", "", can_generate, has_backend=True)


def cached(prompt: str, n: int, k: int) -> Entry:
    """A verified entry as the store would hold it."""
    return answer_entry(request(prompt), CONFIG, TASK, multiples_answer(n, k), verified=True)


def flow_for(req: Request, config: CacheConfig = CONFIG) -> Flow:
    return request_flow(req, config, TaskRegistry([TASK]))


Answer = Callable[[Any], Any]


def drive(flow: Flow, answers: dict[type, Answer]) -> tuple[Result | None, list[Effect]]:
    """Step `flow` to its end, answering each effect with `answers[type(effect)](effect)`.
    Settle, Forget and Store need no answer (None); any other unscripted effect fails."""
    effects: list[Effect] = []
    try:
        effect = next(flow)
        while True:
            effects.append(effect)
            if type(effect) in answers:
                value = answers[type(effect)](effect)
            elif isinstance(effect, Settle | Forget | Store):
                value = None
            else:
                pytest.fail(f"unscripted effect {effect!r}")
            effect = flow.send(value)
    except StopIteration as stop:
        return stop.value, effects


def of(kind: type, effects: list[Effect]) -> list[Any]:
    return [e for e in effects if isinstance(e, kind)]


def test_an_exact_hit_is_served_from_one_store_read_and_nothing_else() -> None:
    req = request("Give the first 3 multiples of 4.")
    entry = cached(req.prompt, 3, 4)
    flow = flow_for(req)

    recall = next(flow)  # stepped by hand: first the writer's snapshot, then one store read
    assert recall == Recall(req.key, req.shapes) and len(req.shapes) == 1
    read = flow.send((None, []))
    assert read == Read((req.key,))
    with pytest.raises(StopIteration) as stop:
        flow.send({req.key: entry})
    result = stop.value.value
    assert result.path is Path.EXACT and result.text == multiples_answer(3, 4)
    assert all(s.origin is StepOrigin.REUSED for s in result.steps)


def test_an_exact_hit_of_another_scope_under_the_same_key_is_not_served() -> None:
    req = request("Give the first 3 multiples of 4.")
    other_tenant = replace(cached(req.prompt, 3, 4), tenant="someone else")
    result, effects = drive(
        flow_for(req),
        {
            Recall: lambda e: (None, []),
            Read: lambda e: {req.key: other_tenant},
            Embed: lambda e: VECTOR,
            Nearest: lambda e: [],
            Call: lambda e: Completion(multiples_answer(3, 4)),
        },
    )
    assert result is not None and result.path is Path.MISS
    assert len(of(Call, effects)) == 1


def test_an_answer_not_yet_written_is_served_without_a_store_read() -> None:
    req = request("Give the first 3 multiples of 4.")
    result, effects = drive(flow_for(req), {Recall: lambda e: (cached(req.prompt, 3, 4), [])})
    assert result is not None and result.path is Path.EXACT
    assert [type(e) for e in effects] == [Recall]


def test_a_miss_calls_the_backend_once_then_stores_the_verified_answer() -> None:
    req = request("Give the first 3 multiples of 4.")
    result, effects = drive(
        flow_for(req),
        {
            Recall: lambda e: (None, []),
            Read: lambda e: {},
            Embed: lambda e: VECTOR,
            Nearest: lambda e: [],
            Call: lambda e: Completion(multiples_answer(3, 4)),
        },
    )
    assert [type(e) for e in effects] == [Recall, Read, Settle, Embed, Nearest, Call, Store]
    (nearest,) = of(Nearest, effects)
    assert nearest.task == "multiples" and nearest.limit == CONFIG.candidates
    assert nearest.vector == VECTOR
    assert result is not None and result.path is Path.MISS and result.verified
    (store,) = of(Store, effects)
    assert store.entry.key == req.key and store.entry.reusable and store.vector == VECTOR
    assert store.entry.answer == multiples_answer(3, 4) and store.shapes == req.shapes


def test_a_shaped_entry_that_verifies_is_reused_before_any_embedding() -> None:
    req = request("Write out the first 3 multiples of 4.")
    template = cached("Give the first 3 multiples of 4.", 3, 4)
    result, effects = drive(
        flow_for(req),
        {
            Recall: lambda e: (None, [template.key]),
            Read: lambda e: {template.key: template},
        },
    )
    assert of(Read, effects) == [Read((req.key, template.key))]
    assert result is not None and result.path is Path.REUSE and result.similarity is None
    assert result.cached_prompt == template.prompt
    assert not of(Embed, effects) and not of(Call, effects)
    (store,) = of(Store, effects)
    assert store.vector is None and store.entry.prompt == req.prompt


def test_a_core_change_skips_reuse_and_generates() -> None:
    req = request("Give the first 3 multiples of 4.")
    template = cached("Give the first 3 multiples of 5.", 3, 5)
    near = Neighbour(template, 0.99)
    result, effects = drive(
        flow_for(req),
        {
            Recall: lambda e: (None, []),
            Read: lambda e: {},
            Embed: lambda e: VECTOR,
            Nearest: lambda e: [near],
            Call: lambda e: Completion(multiples_answer(3, 4)),
        },
    )
    assert result is not None and result.path is Path.SKIP
    assert "another multiplication table" in result.reason
    assert result.text == multiples_answer(3, 4) and not of(Patch, effects)
    assert of(Call, effects)[0].prompt == req.prompt


def test_a_partly_verified_template_is_patched_from_its_verified_steps() -> None:
    req = request("Give the first 4 multiples of 3.")
    template = cached("Give the first 3 multiples of 3.", 3, 3)
    answer = [StepOutcome(s, StepOrigin.PATCHED) for s in segment_text(multiples_answer(4, 3))]
    result, effects = drive(
        flow_for(req),
        {
            Recall: lambda e: (None, [template.key]),
            Read: lambda e: {template.key: template},
            Embed: lambda e: VECTOR,
            Nearest: lambda e: [Neighbour(template, 0.9)],
            Patch: lambda e: answer,
        },
    )
    (patch,) = of(Patch, effects)
    assert list(patch.request.steps) == list(template.steps) and patch.request.attempt == 0
    assert not of(Call, effects)
    assert result is not None and result.path is Path.PATCH and not result.fallback_used
    assert result.text == multiples_answer(4, 3) and result.similarity == 0.9
    (store,) = of(Store, effects)
    assert store.entry.answer == multiples_answer(4, 3) and store.vector == VECTOR


def test_a_failing_patch_is_retried_then_the_fallback_serves() -> None:
    req = request("Give the first 4 multiples of 3.")
    template = cached("Give the first 3 multiples of 3.", 3, 3)
    wrong = [StepOutcome("1 x 3 = 4\n", StepOrigin.PATCHED)]
    result, effects = drive(
        flow_for(req),
        {
            Recall: lambda e: (None, [template.key]),
            Read: lambda e: {template.key: template},
            Embed: lambda e: VECTOR,
            Nearest: lambda e: [],
            Patch: lambda e: wrong,
        },
    )
    patches = of(Patch, effects)
    assert [p.request.attempt for p in patches] == list(range(1 + CONFIG.max_repairs))
    assert patches[-1].request.last_failure == "not the exact list"
    assert result is not None and result.path is Path.PATCH and result.fallback_used
    assert result.text == multiples_answer(4, 3)


def test_a_stale_shape_key_is_forgotten_and_failed_cache_io_is_a_miss() -> None:
    req = request("Give the first 3 multiples of 4.")
    result, effects = drive(
        flow_for(req),
        {
            Recall: lambda e: (None, ["gone"]),
            Read: lambda e: None,  # the store read failed
            Embed: lambda e: None,  # so did the embedding: no search at all
            Call: lambda e: Completion(multiples_answer(3, 4)),
        },
    )
    assert of(Forget, effects) == [Forget(req.shapes, "gone")]
    assert not of(Nearest, effects)
    assert result is not None and result.path is Path.MISS
    assert of(Store, effects)[0].vector is None  # the writer embeds it later


def test_a_lookup_never_generates() -> None:
    req = request("Give the first 3 multiples of 4.", can_generate=False)
    result, effects = drive(
        flow_for(req),
        {
            Recall: lambda e: (None, []),
            Read: lambda e: {},
            Embed: lambda e: VECTOR,
            Nearest: lambda e: [],
        },
    )
    assert result is None and not of(Call, effects) and not of(Store, effects)


def test_an_untyped_prompt_is_answered_without_a_search_unless_semantic_reuse_is_on() -> None:
    req = request("Tell me a story about a lighthouse.")
    answers: dict[type, Answer] = {
        Recall: lambda e: (None, []),
        Read: lambda e: {},
        Embed: lambda e: VECTOR,
        Nearest: lambda e: [],
        Call: lambda e: Completion("Once upon a time."),
    }
    result, effects = drive(flow_for(req), answers)
    assert [type(e) for e in effects] == [Recall, Read, Call, Store]
    assert result is not None and result.path is Path.MISS
    assert not of(Store, effects)[0].entry.reusable

    semantic = CacheConfig(semantic_min_similarity=0.9)
    result, effects = drive(flow_for(request(req.prompt), semantic), answers)
    assert [type(e) for e in effects] == [Recall, Read, Settle, Embed, Nearest, Call, Store]
    store = of(Store, effects)[0]
    assert store.entry.reusable and store.vector == VECTOR

"""Engine flow on a controllable toy task, an in-memory store and a hashing embedder."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import pytest

from stepcache_core import (
    Backend,
    CacheConfig,
    Completion,
    Embedder,
    Entry,
    InMemoryStore,
    InvalidPromptError,
    Path,
    Result,
    StepCache,
    StepOrigin,
    StepOutcome,
    Task,
    TaskRegistry,
)

from conftest import HashEmbedder, ScriptedBackend
from toy_tasks import MultiplesTask, multiples_answer


class CountingEmbedder(Embedder):
    name = "counting"

    def __init__(self) -> None:
        self.inner = HashEmbedder()
        self.calls = 0

    def embed_batch(self, texts: Sequence[str]) -> list[list[float]]:
        self.calls += 1
        return self.inner.embed_batch(texts)


def right(prompt: str) -> str:
    """A backend that answers the toy task correctly (full lists and continuations)."""
    import re

    m = re.search(r"first (\d+) multiples of (\d+)(?: from (\d+))?", prompt)
    if not m:
        return "I do not know."
    n, k = int(m.group(1)), int(m.group(2))
    return multiples_answer(n, k, int(m.group(3) or 1))


def make_cache(task: Task[Any] | None = None, **config: object) -> StepCache:
    """An in-memory cache of one task (default the toy multiples task)."""
    return StepCache(
        InMemoryStore(),
        embedder=CountingEmbedder(),
        tasks=[task if task is not None else MultiplesTask()],
        config=CacheConfig(**config),  # type: ignore[arg-type]
    )


def test_miss_then_exact_hit_skips_embedding_and_backend() -> None:
    cache = make_cache()
    backend = ScriptedBackend(right)
    first = cache.generate("List the first 3 multiples of 4.", backend)
    assert first.path is Path.MISS and first.verified
    assert first.text == multiples_answer(3, 4)
    embedder = cache.embedder
    assert isinstance(embedder, CountingEmbedder)
    before = embedder.calls
    second = cache.generate("List the first 3 multiples of 4.", backend)
    assert second.path is Path.EXACT
    assert second.text == first.text
    assert backend.calls == 1 and embedder.calls == before
    assert second.backend_calls == 0 and second.total_tokens == 0
    # Whitespace is part of the prompt a task reads: another spacing is not the same request
    # (the exact tier never merges two prompts).
    spaced = cache.generate("List the first 3   multiples of 4.", backend)
    assert spaced.path is not Path.EXACT


def test_reworded_request_is_reused_without_backend() -> None:
    cache = make_cache()
    backend = ScriptedBackend(right)
    cache.generate("List the first 3 multiples of 4.", backend)
    result = cache.generate("Please write out the first 3 multiples of 4", backend)
    assert result.path is Path.REUSE
    assert result.text == multiples_answer(3, 4)
    assert backend.calls == 1
    assert all(s.origin is StepOrigin.REUSED for s in result.steps)
    assert result.cached_prompt == "List the first 3 multiples of 4."


def test_longer_list_is_patched_from_the_first_missing_step() -> None:
    cache = make_cache()
    backend = ScriptedBackend(right)
    cache.generate("List the first 3 multiples of 4.", backend)
    result = cache.generate("List the first 5 multiples of 4.", backend)
    assert result.path is Path.PATCH and result.verified
    assert result.text == multiples_answer(5, 4)
    assert backend.prompts[-1] == "Continue the first 5 multiples of 4 from 4."
    origins = [s.origin for s in result.steps]
    assert origins == [StepOrigin.REUSED] * 3 + [StepOrigin.PATCHED] * 2
    assert result.backend_calls == 1


def test_changed_constant_with_every_step_failing_skips_reuse() -> None:
    cache = make_cache()
    backend = ScriptedBackend(right)
    cache.generate("List the first 3 multiples of 4.", backend)
    result = cache.generate("List the first 3 multiples of 7.", backend)
    assert result.path is Path.SKIP
    assert "would not pay" in result.reason
    assert result.text == multiples_answer(3, 7)
    assert backend.prompts[-1] == "List the first 3 multiples of 7."


def test_wrong_backend_is_repaired_by_the_deterministic_fallback() -> None:
    cache = make_cache()
    liar = ScriptedBackend(lambda p: "1 x 4 = 5\n")
    result = cache.generate("List the first 3 multiples of 4.", liar)
    assert result.verified and result.fallback_used
    assert result.text == multiples_answer(3, 4)
    # a fresh answer that fails goes straight to the exact fallback (max_miss_repairs=0)
    assert liar.calls == 1
    patched = cache.generate("List the first 6 multiples of 4.", liar)
    assert patched.path is Path.PATCH and patched.fallback_used
    assert patched.text == multiples_answer(6, 4)
    # a patch of a cached answer: the patch and two repairs, then the fallback
    assert liar.calls == 1 + 1 + 2


def test_miss_repairs_use_the_backend_when_configured_or_without_fallback() -> None:
    liar = ScriptedBackend(lambda p: "1 x 4 = 5\n")
    cache = make_cache(max_miss_repairs=1)
    assert cache.generate("List the first 3 multiples of 4.", liar).fallback_used
    assert liar.calls == 1 + 1
    no_fallback = make_cache(fallback=False, max_repairs=1)
    other = ScriptedBackend(lambda p: "1 x 4 = 5\n")
    assert not no_fallback.generate("List the first 3 multiples of 4.", other).verified
    assert other.calls == 1 + 2


def test_a_reused_answer_is_stored_off_the_request_path() -> None:
    cache = make_cache()
    backend = ScriptedBackend(right)
    cache.generate("List the first 3 multiples of 4.", backend)
    reused = cache.generate("Please write out the first 3 multiples of 4", backend)
    assert reused.path is Path.REUSE and "store" not in reused.timings
    cache.flush()
    assert cache.store.count() == 2
    again = cache.generate("Please write out the first 3 multiples of 4", backend)
    assert again.path is Path.EXACT


def test_without_fallback_a_rejected_answer_is_served_unverified_and_never_cached() -> None:
    cache = make_cache(fallback=False, max_repairs=0)
    liar = ScriptedBackend(lambda p: "1 x 4 = 5\n")
    result = cache.generate("List the first 3 multiples of 4.", liar)
    assert not result.verified and result.text == "1 x 4 = 5\n"
    again = cache.generate("List the first 3 multiples of 4.", liar)
    assert again.path is not Path.EXACT
    assert cache.store.count() == 0


def test_lookup_never_generates_but_uses_fallback() -> None:
    cache = make_cache()
    backend = ScriptedBackend(right)
    assert cache.lookup("List the first 3 multiples of 4.") is None
    cache.generate("List the first 3 multiples of 4.", backend)
    hit = cache.lookup("List the first 3 multiples of 4.")
    assert hit is not None and hit.path is Path.EXACT
    patched = cache.lookup("List the first 4 multiples of 4.")
    assert patched is not None and patched.path is Path.PATCH and patched.fallback_used
    assert patched.text == multiples_answer(4, 4)
    with_backend = cache.lookup("List the first 5 multiples of 4.", backend=backend)
    assert with_backend is not None and not with_backend.fallback_used
    assert cache.lookup("List the first 3 multiples of 9.") is None
    assert backend.calls == 2


def test_put_stores_payload_for_exact_hits_and_refuses_wrong_answers() -> None:
    cache = make_cache(fallback=False)
    entry = cache.put("hello there", "general kenobi", payload='{"x": 1}')
    assert entry is not None
    hit = cache.lookup("hello there")
    assert hit is not None and hit.payload == '{"x": 1}' and hit.text == "general kenobi"
    assert cache.put("List the first 2 multiples of 3.", "1 x 3 = 4\n") is None
    assert cache.lookup("List the first 2 multiples of 3.") is None


def test_put_repairs_a_wrong_answer_with_the_fallback() -> None:
    cache = make_cache()
    entry = cache.put("List the first 2 multiples of 3.", "1 x 3 = 4\n")
    assert entry is not None and entry.answer == multiples_answer(2, 3)


def test_namespaces_and_tenants_never_share_answers() -> None:
    cache = make_cache()
    backend = ScriptedBackend(right)
    cache.generate("List the first 3 multiples of 4.", backend, namespace="model-a")
    other_ns = cache.generate("List the first 3 multiples of 4.", backend, namespace="model-b")
    other_tenant = cache.generate(
        "List the first 3 multiples of 4.", backend, namespace="model-a", tenant="acme"
    )
    other_ctx = cache.generate(
        "List the first 3 multiples of 4.", backend, namespace="model-a", context="sys:pirate"
    )
    assert other_ns.path is Path.MISS
    assert other_tenant.path is Path.MISS
    assert other_ctx.path is Path.MISS
    assert backend.calls == 4
    assert cache.clear(tenant="acme") == 1
    assert cache.clear(namespace="model-b") == 1


def test_untyped_prompts_are_exact_only_unless_semantic_reuse_is_opted_in() -> None:
    backend = ScriptedBackend(lambda p: f"answer to {p}")
    strict = make_cache()
    strict.generate("Tell me a joke about cats", backend)
    near = strict.generate("Tell me a joke about cats please", backend)
    assert near.path is Path.MISS and near.text.endswith("please")
    assert "embed" not in near.timings and "search" not in near.timings  # nothing to look for
    assert strict.lookup("Tell me a joke about dogs") is None
    loose = make_cache(semantic_min_similarity=0.8)
    loose.generate("Tell me a joke about cats", backend)
    reused = loose.generate("Tell me a joke about cats please", backend)
    assert reused.path is Path.REUSE and reused.text == "answer to Tell me a joke about cats"
    other = loose.generate("Tell me a joke about cats and dogs, in rhyme", backend)
    assert other.path is Path.SKIP and "search" in other.timings  # near, below 0.8: not reused


@pytest.mark.parametrize("bad", [None, 3, b"bytes", "", "   \n"])
def test_invalid_prompts_raise_a_clear_error(bad: object) -> None:
    cache = make_cache()
    with pytest.raises(InvalidPromptError):
        cache.generate(bad, ScriptedBackend(right))  # type: ignore[arg-type]


def test_overlong_prompt_bypasses_the_cache() -> None:
    cache = make_cache(max_prompt_chars=50)
    backend = ScriptedBackend(lambda p: "ok")
    prompt = "List the first 3 multiples of 4. " + "x" * 100
    assert cache.generate(prompt, backend).path is Path.MISS
    assert cache.generate(prompt, backend).path is Path.MISS
    assert cache.store.count() == 0 and backend.calls == 2


class BrokenStore(InMemoryStore):
    def get(self, key: str):  # type: ignore[no-untyped-def]
        raise ConnectionError("store down")

    def nearest(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        raise ConnectionError("store down")

    def put(self, entry, vector):  # type: ignore[no-untyped-def]
        raise ConnectionError("store down")


def test_store_outage_degrades_to_the_backend(caplog: pytest.LogCaptureFixture) -> None:
    cache = StepCache(BrokenStore(), embedder=HashEmbedder(), tasks=[MultiplesTask()])
    backend = ScriptedBackend(right)
    result = cache.generate("List the first 3 multiples of 4.", backend)
    assert result.text == multiples_answer(3, 4) and backend.calls == 1
    assert "continuing without the cache" in caplog.text
    assert cache.stats()["degraded"] >= 2


def test_async_generate_matches_sync() -> None:
    cache = make_cache()
    backend = ScriptedBackend(right)

    async def run() -> list[Path]:
        a = await cache.agenerate("List the first 3 multiples of 4.", backend)
        b = await cache.agenerate("List the first 5 multiples of 4.", backend)
        c = await cache.agenerate("List the first 5 multiples of 4.", backend)
        d = await cache.alookup("List the first 6 multiples of 4.")
        assert b.text == multiples_answer(5, 4)
        assert d is not None and d.text == multiples_answer(6, 4)
        return [a.path, b.path, c.path]

    assert asyncio.run(run()) == [Path.MISS, Path.PATCH, Path.EXACT]


def test_stats_count_paths_and_tokens() -> None:
    cache = make_cache()
    backend = ScriptedBackend(right)
    cache.generate("List the first 3 multiples of 4.", backend)
    cache.generate("List the first 3 multiples of 4.", backend)
    stats = cache.stats()
    assert stats["paths"]["miss"] == 1 and stats["paths"]["exact"] == 1
    assert stats["backend_calls"] == 1 and stats["prompt_tokens"] > 0 and stats["entries"] == 1


def test_registry_rejects_duplicates_and_non_tasks() -> None:
    reg = TaskRegistry([MultiplesTask()])
    with pytest.raises(ValueError):
        reg.register(MultiplesTask())
    with pytest.raises(ValueError):
        reg.register(object())  # type: ignore[arg-type]
    assert reg.names() == ["multiples"]


class ExplodingTask(MultiplesTask):
    """A task with a bug in its verifier."""

    def verify(self, steps, cached, spec):  # type: ignore[no-untyped-def]
        raise RuntimeError("verifier bug")


def test_a_task_bug_degrades_to_a_plain_backend_answer(caplog: pytest.LogCaptureFixture) -> None:
    cache = StepCache(InMemoryStore(), embedder=HashEmbedder(), tasks=[ExplodingTask()])
    backend = ScriptedBackend(right)
    cache.generate("List the first 3 multiples of 4.", backend)
    result = cache.generate("List the first 5 multiples of 4.", backend)
    assert result.path is Path.MISS and "verifier bug" in result.reason
    assert result.text == multiples_answer(5, 4) and not result.verified
    assert "internal error" in caplog.text
    assert cache.lookup("List the first 6 multiples of 4.") is None


def test_backend_errors_reach_the_caller_unchanged() -> None:
    def boom(prompt: str) -> str:
        raise TimeoutError("model timed out")

    cache = make_cache()
    with pytest.raises(TimeoutError, match="model timed out"):
        cache.generate("List the first 3 multiples of 4.", ScriptedBackend(boom))
    with pytest.raises(TimeoutError):
        asyncio.run(cache.agenerate("List the first 3 multiples of 4.", ScriptedBackend(boom)))


def test_async_store_and_embedding_calls_run_off_the_event_loop() -> None:
    import threading

    seen: list[str] = []

    class ThreadNotingStore(InMemoryStore):
        def get(self, key: str):  # type: ignore[no-untyped-def]
            seen.append(threading.current_thread().name)
            return super().get(key)

    cache = StepCache(ThreadNotingStore(), embedder=HashEmbedder(), tasks=[MultiplesTask()])

    async def run() -> str:
        await cache.agenerate("List the first 3 multiples of 4.", ScriptedBackend(right))
        return threading.current_thread().name

    loop_thread = asyncio.run(run())
    assert seen and all(name != loop_thread for name in seen)


def test_on_step_streams_reused_steps_before_the_backend_is_called() -> None:
    cache = make_cache()
    cache.generate("List the first 3 multiples of 4.", ScriptedBackend(right))
    events: list[tuple[str, str]] = []

    def answer(prompt: str) -> str:
        events.append(("backend", prompt))
        return right(prompt)

    def on_step(step: object) -> None:
        events.append(("step", step.text))  # type: ignore[attr-defined]

    result = cache.generate(
        "List the first 5 multiples of 4.", ScriptedBackend(answer), on_step=on_step
    )
    kinds = [kind for kind, _ in events]
    assert kinds == ["step", "step", "step", "backend", "step", "step"]
    assert "".join(text for kind, text in events if kind == "step") == result.text


def test_on_step_receives_every_step_of_every_path() -> None:
    cache = make_cache()
    backend = ScriptedBackend(right)
    for prompt in [
        "List the first 3 multiples of 4.",  # miss
        "List the first 3 multiples of 4.",  # exact
        "Please write the first 3 multiples of 4",  # reuse
        "List the first 3 multiples of 9.",  # skip
    ]:
        got: list[StepOutcome] = []
        result = cache.generate(prompt, backend, on_step=got.append)
        assert "".join(s.text for s in got) == result.text and got


def test_async_on_step_streams_too() -> None:
    cache = make_cache()
    got: list[str] = []

    async def run() -> str:
        await cache.agenerate("List the first 2 multiples of 5.", ScriptedBackend(right))
        result = await cache.agenerate(
            "List the first 4 multiples of 5.",
            ScriptedBackend(right),
            on_step=lambda s: got.append(s.text),
        )
        return result.text

    text = asyncio.run(run())
    assert "".join(got) == text == multiples_answer(4, 5)


class SlowWrites(InMemoryStore):
    """An in-memory store whose writes take a while, like a remote store under load."""

    def put(self, entry: Any, vector: Any) -> None:
        time.sleep(0.3)
        super().put(entry, vector)


def test_a_shaped_request_right_after_a_miss_is_reused_before_its_write_lands() -> None:
    from stepcache_core import LinearEquationTask

    from model_fakes import fake_model

    cache = StepCache(SlowWrites(), embedder=CountingEmbedder(), tasks=[LinearEquationTask()])
    model = fake_model()
    cache.generate("Solve 3x + 5 = 20 for x.", model)
    served = cache.generate("Solve 3y + 5 = 20 for y.", model)  # the first write is in flight
    assert served.path is Path.REUSE and "embed" not in served.timings
    assert served.cached_prompt == "Solve 3x + 5 = 20 for x." and model.calls == 1
    cache.flush()


def test_a_request_shaped_like_a_cached_one_is_reused_without_an_embedding() -> None:
    from stepcache_core import LinearEquationTask

    from model_fakes import fake_model

    embedder = CountingEmbedder()
    cache = StepCache(InMemoryStore(), embedder=embedder, tasks=[LinearEquationTask()])
    model = fake_model()
    cache.generate("Solve 3x + 5 = 20 for x.", model)
    before = embedder.calls
    for prompt in ("Solve 3y + 5 = 20 for y.", "Find x if 3x + 5 = 20.", "Solve 4x + 1 = 9."):
        # renamed, reworded, other constants: one skeleton, so no embedding and no search
        served = cache.generate(prompt, model)
        assert served.path is Path.REUSE and served.similarity is None, prompt
        assert "embed" not in served.timings and "search" not in served.timings
    cache.flush()  # the reused answers are stored (and embedded) in the background
    assert embedder.calls == before + 3 and cache.store.count() == 4
    other = cache.generate("Solve 2(x + 1) = 10 for x.", model)  # another skeleton: a search
    assert other.path is not Path.EXACT and "search" in other.timings
    cache.clear()
    assert cache.generate("Solve 3z + 5 = 20 for z.", model).path is Path.MISS


def test_the_same_equation_is_tried_before_another_of_its_skeleton() -> None:
    from stepcache_core import LinearEquationTask

    from model_fakes import fake_model

    cache = StepCache(InMemoryStore(), embedder=CountingEmbedder(), tasks=[LinearEquationTask()])
    model = fake_model()
    cache.generate("Solve 3x + 5 = 20 for x.", model)
    cache.flush()
    assert cache.generate("Solve 4x + 1 = 9 for x.", model).path is Path.REUSE  # newer, stored
    cache.flush()
    reworded = cache.generate("Find y if 3y + 5 = 20.", model)
    assert reworded.path is Path.REUSE and reworded.cached_prompt == "Solve 3x + 5 = 20 for x."


def test_a_refused_shape_candidate_does_not_hide_an_older_one() -> None:
    from stepcache_core import LinearEquationTask

    from model_fakes import fake_model

    cache = StepCache(InMemoryStore(), embedder=CountingEmbedder(), tasks=[LinearEquationTask()])
    model = fake_model()
    assert cache.generate("Solve 3x + 5 = 20 for x.", model).path is Path.MISS
    spanish = cache.generate("Solve 3x + 5 = 20 for x in Spanish.", model)
    assert spanish.path is Path.SKIP  # another language: answered afresh, stored, same shape
    cache.flush()
    served = cache.generate("Find y if 3y + 5 = 20.", model)
    assert served.path is Path.REUSE and "embed" not in served.timings
    assert served.cached_prompt == "Solve 3x + 5 = 20 for x."


def test_a_shape_candidate_to_patch_does_not_stop_the_search_for_one_to_reuse() -> None:
    from stepcache_core import JsonObjectTask

    from model_fakes import fake_model

    store = InMemoryStore()  # shared by two caches, as by two processes
    other = StepCache(store, embedder=CountingEmbedder(), tasks=[JsonObjectTask()])
    cache = StepCache(store, embedder=CountingEmbedder(), tasks=[JsonObjectTask()])
    model = fake_model()
    ask = "Return a JSON object for a fictional person with keys: name (string), age (integer)"
    other.generate(ask + ".", model)  # not in `cache`'s own shape index
    cache.generate(f"{ask}, city (string).", model)  # its only shape candidate: one key too many
    other.flush()
    cache.flush()
    served = cache.generate("Please r" + ask[1:] + ".", model)
    assert served.path is Path.REUSE and served.cached_prompt == ask + "."
    assert "search" in served.timings and served.similarity is not None
    added = cache.generate(f"{ask}, job (string).", model)
    assert added.path is Path.PATCH and added.similarity is not None


def test_a_shape_candidate_gone_from_the_store_is_forgotten() -> None:
    from stepcache_core import LinearEquationTask

    from model_fakes import fake_model

    store = InMemoryStore()
    cache = StepCache(store, embedder=CountingEmbedder(), tasks=[LinearEquationTask()])
    model = fake_model()
    cache.generate("Solve 3x + 5 = 20 for x.", model)
    cache.flush()
    store.clear()  # behind the cache's back (another process, eviction, TTL)
    gone = cache.generate("Solve 3y + 5 = 20 for y.", model)
    assert gone.path is Path.MISS and "search" in gone.timings
    cache.flush()
    again = cache.generate("Solve 3z + 5 = 20 for z.", model)
    assert again.path is Path.REUSE and again.cached_prompt == "Solve 3y + 5 = 20 for y."


class LineStreamingBackend(Backend):
    """Writes each answer a line at a time through `complete_streaming`, logging to `events`
    when each line is handed over, so a test sees which steps reached the listener while the
    backend was still writing."""

    name = "lines"

    def __init__(self, answers: Sequence[str], events: list[tuple[str, str]]) -> None:
        self.answers = list(answers)
        self.events = events
        self.prompts: list[str] = []

    def complete(self, prompt: str, max_tokens: int | None = None) -> Completion:
        self.prompts.append(prompt)
        return Completion(self.answers.pop(0))

    def complete_streaming(
        self, prompt: str, max_tokens: int | None, on_text: Callable[[str], None]
    ) -> Completion:
        self.prompts.append(prompt)
        text = self.answers.pop(0)
        for line in text.splitlines(keepends=True):
            self.events.append(("writes", line))
            on_text(line)
        self.events.append(("done", ""))
        return Completion(text)

    async def acomplete_streaming(
        self, prompt: str, max_tokens: int | None, on_text: Callable[[str], None]
    ) -> Completion:
        self.prompts.append(prompt)
        text = self.answers.pop(0)
        for line in text.splitlines(keepends=True):
            await asyncio.sleep(0.01)  # like a model decoding: the loop runs in between
            self.events.append(("writes", line))
            on_text(line)
        await asyncio.sleep(0.01)
        self.events.append(("done", ""))
        return Completion(text)


CACHED_2X = "Expand: 2(x + 3) + 4 = 2x + 10\n2x + 10 = 20\n2x = 10\nx = 5\n"
NEW_2X = "Solve 2(x + 3) + 4 = x + 16 for x."


def linear_cache(**config: object) -> StepCache:
    from stepcache_core import LinearEquationTask

    return make_cache(LinearEquationTask(), **config)


def listen(events: list[tuple[str, str]]) -> Callable[[StepOutcome], None]:
    return lambda step: events.append((step.origin.value, step.text))


def test_patched_steps_stream_while_the_backend_is_still_writing() -> None:
    cache = linear_cache()
    events: list[tuple[str, str]] = []
    backend = LineStreamingBackend([CACHED_2X, "2x + 10 = x + 16\nx = 6\n"], events)
    cache.generate("Solve 2(x + 3) + 4 = 20 for x.", backend)
    events.clear()
    result = cache.generate(NEW_2X, backend, on_step=listen(events))
    assert result.path is Path.PATCH and not result.fallback_used
    assert events == [
        ("reused", "Expand: 2(x + 3) + 4 = 2x + 10\n"),  # before the backend is called
        ("writes", "2x + 10 = x + 16\n"),
        ("writes", "x = 6\n"),
        ("patched", "2x + 10 = x + 16\n"),  # settled (the next line began) and verified
        ("done", ""),
        ("patched", "x = 6\n"),  # the last step: once the answer is whole and checked
    ]
    assert "".join(t for kind, t in events if kind in ("reused", "patched")) == result.text


def test_generated_steps_stream_as_written_but_never_an_unverified_one() -> None:
    cache = linear_cache()
    events: list[tuple[str, str]] = []
    answer = "3x + 5 = 20\n3x = 15\nSo x = 6 (check: 3 * 6 + 5 = 20)\nx = 5\n"
    result = cache.generate(
        "Solve 3x + 5 = 20 for x.", LineStreamingBackend([answer], events), on_step=listen(events)
    )
    kinds = [kind for kind, _ in events]
    # The two true equations go out while the model writes; the false third step stops the
    # stream until the whole answer has been judged (it fails: repaired by the fallback).
    assert kinds[:5] == ["writes", "writes", "generated", "writes", "generated"]
    assert kinds.index("done") < len(kinds) - 1
    streamed = "".join(t for kind, t in events if kind not in ("writes", "done"))
    assert streamed == result.text and "x = 6" not in result.text
    assert result.verified and result.fallback_used


def test_a_failed_patch_attempt_keeps_what_it_streamed() -> None:
    cache = linear_cache()
    events: list[tuple[str, str]] = []
    answers = [CACHED_2X, "2x + 10 = x + 16\nx = 7\n", "x = 6\n"]
    backend = LineStreamingBackend(answers, events)
    cache.generate("Solve 2(x + 3) + 4 = 20 for x.", backend)
    events.clear()
    result = cache.generate(NEW_2X, backend, on_step=listen(events))
    assert result.path is Path.PATCH and result.text.endswith("x = 6\n")
    assert "2x + 10 = x + 16" in backend.prompts[-1].split("verified")[1]  # kept in the repair
    streamed = "".join(t for kind, t in events if kind not in ("writes", "done"))
    assert streamed == result.text


def test_untyped_answers_stream_line_by_line() -> None:
    cache = linear_cache()
    events: list[tuple[str, str]] = []
    answer = "Roses are red,\nviolets are blue.\n"
    result = cache.generate(
        "Write a two-line poem.", LineStreamingBackend([answer], events), on_step=listen(events)
    )
    assert [kind for kind, _ in events] == ["writes", "writes", "generated", "done", "generated"]
    assert result.text == answer


def test_async_streaming_of_patched_steps() -> None:
    cache = linear_cache()
    events: list[tuple[str, str]] = []
    backend = LineStreamingBackend([CACHED_2X, "2x + 10 = x + 16\nx = 6\n"], events)

    async def run() -> str:
        await cache.agenerate("Solve 2(x + 3) + 4 = 20 for x.", backend)
        events.clear()
        got: list[str] = []
        async for item in cache.astream(NEW_2X, backend):
            if isinstance(item, StepOutcome):
                got.append(item.text)
                events.append(("received", item.text))
            else:
                assert "".join(got) == item.text
        return "".join(got)

    text = asyncio.run(run())
    assert text.endswith("x = 6\n")
    assert events.index(("received", "2x + 10 = x + 16\n")) < events.index(("done", ""))


def test_the_stream_iterator_hands_a_patched_step_over_while_the_backend_writes() -> None:
    """Across threads: the consumer holds the first patched step while the model is paused."""
    cache = linear_cache()
    resume = threading.Event()

    class Pausing(LineStreamingBackend):
        def complete_streaming(
            self, prompt: str, max_tokens: int | None, on_text: Callable[[str], None]
        ) -> Completion:
            if "verified" not in prompt:
                return super().complete_streaming(prompt, max_tokens, on_text)
            on_text("2x + 10 = x + 16\nx")
            assert resume.wait(30), "the consumer never received the first patched step"
            on_text(" = 6\n")
            return Completion("2x + 10 = x + 16\nx = 6\n")

    backend = Pausing([CACHED_2X], [])
    cache.generate("Solve 2(x + 3) + 4 = 20 for x.", backend)
    items = cache.stream(NEW_2X, backend)
    assert next(items).origin is StepOrigin.REUSED  # type: ignore[union-attr]
    patched = next(items)
    assert isinstance(patched, StepOutcome) and patched.text == "2x + 10 = x + 16\n"
    resume.set()
    result = list(items)[-1]
    assert isinstance(result, Result) and result.path is Path.PATCH
    assert result.text == CACHED_2X.splitlines(keepends=True)[0] + "2x + 10 = x + 16\nx = 6\n"


def test_a_miss_is_served_before_its_store_write_and_repeats_are_exact() -> None:
    release = threading.Event()

    class SlowStore(InMemoryStore):
        def put(self, entry: Entry, vector: Sequence[float] | None) -> None:
            assert release.wait(30)
            super().put(entry, vector)

    store = SlowStore()
    cache = StepCache(store, embedder=HashEmbedder(), tasks=[MultiplesTask()])
    backend = ScriptedBackend(right)
    first = cache.generate("List the first 3 multiples of 4.", backend)  # the write is blocked
    assert first.path is Path.MISS and store.count() == 0
    again = cache.generate("List the first 3 multiples of 4.", backend)
    assert again.path is Path.EXACT and again.text == first.text and backend.calls == 1
    release.set()
    cache.flush()
    assert store.count() == 1
    assert cache.generate("List the first 3 multiples of 4.", backend).path is Path.EXACT


def test_clear_waits_for_pending_writes() -> None:
    cache = make_cache()
    cache.generate("List the first 3 multiples of 4.", ScriptedBackend(right))
    assert cache.clear() == 1 and cache.store.count() == 0


def test_a_similar_request_right_after_a_miss_waits_for_its_write_and_reuses_it() -> None:
    class SlowStore(InMemoryStore):
        def put(self, entry: Entry, vector: Sequence[float] | None) -> None:
            time.sleep(0.3)
            super().put(entry, vector)

    cache = StepCache(SlowStore(), embedder=HashEmbedder(), tasks=[MultiplesTask()])
    backend = ScriptedBackend(right)
    cache.generate("List the first 3 multiples of 4.", backend)
    result = cache.generate("Please write the first 3 multiples of 4", backend)
    assert result.path is Path.REUSE and backend.calls == 1


def test_result_summary_says_how_the_answer_was_served() -> None:
    import json

    cache = make_cache()
    backend = ScriptedBackend(right)
    cache.generate("List the first 3 multiples of 4.", backend)
    summary = cache.generate("Please write the first 3 multiples of 4", backend).summary()
    assert summary["path"] == "reuse" and summary["task"] == "multiples"
    assert summary["backend_calls"] == 0 and summary["verified"] is True
    assert summary["similarity"] is not None and "verified" in summary["reason"]
    assert json.loads(json.dumps(summary)) == summary

"""Adversarial pairs through the adapters: an app's system prompt, history, template, retrieved
document, call arguments, message fields and question, each edited to change the request's
meaning, are never answered from the cached entry on any LangChain or LlamaIndex path; identical
repeats and lexicon rewordings of the question in the same frame are still reused.

The pairs and paths live in tests/adversarial_adapters.py; one test per path and placement runs
every pair of that placement (hash embedder, in-memory store, a perfect fake model).
"""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest
from langchain_core.caches import InMemoryCache
from langchain_core.globals import set_llm_cache

from stepcache_bench.fake import HashEmbedder
from stepcache_core import InMemoryStore, StepCache

from adversarial import Expect
from adversarial_adapters import (
    NOT_APPLICABLE,
    PATHS,
    PLACEMENTS,
    Brain,
    PerfectLLM,
    _global_cache,
    check,
    hash_cache,
    pairs,
)

PAIRS = pairs()
CELLS = [(path, placement) for path in PATHS for placement in (*PLACEMENTS, "identical")]


def _failures(path: str, placement: str) -> tuple[list[str], Counter[str]]:
    failures, counts = [], Counter[str]()
    for pair in PAIRS:
        if pair.placement != placement:
            continue
        failure = check(pair, path)
        counts[pair.expect.value if failure != NOT_APPLICABLE else "n/a"] += 1
        if failure is not None and failure != NOT_APPLICABLE:
            failures.append(f"[{pair.kind}] {pair.request.question!r}: {failure}")
    return failures, counts


@pytest.mark.parametrize(("path", "placement"), CELLS)
def test_no_meaning_change_is_served_from_the_cache_and_repeats_are_reused(
    path: str, placement: str
) -> None:
    failures, counts = _failures(path, placement)
    assert counts[Expect.MODEL_ANSWERS.value] + counts[Expect.REUSE.value] or counts["n/a"]
    assert not failures, f"{path} / {placement}: {len(failures)} failed\n" + "\n".join(
        failures[:10]
    )


def test_every_placement_is_exercised_on_every_path_that_can_send_it() -> None:
    """No path passes by the grammar never reaching it: each placement has pairs that change what
    the model receives on most paths, and both reuse kinds are present."""
    by_placement = Counter(p.placement for p in PAIRS)
    assert all(by_placement[placement] >= 7 for placement in PLACEMENTS), by_placement
    assert by_placement["identical"] >= 10
    assert sum(p.expect is Expect.REUSE and p.placement == "question" for p in PAIRS) >= 8
    for path in PATHS:
        tested = {
            p.placement
            for p in PAIRS[::5]
            if p.expect is Expect.MODEL_ANSWERS and check(p, path) != NOT_APPLICABLE
        }
        assert {"system", "history", "template", "document", "question"} <= tested, path


def test_a_text_llms_call_arguments_key_the_global_cache_though_langchain_leaves_them_out() -> None:
    """LangChain's own InMemoryCache serves a text LLM's answer to the same prompt called with
    other arguments (they are not in the llm_string); StepCacheLLMCache keys them, sync and
    async, and a repeat with the same arguments is still answered from the cache."""
    prompt = "Solve 3x + 5 = 20 for x."
    with _global_cache(None):
        set_llm_cache(InMemoryCache())
        brain = Brain()
        PerfectLLM(brain=brain).invoke(prompt)
        PerfectLLM(brain=brain).bind(max_tokens=3).invoke(prompt)
        assert len(brain.seen) == 1  # LangChain's limit: served from the cache

    async def calls(model: PerfectLLM, cache: StepCache) -> None:
        await model.ainvoke(prompt)
        await model.bind(max_tokens=3).ainvoke(prompt)
        cache.flush()
        await model.bind(max_tokens=3).ainvoke(prompt)

    for run in ("sync", "async"):
        brain, cache = Brain(), hash_cache()
        with _global_cache(cache):
            model = PerfectLLM(brain=brain)
            if run == "sync":
                model.invoke(prompt)
                model.bind(max_tokens=3).invoke(prompt)
                cache.flush()
                model.bind(max_tokens=3).invoke(prompt)
            else:
                asyncio.run(calls(model, cache))
        assert brain.seen == [prompt, f"{prompt}\n[args {{'max_tokens': 3}}]"], run


def test_the_check_fails_when_a_cache_serves_the_old_answer() -> None:
    """The judge itself: a cache that answers any request with the first answer is caught."""
    pair = next(p for p in PAIRS if p.placement == "history" and p.expect is Expect.MODEL_ANSWERS)
    assert check(pair, "llamaindex chat") is None

    class Forgetful(StepCache):
        def generate(self, prompt, backend, **kwargs):  # type: ignore[no-untyped-def]
            kwargs["context"] = ""
            return super().generate(prompt, backend, **kwargs)

    forgetful = Forgetful(InMemoryStore(), embedder=HashEmbedder())
    failure = check(pair, "llamaindex chat", forgetful)
    assert failure is not None and "served from the cache" in failure, failure

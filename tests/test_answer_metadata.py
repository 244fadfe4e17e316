"""What every answer says about itself: `Result.summary()`, the one ``"stepcache"`` record the
adapters attach (path, reason, task, similarity, verified, tokens spent, tokens and seconds
saved), on misses and skips as well as on answers served from the cache."""

from __future__ import annotations

import logging
import time
from typing import Any, ClassVar

import pytest
from langchain_core.globals import set_llm_cache
from langchain_core.language_models import FakeListChatModel, GenericFakeChatModel
from langchain_core.messages import AIMessage, HumanMessage, UsageMetadata
from langchain_core.outputs import ChatResult

from stepcache_core import InMemoryStore, StepCache, TaskRegistry
from stepcache_langchain import StepCacheChatModel, StepCacheLLMCache

from conftest import HashEmbedder, ScriptedBackend

MATH = "Solve 3x + 5 = 20 for x."
MATH_ANSWER = "3x + 5 = 20\n3x = 15\nx = 5"
OTHER = "Solve 3x + 7 = 22 for x."


def solve(prompt: str) -> str:
    return {MATH: MATH_ANSWER, OTHER: "3x + 7 = 22\n3x = 15\nx = 5"}.get(prompt, "Hello!")


@pytest.fixture
def cache(hash_embedder: HashEmbedder) -> StepCache:
    return StepCache(InMemoryStore(), embedder=hash_embedder, tasks=TaskRegistry.with_builtins())


def test_answers_from_the_cache_report_the_reused_entrys_cost_as_saved(cache: StepCache) -> None:
    backend = ScriptedBackend(solve)
    miss = cache.generate(MATH, backend)
    spent = miss.summary()["tokens_spent"]
    assert miss.path == "miss" and spent == len(MATH.split()) + len(MATH_ANSWER.split())
    assert miss.summary()["tokens_saved"] == 0 and miss.summary()["backend_calls"] == 1
    cache.flush()
    exact = cache.generate(MATH, backend).summary()
    reuse = cache.generate(OTHER, backend).summary()
    assert backend.calls == 1
    for served, path in ((exact, "exact"), (reuse, "reuse")):
        assert served["path"] == path and served["tokens_spent"] == 0
        assert served["tokens_saved"] == spent  # what the model spent on the reused answer
        assert served["seconds_saved"] >= 0.0 and served["verified"] is True
    cache.flush()
    # An answer served from a cached one stores the original's cost: a repeat of it saves it.
    again = cache.generate(OTHER, backend).summary()
    assert again["path"] == "exact" and again["tokens_saved"] == spent


def test_the_summary_names_every_documented_field(cache: StepCache) -> None:
    summary = cache.generate("Say hello.", ScriptedBackend(solve)).summary()
    assert set(summary) == {
        "path", "reason", "task", "similarity", "verified", "fallback_used", "backend_calls",
        "prompt_tokens", "completion_tokens", "tokens_spent", "backend_seconds",
        "tokens_saved", "seconds_saved",
    }  # fmt: skip


def stepcache_info(chat: StepCacheChatModel, text: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(generation_info["stepcache"], response_metadata["stepcache"]) of one call."""
    generation = chat.generate([[HumanMessage(text)]]).generations[0][0]
    info = (generation.generation_info or {})["stepcache"]
    return info, generation.message.response_metadata["stepcache"]  # type: ignore[attr-defined]


def test_chat_model_attaches_the_summary_on_every_call(cache: StepCache) -> None:
    model = FakeListChatModel(responses=[MATH_ANSWER, "Hello!"])
    chat = StepCacheChatModel(model=model, step_cache=cache)
    for text, path in ((MATH, "miss"), ("Say hello.", "miss")):
        info, meta = stepcache_info(chat, text)
        assert info == meta and info["path"] == path and info["reason"]
    cache.flush()
    info, meta = stepcache_info(chat, OTHER)
    assert info == meta and info["path"] == "reuse" and model.i == 0  # both responses used


def test_global_cache_misses_are_counted(cache: StepCache) -> None:
    llm_cache = StepCacheLLMCache(cache)
    assert llm_cache.lookup(MATH, "model-a") is None
    assert llm_cache.lookup("Say hello.", "model-a") is None
    stats = cache.stats()
    assert stats["paths"]["miss"] == 2 and stats["requests"] == 2
    assert stats["store"]["paths"]["miss"] == 2


def test_global_cache_counts_exact_only_requests(cache: StepCache) -> None:
    """Tools bound: the global cache serves the very same request only, and counts it (a miss,
    then an exact hit that saved what the model spent), in this process and in the store."""
    tools = [{"type": "function", "function": {"name": "search", "parameters": {}}}]
    usage = UsageMetadata(input_tokens=7, output_tokens=5, total_tokens=12)
    call = {"name": "search", "args": {"q": "weather in Paris"}, "id": "c1"}
    reply = AIMessage("", tool_calls=[call], usage_metadata=usage)
    model = GenericFakeChatModel(messages=iter([reply]))
    set_llm_cache(StepCacheLLMCache(cache))
    try:
        first = model.invoke("What is the weather in Paris?", tools=tools)
        cache.flush()
        again = model.invoke("What is the weather in Paris?", tools=tools)  # model spent: a hit
    finally:
        set_llm_cache(None)
    assert again.tool_calls == first.tool_calls
    stats = cache.stats()
    assert stats["requests"] == 2 and stats["paths"]["miss"] == 1 and stats["paths"]["exact"] == 1
    assert stats["tokens_saved"] == 12
    store = stats["store"]
    assert store["requests"] == 2 and store["paths"]["exact"] == 1 and store["tokens_saved"] == 12


def test_chat_model_counts_exact_only_requests(cache: StepCache) -> None:
    tools = [{"type": "function", "function": {"name": "search", "parameters": {}}}]
    call = {"name": "search", "args": {"q": "weather in Paris"}, "id": "c1"}
    model = StepCacheChatModel(
        model=GenericFakeChatModel(messages=iter([AIMessage("", tool_calls=[call])])),
        step_cache=cache,
    )
    model.invoke("What is the weather in Paris?", tools=tools)
    cache.flush()
    model.invoke("What is the weather in Paris?", tools=tools)
    stats = cache.stats()
    assert stats["paths"]["miss"] == 1 and stats["paths"]["exact"] == 1
    assert stats["backend_calls"] == 1 and stats["store"]["paths"]["exact"] == 1


def test_one_debug_line_per_request_with_path_reason_task_and_timings(
    cache: StepCache, caplog: pytest.LogCaptureFixture
) -> None:
    backend = ScriptedBackend(solve)
    with caplog.at_level(logging.DEBUG, logger="stepcache"):
        cache.generate(MATH, backend)
        cache.flush()
        cache.generate(MATH, backend)
    lines = [r.getMessage() for r in caplog.records if "stepcache: request" in r.getMessage()]
    assert len(lines) == 2, lines
    assert "path=miss" in lines[0] and "task=linear_equation" in lines[0]
    assert "path=exact" in lines[1] and "reason='same prompt cached'" in lines[1]
    for line in lines:
        assert "total=" in line and "backend=" in line and "lookup=" in line


def test_global_cache_stores_the_models_cost_and_reports_it_saved(cache: StepCache) -> None:
    usage = UsageMetadata(input_tokens=7, output_tokens=5, total_tokens=12)
    reply = AIMessage(MATH_ANSWER, usage_metadata=usage)
    slow = SlowChat(messages=iter([reply]))
    set_llm_cache(StepCacheLLMCache(cache))
    try:
        slow.invoke(MATH)  # a miss: LangChain calls the model, then stores its answer
        cache.flush()
        again = slow.invoke(MATH)
    finally:
        set_llm_cache(None)
    # The exact hit itself comes back as stored (LangChain's cache contract); what it saved is
    # in the cache's stats.
    assert again.content == MATH_ANSWER and "stepcache" not in again.response_metadata
    stats = cache.stats()
    assert stats["paths"]["exact"] == 1 and stats["tokens_saved"] == 12
    assert stats["seconds_saved"] >= SlowChat.delay  # timed from the lookup that missed


class SlowChat(GenericFakeChatModel):
    """A chat model that takes `delay` seconds to answer."""

    delay: ClassVar[float] = 0.05

    def _generate(self, *args: Any, **kwargs: Any) -> ChatResult:
        time.sleep(self.delay)
        return super()._generate(*args, **kwargs)

"""StepCacheLLMCache with LangChain's fake models: exact hits, step reuse, patching, failures."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from langchain_core.globals import set_llm_cache
from langchain_core.language_models import (
    FakeListChatModel,
    FakeListLLM,
    FakeStreamingListLLM,
    GenericFakeChatModel,
)
from langchain_core.load import dumps
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.outputs import ChatGeneration, Generation
from langchain_core.prompts import ChatPromptTemplate

import stepcache_langchain
from stepcache_core import (
    ChromaStore,
    Embedder,
    Entry,
    InMemoryStore,
    Neighbour,
    StepCache,
    StepStore,
    TaskRegistry,
)
from stepcache_core.tasks.json import JsonObjectTask
from stepcache_core.tasks.linear import LinearEquationTask
from stepcache_langchain import LangChainBackend, StepCacheLLMCache
from stepcache_langchain._prompt import query_from_prompt

MATH = "Solve 3x + 5 = 20 for x."
MATH_ANSWER = "3x + 5 = 20\n3x = 15\nx = 5"
JSON = "Return a JSON object with keys name and age for a person."
JSON_ANSWER = '{"name": "Alice", "age": 30}'


def solves(prompt: str, text: str) -> bool:
    """The linear-equation task's own checker: `text` ends with the right solution."""
    task = LinearEquationTask()
    spec = task.detect(prompt)
    assert spec is not None
    return task.integrity(text, spec).ok


def stepcache_of(message: Any) -> dict[str, Any]:
    meta: dict[str, Any] = message.response_metadata.get("stepcache", {})
    return meta


@pytest.fixture
def step_cache(tmp_path: Path, hash_embedder: Embedder) -> StepCache:
    store = ChromaStore(tmp_path / "chroma", embedder_name=hash_embedder.name)
    return StepCache(store, embedder=hash_embedder, tasks=TaskRegistry.with_builtins())


@pytest.fixture
def llm_cache(step_cache: StepCache) -> Iterator[StepCacheLLMCache]:
    """StepCache as LangChain's global cache; the global is reset afterwards."""
    cache = StepCacheLLMCache(step_cache)
    set_llm_cache(cache)
    yield cache
    set_llm_cache(None)


def test_exports() -> None:
    assert stepcache_langchain.__all__ == sorted(stepcache_langchain.__all__)
    for name in stepcache_langchain.__all__:
        assert getattr(stepcache_langchain, name) is not None


def test_a_cache_without_an_engine_is_refused_at_once() -> None:
    with pytest.raises(TypeError, match="step_cache must be a StepCache"):
        StepCacheLLMCache(None)  # type: ignore[arg-type]


# --------------------------------------------------------------------- LLMs


def test_llm_math_reuse_and_constant_change(llm_cache: StepCacheLLMCache) -> None:
    right = "3x - 5 = 20\n3x = 25\nx = 25/3"
    llm = FakeListLLM(responses=[MATH_ANSWER, right, "unused"])
    assert llm.invoke(MATH) == MATH_ANSWER
    assert llm.i == 1
    # Same equation shape, other constants, same solution: every cached step verifies.
    other = "Solve 3x + 7 = 22 for x."
    generation = llm.generate([other]).generations[0][0]
    assert llm.i == 1  # answered by the cache, the model was not called
    assert solves(other, generation.text)
    assert generation.generation_info is not None
    served = generation.generation_info["stepcache"]  # Result.summary()
    assert served["path"] in ("reuse", "patch") and served["backend_calls"] == 0
    assert served["task"] == "linear_equation" and served["verified"] is True
    # Another solution: never the cached x = 5.
    changed = "Solve 3x - 5 = 20 for x."
    text = llm.invoke(changed)
    assert solves(changed, text)
    assert not text.rstrip().endswith("x = 5")
    # An exact repeat returns the generation LangChain stored, unchanged.
    assert llm.invoke(MATH) == MATH_ANSWER
    assert llm.i in (1, 2)


def test_llm_exact_repeat_keeps_generation_info(llm_cache: StepCacheLLMCache) -> None:
    generations = [Generation(text="hello", generation_info={"finish_reason": "stop", "n": [1]})]
    llm_cache.update("Say hello.", "model-a", generations)
    # Returned exactly as stored (LangChain's cache contract): no metadata added to an exact hit.
    assert llm_cache.lookup("Say hello.", "model-a") == generations
    # Exact means identical: another spacing of a prompt no task reads is another request.
    assert llm_cache.lookup("Say  hello.", "model-a") is None


def test_llm_string_is_the_namespace(llm_cache: StepCacheLLMCache) -> None:
    llm_cache.update(MATH, "model-a temperature=0", [Generation(text=MATH_ANSWER)])
    assert llm_cache.lookup(MATH, "model-a temperature=0") is not None
    assert llm_cache.lookup(MATH, "model-a temperature=0.7") is None
    assert llm_cache.lookup("Solve 3x + 7 = 22 for x.", "model-b temperature=0") is None
    first = FakeListLLM(responses=["3x = 15\nx = 5"])
    second = FakeListLLM(responses=["2x = 10\nx = 5"])  # other params: other llm_string
    assert first.invoke(MATH) != second.invoke(MATH)


def test_tenants_are_apart(step_cache: StepCache) -> None:
    alice = StepCacheLLMCache(step_cache, tenant="alice")
    bob = StepCacheLLMCache(step_cache, tenant="bob")
    alice.update(MATH, "m", [Generation(text=MATH_ANSWER)])
    assert alice.lookup(MATH, "m") is not None
    assert bob.lookup(MATH, "m") is None
    bob.update(MATH, "m", [Generation(text=MATH_ANSWER)])
    alice.clear()
    assert alice.lookup(MATH, "m") is None
    assert bob.lookup(MATH, "m") is not None


def test_clear_one_model(llm_cache: StepCacheLLMCache) -> None:
    llm_cache.update("Say hi.", "a", [Generation(text="hi")])
    llm_cache.update("Say hi.", "b", [Generation(text="hi")])
    llm_cache.clear(llm_string="a")
    assert llm_cache.lookup("Say hi.", "a") is None
    assert llm_cache.lookup("Say hi.", "b") is not None


# --------------------------------------------------------------------- chat models


def test_chat_round_trip_with_tool_calls(llm_cache: StepCacheLLMCache) -> None:
    reply = AIMessage(
        content="Let me look that up.",
        tool_calls=[{"name": "search", "args": {"q": "weather in Paris"}, "id": "call_1"}],
        usage_metadata={"input_tokens": 7, "output_tokens": 5, "total_tokens": 12},
    )
    model = GenericFakeChatModel(messages=iter([reply]))
    first = model.invoke("What is the weather in Paris?")
    second = model.invoke("What is the weather in Paris?")  # the iterator is spent: a cache hit
    assert second.content == first.content
    assert second.tool_calls == first.tool_calls == reply.tool_calls
    assert second.id == first.id


def test_chat_generations_round_trip_exactly(llm_cache: StepCacheLLMCache) -> None:
    prompt = dumps([SystemMessage("Be brief."), HumanMessage("Say hello.")])
    message = AIMessage(
        content="Hello!",
        tool_calls=[{"name": "wave", "args": {"hand": "left"}, "id": "t1"}],
        response_metadata={"model_name": "fake", "finish_reason": "stop"},
        id="lc_run--123-0",
    )
    generations = [ChatGeneration(message=message, generation_info={"finish_reason": "stop"})]
    llm_cache.update(prompt, "chat-model", generations)
    assert llm_cache.lookup(prompt, "chat-model") == generations


def test_chat_json_reuse_without_the_model(llm_cache: StepCacheLLMCache) -> None:
    model = FakeListChatModel(responses=[JSON_ANSWER, "unused"])
    assert model.invoke(JSON).content == JSON_ANSWER
    reworded = model.invoke("Give me a JSON object with keys name and age describing a person.")
    assert model.i == 1  # served by the cache
    assert reworded.content == JSON_ANSWER
    assert stepcache_of(reworded)["path"] == "reuse"
    assert stepcache_of(reworded)["task"] == "json_object"


def test_chat_patch_with_patch_model(step_cache: StepCache) -> None:
    patcher = FakeListChatModel(responses=['{"city": "Paris"}'])
    cache = StepCacheLLMCache(step_cache, patch_model=patcher)
    model = FakeListChatModel(responses=[JSON_ANSWER, "unused"], cache=cache)
    model.invoke(JSON)
    added = model.invoke("Return a JSON object with keys name, age and city for a person.")
    assert model.i == 1  # the asking model was not called
    assert stepcache_of(added)["path"] == "patch"
    # The patch model (called through a cache-free copy) filled in the missing key.
    assert '"city": "Paris"' in str(added.content) and '"Alice"' in str(added.content)
    spec = JsonObjectTask().detect("Return a JSON object with keys name, age and city.")
    assert spec is not None and JsonObjectTask().integrity(str(added.content), spec).ok


async def test_async_chat_patch_and_exact(step_cache: StepCache) -> None:
    patcher = FakeListChatModel(responses=['{"city": "Paris"}'])
    cache = StepCacheLLMCache(step_cache, patch_model=patcher)
    model = FakeListChatModel(responses=[JSON_ANSWER, "unused"], cache=cache)
    first = await model.ainvoke(JSON)
    again = await model.ainvoke(JSON)
    added = await model.ainvoke("Return a JSON object with keys name, age and city for a person.")
    assert model.i == 1
    assert again.content == first.content
    assert '"city": "Paris"' in str(added.content)
    assert stepcache_of(added)["path"] == "patch"


async def test_async_llm_math(llm_cache: StepCacheLLMCache) -> None:
    llm = FakeListLLM(responses=[MATH_ANSWER, "unused"])
    assert await llm.ainvoke(MATH) == MATH_ANSWER
    other = "Solve 3x + 7 = 22 for x."
    text = await llm.ainvoke(other)
    assert llm.i == 1
    assert solves(other, text)


def test_system_prompt_and_history_are_an_exact_context(llm_cache: StepCacheLLMCache) -> None:
    model = FakeListChatModel(responses=[JSON_ANSWER, '{"name": "Bo", "age": 4}', "unused"])
    model.invoke([SystemMessage("Answer in JSON."), HumanMessage(JSON)])
    other = model.invoke([SystemMessage("You are a pirate."), HumanMessage(JSON)])
    assert model.i == 2  # another system prompt: not reused
    assert "stepcache" not in other.response_metadata
    model.invoke([SystemMessage("Answer in JSON."), HumanMessage(JSON)])
    assert model.i == 2  # same conversation: exact hit


def test_chat_prompt_is_parsed() -> None:
    prompt = dumps([SystemMessage("sys"), HumanMessage("first"), AIMessage("a"), HumanMessage("q")])
    query = query_from_prompt(prompt)
    assert query is not None and query.text == "q" and query.index == 3
    other = query_from_prompt(dumps([SystemMessage("other"), HumanMessage("q")]))
    assert other is not None and other.text == "q" and other.context != query.context
    tool_turn = query_from_prompt(dumps([HumanMessage("q"), AIMessage("calling a tool")]))
    assert tool_turn is not None and tool_turn.text == "q"
    plain = query_from_prompt(dumps([HumanMessage("q")]))
    assert plain is not None and tool_turn.context != plain.context
    assert query_from_prompt("Solve 2x = 4.") == type(query)("Solve 2x = 4.")


def test_lcel_chain_with_global_cache(llm_cache: StepCacheLLMCache) -> None:
    prompt = ChatPromptTemplate.from_messages(
        [("system", "You are a careful math tutor."), ("human", "Solve {equation} for x.")]
    )
    model = FakeListChatModel(responses=[MATH_ANSWER, "unused"])
    chain = prompt | model | StrOutputParser()
    assert chain.invoke({"equation": "3x + 5 = 20"}) == MATH_ANSWER
    assert chain.invoke({"equation": "3x + 5 = 20"}) == MATH_ANSWER
    text = chain.invoke({"equation": "3x + 7 = 22"})
    assert model.i == 1
    assert solves("Solve 3x + 7 = 22 for x.", text)


# --------------------------------------------------------------------- failures


class BrokenStore(StepStore):
    """A store whose every method raises, like an unreachable Chroma server."""

    def get(self, key: str) -> Entry | None:
        raise ConnectionError("store unreachable")

    def nearest(
        self,
        vector: Sequence[float],
        namespace: str,
        tenant: str,
        context: str,
        task: str | None,
        k: int = 4,
    ) -> list[Neighbour]:
        raise ConnectionError("store unreachable")

    def put(self, entry: Entry, vector: Sequence[float] | None) -> None:
        raise ConnectionError("store unreachable")

    def clear(self, namespace: str | None = None, tenant: str | None = None) -> int:
        raise ConnectionError("store unreachable")

    def count(self, namespace: str | None = None) -> int:
        raise ConnectionError("store unreachable")


class CorruptPayloadStore(InMemoryStore):
    def get(self, key: str) -> Entry | None:
        entry = super().get(key)
        return dataclasses.replace(entry, payload="{not json") if entry else None


class RaisingEmbedder(Embedder):
    def embed_batch(self, texts: Sequence[str]) -> list[list[float]]:
        raise RuntimeError("embedder down")


async def test_unreachable_store_is_a_miss(
    hash_embedder: Embedder, caplog: pytest.LogCaptureFixture
) -> None:
    cache = StepCacheLLMCache(StepCache(BrokenStore(), embedder=hash_embedder))
    llm = FakeListLLM(responses=["3x = 15\nx = 5", "3x = 15\nx = 5", "fine"], cache=cache)
    with caplog.at_level(logging.WARNING):
        assert llm.invoke(MATH) == "3x = 15\nx = 5"
        assert llm.invoke(MATH) == "3x = 15\nx = 5"
        assert await llm.ainvoke(MATH) == "fine"
    assert llm.i == 0  # three calls, all answered by the model (the fake cycled)
    assert "store unreachable" in caplog.text


def test_failing_embedder_is_a_miss(tmp_path: Path) -> None:
    cache = StepCacheLLMCache(StepCache(InMemoryStore(), embedder=RaisingEmbedder()))
    model = FakeListChatModel(responses=[JSON_ANSWER, JSON_ANSWER], cache=cache)
    assert model.invoke(JSON).content == JSON_ANSWER
    assert model.invoke("Give me a JSON object with keys name and age.").content == JSON_ANSWER


def test_corrupt_payload_is_a_miss(
    hash_embedder: Embedder, caplog: pytest.LogCaptureFixture
) -> None:
    cache = StepCacheLLMCache(StepCache(CorruptPayloadStore(), embedder=hash_embedder))
    cache.update("Say hi.", "m", [Generation(text="hi")])
    with caplog.at_level(logging.WARNING):
        assert cache.lookup("Say hi.", "m") is None
    assert "lookup failed" in caplog.text


def test_corrupt_chroma_row_is_a_miss(step_cache: StepCache) -> None:
    cache = StepCacheLLMCache(step_cache)
    cache.update("Say hi.", "m", [Generation(text="hi")])
    collection = step_cache.store._collection  # type: ignore[attr-defined]
    rows = collection.get(include=["embeddings"])
    collection.update(
        ids=rows["ids"], embeddings=rows["embeddings"], documents=["{corrupt"] * len(rows["ids"])
    )
    assert cache.lookup("Say hi.", "m") is None
    cache.update("Say hi.", "m", [Generation(text="hi again")])  # overwrites the bad row
    assert cache.lookup("Say hi.", "m") == [Generation(text="hi again")]


def test_malformed_chat_prompt_is_a_miss(
    llm_cache: StepCacheLLMCache, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        assert llm_cache.lookup('[{"lc": 1, "type": "constructor", broken', "m") is None
        llm_cache.update('[{"lc": 1, "type": "constructor", broken', "m", [Generation(text="x")])
        assert llm_cache.lookup('[{"lc": 1, "type": "secret", "id": ["X"]}]', "m") is None
    assert "unreadable chat prompt" in caplog.text
    assert llm_cache.lookup("", "m") is None
    llm_cache.update("   ", "m", [Generation(text="x")])


def test_patch_model_is_called_without_cache(llm_cache: StepCacheLLMCache) -> None:
    model = FakeListChatModel(responses=["x"])
    backend = LangChainBackend(model)
    assert backend.model.cache is False and model.cache is None
    assert backend.complete("hi").text == "x"
    assert llm_cache.lookup(dumps([HumanMessage("hi")]), model._get_llm_string()) is None


async def test_backend_wraps_llms_and_chat_models() -> None:
    llm = LangChainBackend(FakeListLLM(responses=["a", "b"]))
    assert llm.complete("x").text == "a"
    assert (await llm.acomplete("x", max_tokens=5)).text == "b"
    reply = AIMessage(
        "hi", usage_metadata={"input_tokens": 4, "output_tokens": 1, "total_tokens": 5}
    )
    chat = LangChainBackend(
        GenericFakeChatModel(messages=iter([reply, reply])),
        [SystemMessage("Be kind."), HumanMessage("hello")],
        1,
    )
    completion = chat.complete("hello")
    assert (completion.text, completion.prompt_tokens, completion.completion_tokens) == ("hi", 4, 1)
    assert chat.last is not None and chat.last.content == "hi"
    assert (await chat.acomplete("patch this")).text == "hi"


async def test_backend_streams_llms() -> None:
    streaming = LangChainBackend(FakeStreamingListLLM(responses=[MATH_ANSWER, MATH_ANSWER]))
    pieces: list[str] = []
    completion = streaming.complete_streaming(MATH, None, pieces.append)
    assert len(pieces) == len(MATH_ANSWER) and "".join(pieces) == completion.text == MATH_ANSWER
    assert (completion.prompt_tokens, completion.completion_tokens) == (0, 0)  # no usage given
    apieces: list[str] = []
    completion = await streaming.acomplete_streaming(MATH, 32, apieces.append)
    assert apieces == pieces and completion.text == MATH_ANSWER
    whole = LangChainBackend(FakeListLLM(responses=[MATH_ANSWER, ""]))  # no streaming: one piece
    assert whole.complete_streaming(MATH, None, pieces.append).text == MATH_ANSWER
    assert pieces[-1] == MATH_ANSWER
    assert (await whole.acomplete_streaming(MATH, None, pieces.append)).text == ""
    assert pieces[-1] == MATH_ANSWER and whole.last is None  # an empty answer: no piece

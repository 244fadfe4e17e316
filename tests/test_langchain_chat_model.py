"""StepCacheChatModel: the full engine around a chat model; invoke and stream, sync and async."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.language_models import FakeListChatModel, GenericFakeChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate

from stepcache_core import ChromaStore, Embedder, StepCache, TaskRegistry
from stepcache_core.tasks.linear import LinearEquationTask
from stepcache_langchain import StepCacheChatModel

MATH = "Solve 3x + 5 = 20 for x."
MATH_ANSWER = "3x + 5 = 20\n3x = 15\nx = 5"
OTHER = "Solve 3x + 7 = 22 for x."


def solves(prompt: str, text: str) -> bool:
    task = LinearEquationTask()
    spec = task.detect(prompt)
    assert spec is not None
    return task.integrity(text, spec).ok


class Recorder(BaseCallbackHandler):
    """Records the messages every chat model run starts with."""

    def __init__(self) -> None:
        self.runs: list[list[BaseMessage]] = []

    def on_chat_model_start(
        self,
        serialized: dict[str, Any],
        messages: list[list[BaseMessage]],
        *,
        run_id: UUID,
        **kwargs: Any,
    ) -> None:
        self.runs.append(messages[0])


@pytest.fixture
def step_cache(tmp_path: Path, hash_embedder: Embedder) -> StepCache:
    store = ChromaStore(tmp_path / "chroma", embedder_name=hash_embedder.name)
    return StepCache(store, embedder=hash_embedder, tasks=TaskRegistry.with_builtins())


def test_invoke_reuses_steps(step_cache: StepCache) -> None:
    inner = FakeListChatModel(responses=[MATH_ANSWER, "unused"])
    chat = StepCacheChatModel(model=inner, step_cache=step_cache)
    first = chat.invoke(MATH)
    assert first.content == MATH_ANSWER
    assert first.response_metadata["stepcache"]["path"] == "miss"
    second = chat.invoke(OTHER)
    assert solves(OTHER, str(second.content))
    assert second.response_metadata["stepcache"]["path"] == "reuse"
    assert second.usage_metadata == {"input_tokens": 0, "output_tokens": 0, "total_tokens": 0}
    assert step_cache.stats()["backend_calls"] == 1


def test_stream_one_chunk_per_step(step_cache: StepCache) -> None:
    chat = StepCacheChatModel(
        model=FakeListChatModel(responses=[MATH_ANSWER]), step_cache=step_cache
    )
    chat.invoke(MATH)
    chunks = list(chat.stream(OTHER))
    texts = [str(c.content) for c in chunks if c.content]
    assert len(texts) == 3  # three cached steps, reused
    assert solves(OTHER, "".join(texts))
    assert any(c.response_metadata.get("stepcache", {}).get("path") == "reuse" for c in chunks)


async def test_astream_and_ainvoke(step_cache: StepCache) -> None:
    chat = StepCacheChatModel(
        model=FakeListChatModel(responses=[MATH_ANSWER]), step_cache=step_cache
    )
    first = [c async for c in chat.astream(MATH)]  # a miss: the model's answer, then its steps
    assert "".join(str(c.content) for c in first) == MATH_ANSWER
    again = await chat.ainvoke(MATH)
    assert again.content == MATH_ANSWER
    assert again.response_metadata["stepcache"]["path"] == "exact"
    other = await chat.ainvoke(OTHER)
    assert solves(OTHER, str(other.content))


def test_model_message_kept_on_a_miss(step_cache: StepCache) -> None:
    reply = AIMessage(
        content="Paris.",
        tool_calls=[{"name": "lookup", "args": {"city": "Paris"}, "id": "c1"}],
        usage_metadata={"input_tokens": 3, "output_tokens": 2, "total_tokens": 5},
        response_metadata={"model_name": "fake"},
    )
    chat = StepCacheChatModel(
        model=GenericFakeChatModel(messages=iter([reply])), step_cache=step_cache
    )
    got = chat.invoke("What is the capital of France?")
    assert got.tool_calls == reply.tool_calls
    assert got.usage_metadata == reply.usage_metadata
    assert got.response_metadata["stepcache"]["path"] == "miss"


def test_conversation_reaches_the_model_and_callbacks_nest(step_cache: StepCache) -> None:
    recorder = Recorder()
    inner = FakeListChatModel(responses=[MATH_ANSWER])
    chat = StepCacheChatModel(model=inner, step_cache=step_cache)
    messages = [SystemMessage("You are a math tutor."), HumanMessage(MATH)]
    chat.invoke(messages, config={"callbacks": [recorder]})
    assert len(recorder.runs) == 2  # the wrapper's run, then the wrapped model's child run
    assert [m.content for m in recorder.runs[1]] == ["You are a math tutor.", MATH]


def test_namespaces_follow_the_wrapped_model(step_cache: StepCache) -> None:
    a = StepCacheChatModel(model=FakeListChatModel(responses=[MATH_ANSWER]), step_cache=step_cache)
    b = StepCacheChatModel(
        model=FakeListChatModel(responses=["3x = 15\nx = 5"]), step_cache=step_cache
    )
    assert a._llm_type == "stepcache-fake-list-chat-model"
    assert a._get_llm_string() != b._get_llm_string()
    assert a.invoke(MATH).content == MATH_ANSWER
    assert b.invoke(MATH).content == "3x = 15\nx = 5"  # not a's cached answer


def test_lcel_chain(step_cache: StepCache) -> None:
    prompt = ChatPromptTemplate.from_messages([("human", "Solve {equation} for x.")])
    chat = StepCacheChatModel(
        model=FakeListChatModel(responses=[MATH_ANSWER]), step_cache=step_cache
    )
    chain = prompt | chat | StrOutputParser()
    assert chain.invoke({"equation": "3x + 5 = 20"}) == MATH_ANSWER
    assert solves(OTHER, chain.invoke({"equation": "3x + 7 = 22"}))


def test_uncacheable_request_goes_to_the_model(step_cache: StepCache) -> None:
    chat = StepCacheChatModel(model=FakeListChatModel(responses=["ok"]), step_cache=step_cache)
    assert (
        chat.invoke([HumanMessage(content=[{"type": "image", "url": "http://x/y.png"}])]).content
        == "ok"
    )


def test_stream_gives_reused_steps_before_the_model_patches(step_cache: StepCache) -> None:
    import threading

    release = threading.Event()

    class GatedChat(FakeListChatModel):
        """Blocks a patch call (its prompt shows verified steps) until the test releases it."""

        def _call(self, messages: Any, *args: Any, **kwargs: Any) -> str:
            if "verified" in str(messages):
                assert release.wait(30)
            return super()._call(messages, *args, **kwargs)

    cached = "Expand: 2(x + 3) + 4 = 2x + 10\n2x + 10 = 20\n2x = 10\nx = 5\n"
    model = GatedChat(responses=[cached, "2x + 10 = x + 16\nx = 6"])
    chat = StepCacheChatModel(model=model, step_cache=step_cache)
    chat.invoke("Solve 2(x + 3) + 4 = 20 for x.")
    new_q = "Solve 2(x + 3) + 4 = x + 16 for x."
    stream = chat.stream(new_q)
    head = next(stream)  # arrives while the model's patch call is still blocked
    assert str(head.content) == "Expand: 2(x + 3) + 4 = 2x + 10\n" and not release.is_set()
    release.set()
    rest = list(stream)
    paths = [
        c.response_metadata["stepcache"]["path"] for c in rest if "stepcache" in c.response_metadata
    ]
    assert paths == ["patch"]
    assert solves(new_q, str(head.content) + "".join(str(c.content) for c in rest))

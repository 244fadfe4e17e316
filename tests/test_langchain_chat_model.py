"""StepCacheChatModel: the full engine around a chat model; invoke and stream, sync and async."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.language_models import (
    FakeListChatModel,
    FakeMessagesListChatModel,
    GenericFakeChatModel,
)
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    ToolCallChunk,
    UsageMetadata,
)
from langchain_core.output_parsers import StrOutputParser
from langchain_core.outputs import ChatGenerationChunk
from langchain_core.prompts import ChatPromptTemplate

from stepcache_core import ChromaStore, Embedder, StepCache, TaskRegistry
from stepcache_core.tasks.linear import LinearEquationTask
from stepcache_langchain import LangChainBackend, StepCacheChatModel

MATH = "Solve 3x + 5 = 20 for x."
MATH_ANSWER = "3x + 5 = 20\n3x = 15\nx = 5"
OTHER = "Solve 3x + 7 = 22 for x."
USAGE = UsageMetadata(input_tokens=7, output_tokens=5, total_tokens=12)


def solves(prompt: str, text: str) -> bool:
    task = LinearEquationTask()
    spec = task.detect(prompt)
    assert spec is not None
    return task.integrity(text, spec).ok


class Recorder(BaseCallbackHandler):
    """Records the messages every chat model run starts with, and each run's (id, parent id)."""

    def __init__(self) -> None:
        self.runs: list[list[BaseMessage]] = []
        self.ids: list[tuple[UUID, UUID | None]] = []

    def on_chat_model_start(
        self,
        serialized: dict[str, Any],
        messages: list[list[BaseMessage]],
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        **kwargs: Any,
    ) -> None:
        self.runs.append(messages[0])
        self.ids.append((run_id, parent_run_id))

    def nested(self) -> bool:
        """Two runs: the wrapper's, then the wrapped model's as its child."""
        return len(self.ids) == 2 and self.ids[1][1] == self.ids[0][0]


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
    assert second.response_metadata["stepcache"]["backend_calls"] == 0  # Result.summary()
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
    assert recorder.nested()  # the wrapper's run, then the wrapped model's child run
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


# --------------------------------------------------------------------- streaming backend


class MeteredChat(GenericFakeChatModel):
    """Streams word by word (GenericFakeChatModel), then, as provider models do, a last chunk
    with no text that carries the usage, a tool call and the finish reason."""

    def _stream(self, *args: Any, **kwargs: Any) -> Iterator[ChatGenerationChunk]:
        yield from super()._stream(*args, **kwargs)
        call = ToolCallChunk(name="check", args='{"x": 5}', id="c1", index=0)
        last = AIMessageChunk(
            content="",
            tool_call_chunks=[call],
            usage_metadata=USAGE,
            response_metadata={"finish_reason": "stop"},
        )
        yield ChatGenerationChunk(message=last)


def check_streamed(backend: LangChainBackend, completion: Any, pieces: list[str]) -> None:
    assert len(pieces) > 1 and "" not in pieces
    assert "".join(pieces) == completion.text == MATH_ANSWER
    assert (completion.prompt_tokens, completion.completion_tokens) == (7, 5)
    assert completion.finish_reason == "stop"
    last = backend.last  # the whole message, chunks added up
    assert type(last) is AIMessage and last.text == MATH_ANSWER
    assert last.usage_metadata == USAGE
    assert last.tool_calls == [{"name": "check", "args": {"x": 5}, "id": "c1", "type": "tool_call"}]


def test_backend_streams_a_chat_model_piece_by_piece() -> None:
    backend = LangChainBackend(MeteredChat(messages=iter([MATH_ANSWER])))
    pieces: list[str] = []
    completion = backend.complete_streaming(MATH, None, pieces.append)
    check_streamed(backend, completion, pieces)


async def test_backend_astreams_a_chat_model_on_the_loop() -> None:
    backend = LangChainBackend(MeteredChat(messages=iter([MATH_ANSWER])))
    pieces: list[str] = []
    loop = asyncio.get_running_loop()

    def on_text(piece: str) -> None:
        assert asyncio.get_running_loop() is loop  # called on the running loop
        pieces.append(piece)

    completion = await backend.acomplete_streaming(MATH, 64, on_text)
    check_streamed(backend, completion, pieces)


async def test_backend_streams_a_chat_model_that_cannot_stream() -> None:
    reply = AIMessage(MATH_ANSWER, usage_metadata=USAGE)
    backend = LangChainBackend(FakeMessagesListChatModel(responses=[reply, reply]))
    pieces: list[str] = []
    completion = backend.complete_streaming(MATH, None, pieces.append)
    assert pieces == [MATH_ANSWER] and completion.text == MATH_ANSWER
    assert (completion.prompt_tokens, completion.completion_tokens) == (7, 5)
    assert backend.last is not None and backend.last.usage_metadata == USAGE
    completion = await backend.acomplete_streaming(MATH, None, pieces.append)
    assert pieces == [MATH_ANSWER] * 2 and completion.completion_tokens == 5


# --------------------------------------------------------------------- nothing to key on

IMAGE = [HumanMessage(content=[{"type": "image", "url": "http://x/y.png"}])]


async def test_uncacheable_request_goes_to_the_model(step_cache: StepCache) -> None:
    reply = AIMessage("A cat.", usage_metadata=USAGE, response_metadata={"model_name": "fake"})
    model = GenericFakeChatModel(messages=iter([reply, reply]))
    chat = StepCacheChatModel(model=model, step_cache=step_cache)
    recorders = Recorder(), Recorder()
    answers = (
        chat.invoke(IMAGE, config={"callbacks": [recorders[0]]}),
        await chat.ainvoke(IMAGE, config={"callbacks": [recorders[1]]}),
    )
    for got, recorder in zip(answers, recorders, strict=True):
        assert got.content == "A cat." and got.usage_metadata == USAGE  # the model's own message
        served = got.response_metadata["stepcache"]  # the model answered: a miss, and why
        assert served["path"] == "miss" and "no text to key the cache on" in served["reason"]
        assert got.response_metadata["model_name"] == "fake"  # the rest is the model's own
        assert recorder.nested() and recorder.runs[1] == recorder.runs[0]  # the same request
    assert step_cache.stats()["requests"] == 0


async def test_uncacheable_request_streams_from_the_model(step_cache: StepCache) -> None:
    reply = AIMessage("A cat.", usage_metadata=USAGE)
    streaming = MeteredChat(messages=iter(["A cat.", "A cat."]))
    whole = FakeMessagesListChatModel(responses=[reply, reply])  # cannot stream: one message
    for model, pieces in ((streaming, ["A", " ", "cat."]), (whole, ["A cat."])):
        chat = StepCacheChatModel(model=model, step_cache=step_cache)
        for chunks in (list(chat.stream(IMAGE)), [c async for c in chat.astream(IMAGE)]):
            assert [str(c.content) for c in chunks if c.content] == pieces  # as the model wrote
            assert any(c.usage_metadata == USAGE for c in chunks)
            assert all("stepcache" not in c.response_metadata for c in chunks)
    assert step_cache.stats()["requests"] == 0


# --------------------------------------------------------------------- patched steps, live

CACHED_Q = "Solve 2(x + 3) + 4 = 20 for x."
CACHED_A = "Expand: 2(x + 3) + 4 = 2x + 10\n2x + 10 = 20\n2x = 10\nx = 5\n"
NEW_Q = "Solve 2(x + 3) + 4 = x + 16 for x."
REUSED = "Expand: 2(x + 3) + 4 = 2x + 10\n"
PATCH = "2x + 10 = x + 16\nx + 10 = 16\nx = 6"


class PausingChat(GenericFakeChatModel):
    """Streams a patch (its prompt shows verified steps) word by word; once the patch's second
    line has started, waits until the test's consumer has received the first patched step."""

    received: Any  # threading.Event, set by the consumer
    paused: Any  # threading.Event, set here while waiting
    written: list[str]

    def _stream(self, messages: Any, *args: Any, **kwargs: Any) -> Iterator[ChatGenerationChunk]:
        patching = "verified" in str(messages)
        for chunk in super()._stream(messages, *args, **kwargs):
            yield chunk
            self.written.append(chunk.text)
            lines = "".join(self.written).split("\n")
            if patching and len(lines) == 2 and lines[1] and not self.paused.is_set():
                self.paused.set()
                assert self.received.wait(20), "the first patched step never reached the stream"


def pausing_chat(step_cache: StepCache) -> tuple[StepCacheChatModel, PausingChat]:
    model = PausingChat(
        messages=iter([CACHED_A, PATCH]),
        received=threading.Event(),
        paused=threading.Event(),
        written=[],
    )
    return StepCacheChatModel(model=model, step_cache=step_cache), model


def check_patched_stream(chunks: list[Any], chat: StepCacheChatModel) -> None:
    texts = [str(c.content) for c in chunks if c.content]
    assert texts[:2] == [REUSED, "2x + 10 = x + 16\n"]
    assert "".join(texts) == REUSED + PATCH
    assert solves(NEW_Q, "".join(texts))
    paths = [c.response_metadata["stepcache"]["path"] for c in chunks if c.response_metadata]
    assert paths == ["patch"]
    repeat = chat.invoke(NEW_Q)  # an exact hit: what was streamed is what was stored
    assert repeat.content == "".join(texts)
    assert repeat.response_metadata["stepcache"]["path"] == "exact"


def test_stream_gives_a_patched_step_while_the_model_writes_the_rest(
    step_cache: StepCache,
) -> None:
    chat, model = pausing_chat(step_cache)
    chat.invoke(CACHED_Q)
    step_cache.flush()  # the cached answer is written in the background
    stream = chat.stream(NEW_Q)
    chunks = [next(stream)]  # the reused step
    assert str(chunks[0].content) == REUSED
    chunks.append(next(stream))  # the first patched step, while the model is paused
    assert str(chunks[1].content) == "2x + 10 = x + 16\n"
    assert model.paused.wait(20) and "x = 6" not in "".join(model.written)
    model.received.set()
    chunks += list(stream)
    assert "".join(model.written) == PATCH
    check_patched_stream(chunks, chat)


async def test_astream_gives_a_patched_step_while_the_model_writes_the_rest(
    step_cache: StepCache,
) -> None:
    chat, model = pausing_chat(step_cache)
    await chat.ainvoke(CACHED_Q)
    step_cache.flush()  # the cached answer is written in the background
    stream = chat.astream(NEW_Q)
    chunks = [await anext(stream)]
    assert str(chunks[0].content) == REUSED
    chunks.append(await anext(stream))
    assert str(chunks[1].content) == "2x + 10 = x + 16\n"
    assert await asyncio.to_thread(model.paused.wait, 20)
    assert "x = 6" not in "".join(model.written)
    model.received.set()
    chunks += [c async for c in stream]
    assert "".join(model.written) == PATCH
    check_patched_stream(chunks, chat)

"""StepCacheLLM: a LlamaIndex LLM wrapping another, on math and JSON prompts (built-in tasks).

A deterministic scripted LLM (a real `LLM` subclass that emits LlamaIndex events) records what it
was asked; Chroma runs on disk in tmp_path with the hashing embedder.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from fractions import Fraction
from pathlib import Path as FsPath
from typing import Any

import pytest
from llama_index.core import Document, MockEmbedding, Settings, VectorStoreIndex
from llama_index.core.base.llms.types import (
    ChatMessage,
    ChatResponse,
    ChatResponseAsyncGen,
    ChatResponseGen,
    CompletionResponse,
    CompletionResponseAsyncGen,
    CompletionResponseGen,
    ImageBlock,
    LLMMetadata,
    MessageRole,
    TextBlock,
)
from llama_index.core.bridge.pydantic import Field
from llama_index.core.callbacks import CallbackManager, CBEventType, LlamaDebugHandler
from llama_index.core.instrumentation import get_dispatcher
from llama_index.core.instrumentation.event_handlers import BaseEventHandler
from llama_index.core.instrumentation.events import BaseEvent
from llama_index.core.llms import LLM, MockLLM
from llama_index.core.llms.callbacks import llm_chat_callback, llm_completion_callback
from llama_index.core.prompts import PromptTemplate

import stepcache_llamaindex
from stepcache_core import ChromaStore, Embedder, StepCache
from stepcache_core.tasks.json import detect_json_spec
from stepcache_core.tasks.linear import LinearSpec, detect_linear
from stepcache_llamaindex import LlamaIndexBackend, StepCacheLLM, model_namespace

from conftest import HashEmbedder

# ---------------------------------------------------------------------------- the scripted model

VALUES: dict[str, Any] = {"name": "Tom", "age": 3, "color": "grey", "owner": "Ann"}


def _num(f: Fraction) -> str:
    return str(f.numerator) if f.denominator == 1 else f"{f.numerator}/{f.denominator}"


def _linear(a: Fraction, b: Fraction, v: str) -> str:
    term = {1: v, -1: f"-{v}", 0: ""}.get(int(a) if a.denominator == 1 else 2, f"{_num(a)}{v}")
    if not term:
        return _num(b)
    return term if b == 0 else f"{term} {'+' if b > 0 else '-'} {_num(abs(b))}"


def _solution(spec: LinearSpec) -> list[str]:
    """Steps for `lhs = rhs`: expand the left side, restate, collect, solve."""
    (a, b), (c, d) = spec.lhs_linear, spec.rhs_linear
    v = spec.variable
    lines = [
        f"Expand the left side: {spec.lhs} = {_linear(a, b, v)}\n",
        f"So {_linear(a, b, v)} = {_linear(c, d, v)}\n",
        f"{_linear(a - c, Fraction(0), v)} = {_num(d - b)}\n",
        f"{v} = {_num(spec.solution)}\n",
    ]
    return [line for i, line in enumerate(lines) if i != 2 or a - c != 1]


def answer(prompt: str) -> str:
    """Right answers: math solutions (continuations for patch prompts) and JSON objects."""
    spec = detect_linear(prompt.split("\n\n")[0])
    if spec is not None:
        lines = _solution(spec)
        if "Continue the solution" in prompt:
            lines = [line for line in lines if line.strip() not in prompt]
        return "".join(lines)
    wanted = re.search(r"exactly these keys: (.*?)\.(?:\s|$)", prompt)
    keys = re.findall(r'"([^"]+)"', wanted.group(1)) if wanted else None
    if keys is None:
        json_spec = detect_json_spec(prompt)
        keys = list(json_spec.keys) if json_spec else None
    if keys is not None:
        return json.dumps({k: VALUES.get(k, "x") for k in keys}, indent=2)
    return f"echo: {prompt}"


class ScriptedLLM(LLM):
    """Answers with `script(prompt)` (chat: the last message); records every request.

    Streams write the answer line by line (cumulative text, the line as delta, or no delta when
    `no_delta`); only the last chunk carries the usage. `_wrote` runs after each chunk.
    """

    script: Callable[[str], str] = Field(default=answer, exclude=True)
    model_name: str = "scripted-1"
    temperature: float = 0.0
    chat_model: bool = False
    no_delta: bool = False
    prompts: list[str] = Field(default_factory=list, exclude=True)
    chats: list[list[ChatMessage]] = Field(default_factory=list, exclude=True)
    kwargs_seen: list[dict[str, Any]] = Field(default_factory=list, exclude=True)
    streams: list[str] = Field(default_factory=list, exclude=True)  # requests streamed
    written: list[str] = Field(default_factory=list, exclude=True)  # streamed lines, in order

    @classmethod
    def class_name(cls) -> str:
        return "ScriptedLLM"

    @property
    def metadata(self) -> LLMMetadata:
        return LLMMetadata(model_name=self.model_name, is_chat_model=self.chat_model)

    @property
    def calls(self) -> int:
        return len(self.prompts) + len(self.chats)

    @property
    def streamed(self) -> int:  # the wrapper's copy of this model shares its lists, not its ints
        return len(self.streams)

    def _answer(self, prompt: str, **kwargs: Any) -> CompletionResponse:
        self.kwargs_seen.append(kwargs)
        text = self.script(prompt)
        usage = {"prompt_tokens": len(prompt.split()), "completion_tokens": len(text.split())}
        return CompletionResponse(text=text, raw={"usage": usage})

    def _reply(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        self.chats.append(list(messages))
        return _as_chat(self._answer(messages[-1].content or "", **kwargs))

    def _chunks(self, prompt: str, **kwargs: Any) -> list[CompletionResponse]:
        self.streams.append(prompt)
        out = self._answer(prompt, **kwargs)
        lines = out.text.splitlines(keepends=True) or [""]
        texts = list(itertools.accumulate(lines))
        return [
            CompletionResponse(
                text=text,
                delta=None if self.no_delta else line,
                raw=out.raw if n == len(lines) else None,
            )
            for n, (line, text) in enumerate(zip(lines, texts, strict=True), start=1)
        ]

    def _stream(self, prompt: str, **kwargs: Any) -> CompletionResponseGen:
        for chunk in self._chunks(prompt, **kwargs):
            self.written.append(chunk.text)
            yield chunk
            self._wrote(prompt, chunk.text)

    async def _astream(self, prompt: str, **kwargs: Any) -> CompletionResponseAsyncGen:
        for chunk in self._chunks(prompt, **kwargs):
            self.written.append(chunk.text)
            yield chunk
            await self._awrote(prompt, chunk.text)

    def _wrote(self, prompt: str, text: str) -> None:
        """Called once the consumer asks for the chunk after the one ending in `text`."""

    async def _awrote(self, prompt: str, text: str) -> None:
        await asyncio.sleep(0)

    @llm_completion_callback()
    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        self.prompts.append(prompt)
        return self._answer(prompt, **kwargs)

    @llm_completion_callback()
    async def acomplete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponse:
        self.prompts.append(prompt)
        return self._answer(prompt, **kwargs)

    @llm_chat_callback()
    def chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        return self._reply(messages, **kwargs)

    @llm_chat_callback()
    async def achat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        return self._reply(messages, **kwargs)

    @llm_completion_callback()
    def stream_complete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponseGen:
        self.prompts.append(prompt)
        return self._stream(prompt, **kwargs)

    @llm_completion_callback()
    async def astream_complete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponseAsyncGen:
        self.prompts.append(prompt)
        return self._astream(prompt, **kwargs)

    @llm_chat_callback()
    def stream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseGen:
        self.chats.append(list(messages))
        return (_as_chat(c) for c in self._stream(messages[-1].content or "", **kwargs))

    @llm_chat_callback()
    async def astream_chat(
        self, messages: Sequence[ChatMessage], **kwargs: Any
    ) -> ChatResponseAsyncGen:
        self.chats.append(list(messages))
        return (_as_chat(c) async for c in self._astream(messages[-1].content or "", **kwargs))


def _as_chat(out: CompletionResponse) -> ChatResponse:
    message = ChatMessage(role="assistant", content=out.text)
    return ChatResponse(message=message, delta=out.delta, raw=out.raw)


#: How long a held stream waits for the consumer before the test fails.
HOLD_S = 20.0


class HoldingLLM(ScriptedLLM):
    """A ScriptedLLM that holds each patch continuation after its second line (which completes
    the first patched step) until `release` is set; `holding` is set once it waits there."""

    release: threading.Event = Field(default_factory=threading.Event, exclude=True)
    holding: threading.Event = Field(default_factory=threading.Event, exclude=True)

    def _holds(self, prompt: str, text: str) -> bool:
        return "Continue the solution" in prompt and text.count("\n") == 2

    def _wrote(self, prompt: str, text: str) -> None:
        if self._holds(prompt, text):
            self.holding.set()
            assert self.release.wait(HOLD_S), "the first patched step never reached the consumer"

    async def _awrote(self, prompt: str, text: str) -> None:
        if not self._holds(prompt, text):
            return
        self.holding.set()
        deadline = time.monotonic() + HOLD_S
        while not self.release.is_set():  # the consumer runs on this loop: poll, never block
            assert time.monotonic() < deadline, "the first patched step never reached the consumer"
            await asyncio.sleep(0.01)

    def calls_text(self) -> str:
        """The last request's text (the last prompt, or a chat's last message)."""
        return self.prompts[-1] if self.prompts else self.chats[-1][-1].content or ""

    def reset(self) -> None:
        self.release.clear()
        self.holding.clear()
        self.written.clear()


class EventCounter(BaseEventHandler):
    """Counts instrumentation events by class name."""

    names: list[str] = Field(default_factory=list)

    @classmethod
    def class_name(cls) -> str:
        return "EventCounter"

    def handle(self, event: BaseEvent, **kwargs: Any) -> None:
        self.names.append(type(event).__name__)

    def llm_pairs(self) -> tuple[int, int]:
        starts = sum(n in ("LLMCompletionStartEvent", "LLMChatStartEvent") for n in self.names)
        ends = sum(n in ("LLMCompletionEndEvent", "LLMChatEndEvent") for n in self.names)
        return starts, ends


# ---------------------------------------------------------------------------- fixtures

MATH = "Solve 2(x + 3) + 4 = 20 for x."
MATH_REWORDED = "Please solve 2(x + 3) + 4 = 20 for x."
MATH_NEW_CONSTANT = "Solve 2(x + 3) + 4 = 22 for x."  # same structure: steps renumbered
MATH_OTHER = "Solve 2(x + 3) + 4 = x + 16 for x."  # other structure: the first step still holds
MATH_LONG = "Solve 2(x + 3) + 4 = -x + 13 for x."  # as MATH_OTHER, with three steps to patch
REUSED = "Expand the left side: 2(x + 3) + 4 = 2x + 10\n"  # MATH's first step, kept for both
PATCHED = ["So 2x + 10 = -x + 13\n", "3x = 3\n", "x = 1\n"]  # MATH_LONG's patched steps
MATH_ROUNDED = "Solve 2(x + 3) + 4 = 22 for x, and round to 2 decimals."
CAT = "Return a JSON object describing a cat with keys name, age, color."
CAT_OWNER = "Return a JSON object describing a cat with keys name, age, color, owner."
CAT_SHORT = "Return a JSON object describing a cat with keys name, age."
BOOK = "Return a JSON object describing a book with keys title, author, year."


def make_cache(path: FsPath, embedder: Embedder | None = None) -> StepCache:
    embedder = embedder or HashEmbedder()
    store = ChromaStore(path / "chroma", embedder_name=embedder.name)
    return StepCache(store, embedder=embedder)


@pytest.fixture
def cache(tmp_path: FsPath) -> StepCache:
    return make_cache(tmp_path)


@pytest.fixture
def model() -> ScriptedLLM:
    return ScriptedLLM()


@pytest.fixture
def llm(model: ScriptedLLM, cache: StepCache) -> StepCacheLLM:
    return StepCacheLLM(llm=model, cache=cache)


@pytest.fixture
def events() -> Iterator[EventCounter]:
    counter = EventCounter()
    root = get_dispatcher()
    root.add_event_handler(counter)
    yield counter
    root.event_handlers = [h for h in root.event_handlers if h is not counter]


def path_of(response: CompletionResponse | ChatResponse) -> str:
    info = response.raw["stepcache"]  # type: ignore[index]
    return str(info["path"])


def user(text: str) -> ChatMessage:
    return ChatMessage(role=MessageRole.USER, content=text)


SYSTEM = ChatMessage(role=MessageRole.SYSTEM, content="You are a careful math tutor.")

# ---------------------------------------------------------------------------- package surface


def test_exports_are_sorted_and_importable() -> None:
    names = stepcache_llamaindex.__all__
    assert names == sorted(names) and "StepCacheLLM" in names
    for name in names:
        assert getattr(stepcache_llamaindex, name) is not None


def test_is_a_plain_llm_with_forwarded_metadata(llm: StepCacheLLM, model: ScriptedLLM) -> None:
    from llama_index.core.llms import CustomLLM

    assert isinstance(llm, LLM) and not isinstance(llm, CustomLLM)
    assert llm.metadata == model.metadata
    assert llm.class_name() == "StepCacheLLM"
    assert llm.to_payload()["wrapped"] == "ScriptedLLM"


# ---------------------------------------------------------------------------- paths: complete


def test_math_paths_call_the_wrapped_model_only_when_needed(
    llm: StepCacheLLM, model: ScriptedLLM
) -> None:
    first = llm.complete(MATH)
    assert path_of(first) == "miss" and first.text.endswith("x = 5\n")
    assert model.prompts == [MATH]
    assert first.raw["usage"]["completion_tokens"] > 0  # type: ignore[index]

    assert path_of(llm.complete(MATH)) == "exact"
    reused = llm.complete(MATH_REWORDED)
    assert path_of(reused) == "reuse" and reused.text == first.text
    assert reused.raw["usage"]["total_tokens"] == 0  # type: ignore[index]
    assert model.calls == 1

    renumbered = llm.complete(MATH_NEW_CONSTANT)
    assert path_of(renumbered) == "reuse" and renumbered.text.endswith("2x = 12\nx = 6\n")
    assert model.calls == 1

    patched = llm.complete(MATH_OTHER)
    assert path_of(patched) == "patch" and patched.text.endswith("x = 6\n")
    assert model.calls == 2
    asked = model.prompts[-1]
    assert asked.startswith(MATH_OTHER) and "Continue the solution" in asked
    assert "Expand the left side: 2(x + 3) + 4 = 2x + 10" in asked  # the verified prefix
    assert "= 20" not in asked  # no stale step

    rounded = llm.complete(MATH_ROUNDED)  # no task verifies a rounded answer: never reused
    assert path_of(rounded) == "miss"
    assert model.prompts[-1] == MATH_ROUNDED and model.calls == 3


def test_json_added_key_asks_only_for_the_missing_key(
    llm: StepCacheLLM, model: ScriptedLLM
) -> None:
    first = llm.complete(CAT)
    assert path_of(first) == "miss" and json.loads(first.text) == {
        "name": "Tom", "age": 3, "color": "grey",
    }  # fmt: skip

    patched = llm.complete(CAT_OWNER)
    assert path_of(patched) == "patch"
    assert json.loads(patched.text) == VALUES
    assert model.calls == 2
    asked = model.prompts[-1]
    assert 'exactly these keys: "owner".' in asked
    for kept in ("name", "age", "color"):
        assert f'"{kept}"' not in asked.split("exactly these keys:")[1]

    shorter = llm.complete(CAT_SHORT)
    assert path_of(shorter) in ("patch", "reuse")
    assert json.loads(shorter.text) == {"name": "Tom", "age": 3}
    assert model.calls == 2  # dropping a key needs no model call

    book = llm.complete(BOOK)
    assert path_of(book) == "skip" and model.prompts[-1] == BOOK


def test_untyped_prompts_with_mock_llm_are_exact_only(cache: StepCache) -> None:
    mock = MockLLM()  # echoes the prompt
    llm = StepCacheLLM(llm=mock, cache=cache)
    first = llm.complete("Tell me about the weather in Paris")
    assert first.text == "Tell me about the weather in Paris" and path_of(first) == "miss"
    assert path_of(llm.complete("Tell me about the weather in Paris")) == "exact"
    near = llm.complete("Tell me about the weather in Paris today")
    assert path_of(near) in ("miss", "skip") and near.text.endswith("today")
    chat = llm.chat([user("Hello there")])
    assert "Hello there" in (chat.message.content or "") and path_of(chat) == "miss"
    assert path_of(llm.chat([user("Hello there")])) == "exact"


def test_mock_llm_answers_math_prompts_it_cannot_solve(cache: StepCache) -> None:
    llm = StepCacheLLM(llm=MockLLM(max_tokens=4), cache=cache)  # answers "text text text text"
    out = llm.complete(MATH)
    assert out.raw["stepcache"]["task"] == "linear_equation"  # type: ignore[index]
    # Never worse than the model: an answer its task cannot prove wrong (no equation, no value)
    # is served as the model wrote it, marked unverified, and is never rewritten.
    assert out.text == "text text text text" and not out.raw["stepcache"]["verified"]  # type: ignore[index]


# ---------------------------------------------------------------------------- chat


def test_chat_keys_on_the_last_user_message_with_exact_context(
    llm: StepCacheLLM, model: ScriptedLLM
) -> None:
    first = llm.chat([SYSTEM, user(MATH)])
    assert path_of(first) == "miss" and first.message.role == MessageRole.ASSISTANT
    assert model.chats[-1] == [SYSTEM, user(MATH)]

    assert path_of(llm.chat([SYSTEM, user(MATH_REWORDED)])) == "reuse"
    assert model.calls == 1

    patched = llm.chat([SYSTEM, user(MATH_OTHER)])
    assert path_of(patched) == "patch" and (patched.message.content or "").endswith("x = 6\n")
    sent = model.chats[-1]
    assert sent[0] == SYSTEM and sent[-1].role == MessageRole.USER
    assert "Continue the solution" in (sent[-1].content or "") and len(sent) == 2

    other_system = ChatMessage(role=MessageRole.SYSTEM, content="Answer like a pirate.")
    assert path_of(llm.chat([other_system, user(MATH)])) == "miss"
    turns = [SYSTEM, user("Hi"), ChatMessage(role="assistant", content="Hello!"), user(MATH)]
    assert path_of(llm.chat(turns)) == "miss"
    assert model.chats[-1] == turns
    assert path_of(llm.chat(turns)) == "exact"
    # completions and chats never share entries
    assert path_of(llm.complete(MATH)) == "miss"
    assert model.calls == 5


def test_uncacheable_chats_go_straight_to_the_model(llm: StepCacheLLM, model: ScriptedLLM) -> None:
    ends_with_assistant = [user(MATH), ChatMessage(role="assistant", content="Let me see.")]
    out = llm.chat(ends_with_assistant)
    assert path_of(out) == "miss" and out.raw["stepcache"]["reason"] == "not cacheable"  # type: ignore[index]
    assert model.chats[-1] == ends_with_assistant
    image = ChatMessage(
        role="user", blocks=[TextBlock(text=MATH), ImageBlock(url="http://example.com/a.png")]
    )
    llm.chat([image])
    llm.chat([image])
    assert model.calls == 3  # never cached
    assert llm.complete("").text == "echo: " and model.prompts == [""]


# ---------------------------------------------------------------------------- streaming, async


def test_stream_complete_yields_one_delta_per_step(llm: StepCacheLLM, model: ScriptedLLM) -> None:
    missed = list(llm.stream_complete(MATH))
    *steps, final = missed
    assert len(steps) == 4 and "".join(r.delta or "" for r in missed) == final.text
    assert [r.delta for r in steps] == _solution(detect_linear(MATH))  # type: ignore[arg-type]
    assert final.delta == "" and path_of(final) == "miss"
    reused = list(llm.stream_complete(MATH_REWORDED))
    assert [r.delta for r in reused] == [r.delta for r in missed]
    assert path_of(reused[-1]) == "reuse" and all(r.raw is None for r in reused[:-1])
    assert all(b.text.startswith(a.text) for a, b in itertools.pairwise(reused))
    assert model.calls == 1


def test_stream_yields_reused_steps_before_the_model_patches(
    llm: StepCacheLLM, model: ScriptedLLM
) -> None:
    llm.complete(MATH)
    calls_before = model.calls
    stream = llm.stream_complete(MATH_OTHER)
    first = next(stream)  # the verified first step: its own delta, ahead of the patched rest
    assert first.delta and first.raw is None
    rest = list(stream)
    assert path_of(rest[-1]) == "patch" and model.calls == calls_before + 1
    assert first.text + "".join(r.delta or "" for r in rest) == rest[-1].text


def test_stream_chat_and_predict_stream(llm: StepCacheLLM, model: ScriptedLLM) -> None:
    chunks = list(llm.stream_chat([SYSTEM, user(CAT)]))
    text = chunks[-1].message.content or ""
    assert json.loads(text) == {"name": "Tom", "age": 3, "color": "grey"}
    assert "".join(c.delta or "" for c in chunks) == text and len(chunks) > 1
    again = list(llm.stream_chat([SYSTEM, user(CAT)]))
    assert path_of(again[-1]) == "exact" and all(c.raw is None for c in again[:-1])
    tokens = "".join(llm.stream(PromptTemplate("Solve {eq} for x."), eq="2(x + 3) + 4 = 20"))
    assert tokens.endswith("x = 5\n")
    assert model.calls == 2


async def test_async_variants_reuse_and_patch(llm: StepCacheLLM, model: ScriptedLLM) -> None:
    first = await llm.acomplete(MATH)
    assert path_of(first) == "miss"
    assert path_of(await llm.acomplete(MATH_REWORDED)) == "reuse"
    patched = await llm.acomplete(MATH_OTHER)
    assert path_of(patched) == "patch" and "Continue the solution" in model.prompts[-1]
    assert model.calls == 2

    chat = await llm.achat([SYSTEM, user(CAT)])
    assert path_of(chat) == "miss"
    more = await llm.achat([SYSTEM, user(CAT_OWNER)])
    assert path_of(more) == "patch" and json.loads(more.message.content or "") == VALUES
    assert 'exactly these keys: "owner".' in (model.chats[-1][-1].content or "")
    assert model.chats[-1][0] == SYSTEM and model.calls == 4

    stream = await llm.astream_complete(MATH_REWORDED)
    deltas = [r.delta async for r in stream]
    assert "".join(d or "" for d in deltas) == first.text and len(deltas) == 5
    chat_stream = await llm.astream_chat([SYSTEM, user(CAT_SHORT)])
    chunks = [c async for c in chat_stream]
    assert json.loads(chunks[-1].message.content or "") == {"name": "Tom", "age": 3}
    assert model.calls == 4


# ---------------------------------------------------------------------------- streaming backend


def _expected_usage(prompt: str, text: str) -> tuple[int, int]:
    return len(prompt.split()), len(text.split())  # ScriptedLLM's usage, on its last chunk


@pytest.mark.parametrize("no_delta", [False, True], ids=["delta", "text-only"])
def test_backend_complete_streaming_hands_over_each_line(
    no_delta: bool, events: EventCounter
) -> None:
    model = ScriptedLLM(no_delta=no_delta)
    list(model.stream_complete("direct call"))  # the scripted model reports its own streams ...
    assert events.llm_pairs() == (1, 1)
    events.names.clear()
    text = answer(MATH)
    for backend in (LlamaIndexBackend(model), LlamaIndexBackend(model, [SYSTEM])):
        pieces: list[str] = []
        out = backend.complete_streaming(MATH, 64, pieces.append)
        assert pieces == text.splitlines(keepends=True) and "".join(pieces) == out.text == text
        assert (out.prompt_tokens, out.completion_tokens) == _expected_usage(MATH, text)
        assert model.kwargs_seen[-1] == {"max_tokens": 64}
    assert model.prompts[-1] == MATH and model.chats[-1] == [SYSTEM, user(MATH)]
    assert model.streamed == 3 and events.llm_pairs() == (0, 0)  # ... muted in the backend

    empty = LlamaIndexBackend(ScriptedLLM(script=lambda prompt: "", no_delta=no_delta))
    pieces = []
    assert empty.complete_streaming(MATH, None, pieces.append).text == "" and pieces == []


@pytest.mark.parametrize("no_delta", [False, True], ids=["delta", "text-only"])
async def test_backend_acomplete_streaming_hands_over_each_line(
    no_delta: bool, events: EventCounter
) -> None:
    model = ScriptedLLM(no_delta=no_delta)
    _ = [r async for r in await model.astream_complete("direct call")]
    assert events.llm_pairs() == (1, 1)
    events.names.clear()
    text = answer(CAT)
    loop = asyncio.get_running_loop()
    pieces: list[str] = []

    def on_text(piece: str) -> None:
        assert asyncio.get_running_loop() is loop  # called on the running loop
        pieces.append(piece)

    for backend in (LlamaIndexBackend(model), LlamaIndexBackend(model, [SYSTEM])):
        pieces.clear()
        out = await backend.acomplete_streaming(CAT, None, on_text)
        assert pieces == text.splitlines(keepends=True) and "".join(pieces) == out.text == text
        assert (out.prompt_tokens, out.completion_tokens) == _expected_usage(CAT, text)
        assert model.kwargs_seen[-1] == {}
    assert model.prompts[-1] == CAT and model.chats[-1] == [SYSTEM, user(CAT)]
    assert model.streamed == 3 and events.llm_pairs() == (0, 0)


def _text(chunk: CompletionResponse | ChatResponse) -> str:
    return chunk.text if isinstance(chunk, CompletionResponse) else chunk.message.content or ""


def _check_held_stream(
    seen: list[tuple[str | None, str]], final: CompletionResponse | ChatResponse
) -> None:
    """`seen`: each chunk's delta with what the held model had written when it arrived."""
    deltas = [delta for delta, _ in seen]
    assert deltas == [REUSED, *PATCHED, ""]  # the reused step first, then one per patched step
    # the first patched step arrived while the model was held, before it wrote `x = 1`
    assert seen[1][1] == "".join(PATCHED[:2])
    assert "".join(d or "" for d in deltas) == _text(final) == REUSED + "".join(PATCHED)
    info = final.raw["stepcache"]  # type: ignore[index]
    assert info["path"] == "patch" and info["verified"] and info["backend_calls"] == 1
    usage = final.raw["usage"]  # type: ignore[index]
    assert usage["completion_tokens"] == len("".join(PATCHED).split())  # the stream's last chunk


@pytest.mark.parametrize("chat", [False, True], ids=["complete", "chat"])
def test_stream_sends_each_patched_step_while_the_model_still_writes(
    cache: StepCache, chat: bool
) -> None:
    model = HoldingLLM()
    llm = StepCacheLLM(llm=model, cache=cache)
    llm.chat([SYSTEM, user(MATH)]) if chat else llm.complete(MATH)
    model.reset()
    chunks = llm.stream_chat([SYSTEM, user(MATH_LONG)]) if chat else llm.stream_complete(MATH_LONG)
    seen: list[tuple[str | None, str]] = []
    for chunk in chunks:
        seen.append((chunk.delta, "".join(model.written[-1:])))
        if chunk.delta == PATCHED[0]:
            assert model.holding.wait(HOLD_S) and not model.release.is_set()
            model.release.set()  # let the model write the rest
    _check_held_stream(seen, chunk)
    assert model.streamed == 1 and "Continue the solution" in model.calls_text()
    assert model.calls == 2


async def _until(event: threading.Event) -> bool:
    deadline = time.monotonic() + HOLD_S
    while not event.is_set() and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    return event.is_set()


@pytest.mark.parametrize("chat", [False, True], ids=["complete", "chat"])
async def test_astream_sends_each_patched_step_while_the_model_still_writes(
    cache: StepCache, chat: bool
) -> None:
    model = HoldingLLM()
    llm = StepCacheLLM(llm=model, cache=cache)
    await (llm.achat([SYSTEM, user(MATH)]) if chat else llm.acomplete(MATH))
    model.reset()
    if chat:
        chunks: Any = await llm.astream_chat([SYSTEM, user(MATH_LONG)])
    else:
        chunks = await llm.astream_complete(MATH_LONG)
    seen: list[tuple[str | None, str]] = []
    async for chunk in chunks:
        seen.append((chunk.delta, "".join(model.written[-1:])))
        if chunk.delta == PATCHED[0]:
            assert await _until(model.holding) and not model.release.is_set()
            model.release.set()
    _check_held_stream(seen, chunk)
    assert model.streamed == 1 and "Continue the solution" in model.calls_text()
    assert model.calls == 2


# ---------------------------------------------------------------------------- events


def test_one_event_pair_per_user_call(
    cache: StepCache, model: ScriptedLLM, events: EventCounter
) -> None:
    debug = LlamaDebugHandler()
    model.callback_manager = CallbackManager([debug])
    model.complete("direct call")  # the scripted model reports its own calls ...
    assert events.llm_pairs() == (1, 1)
    assert len(debug.get_event_pairs(CBEventType.LLM)) == 1
    events.names.clear()
    debug.flush_event_logs()

    llm = StepCacheLLM(llm=model, cache=cache)  # ... and the wrapper takes its callback manager
    calls = [
        lambda: llm.complete(MATH),  # miss: one model call
        lambda: llm.complete(MATH_OTHER),  # patch: a model call with another prompt
        lambda: llm.complete(MATH_REWORDED),  # reuse: no model call
        lambda: llm.chat([SYSTEM, user(CAT)]),
        lambda: llm.chat([SYSTEM, user(CAT_OWNER)]),
        lambda: list(llm.stream_complete(MATH)),
        lambda: list(llm.stream_chat([SYSTEM, user(CAT)])),
        lambda: llm.predict(PromptTemplate("Solve {eq} for x."), eq="2(x + 3) + 4 = 24"),
        lambda: list(llm.stream_complete(MATH_LONG)),  # patch: the wrapped model streams it
        lambda: list(llm.stream_chat([user(MATH)])),  # miss: the wrapped model streams it
    ]
    for n, call in enumerate(calls, start=1):
        call()
        assert events.llm_pairs() == (n, n), events.names
        pairs = debug.get_event_pairs(CBEventType.LLM)
        assert len(pairs) == n
    assert model.calls == 1 + 6  # the direct call, then three misses and three patches
    assert model.streamed == 2  # the last two through the backend's streaming path
    payload = debug.get_event_pairs(CBEventType.LLM)[0][0].payload or {}
    assert any("StepCacheLLM" in str(v) for v in payload.values())

    events.names.clear()
    model.complete("direct again")  # muting is scoped to the wrapper's own calls
    assert events.llm_pairs() == (1, 1)


async def test_one_event_pair_per_async_call(
    llm: StepCacheLLM, model: ScriptedLLM, events: EventCounter
) -> None:
    await llm.acomplete(MATH)
    await llm.acomplete(MATH_OTHER)
    await llm.achat([SYSTEM, user(CAT)])
    await llm.achat([SYSTEM, user(CAT_OWNER)])
    _ = [r async for r in await llm.astream_complete(MATH)]
    _ = [r async for r in await llm.astream_chat([SYSTEM, user(CAT)])]
    _ = [r async for r in await llm.astream_complete(MATH_LONG)]  # streamed patch
    _ = [r async for r in await llm.astream_chat([user(MATH)])]  # streamed miss
    assert events.llm_pairs() == (8, 8)
    assert model.calls == 6 and model.streamed == 2


# ---------------------------------------------------------------------------- settings, queries


def test_settings_llm_predict_and_a_query_engine(llm: StepCacheLLM, model: ScriptedLLM) -> None:
    saved = Settings._llm
    try:
        Settings.llm = llm
        template = PromptTemplate("Solve {eq} for x.")
        first = Settings.llm.predict(template, eq="2(x + 3) + 4 = 20")
        assert first.endswith("x = 5\n") and model.prompts == [MATH]
        assert Settings.llm.predict(template, eq="2(x + 3) + 4 = 20") == first
        assert model.calls == 1

        docs = [
            Document(text="StepCache reuses verified steps of cached answers."),
            Document(text="Chroma stores the cached requests and their steps."),
        ]
        index = VectorStoreIndex.from_documents(docs, embed_model=MockEmbedding(embed_dim=8))
        engine = index.as_query_engine(llm=Settings.llm, similarity_top_k=2)
        answer_1 = engine.query("What does StepCache reuse?")
        assert str(answer_1).startswith("echo: ") and model.calls == 2
        assert "What does StepCache reuse?" in model.prompts[-1]
        answer_2 = engine.query("What does StepCache reuse?")
        assert str(answer_2) == str(answer_1) and model.calls == 2
    finally:
        Settings._llm = saved


def test_chat_model_predict_goes_through_chat(cache: StepCache) -> None:
    model = ScriptedLLM(chat_model=True, system_prompt="You are a careful math tutor.")
    llm = StepCacheLLM(llm=model, cache=cache)
    assert llm.metadata.is_chat_model and llm.system_prompt == model.system_prompt
    out = llm.predict(PromptTemplate("Solve {eq} for x."), eq="2(x + 3) + 4 = 20")
    assert out.endswith("x = 5\n") and model.prompts == []
    assert model.chats[-1][0].role == MessageRole.SYSTEM and model.chats[-1][-1] == user(MATH)
    assert llm.predict(PromptTemplate("Please solve {eq} for x."), eq="2(x + 3) + 4 = 20") == out
    assert model.calls == 1


# ---------------------------------------------------------------------------- keys and scopes


def test_namespace_holds_model_identity_not_secrets(cache: StepCache) -> None:
    from llama_index.llms.openai_like import OpenAILike

    remote = OpenAILike(
        model="qwen", api_base="http://127.0.0.1:1/v1", api_key="sk-secret", temperature=0.0
    )
    wrapped = StepCacheLLM(llm=remote, cache=cache)
    assert wrapped.namespace.startswith("llamaindex:OpenAILike:qwen:")
    assert "secret" not in wrapped.namespace
    moved = OpenAILike(
        model="qwen", api_base="http://127.0.0.1:2/v1", api_key="other", temperature=0.0
    )
    assert model_namespace(moved) == model_namespace(remote)  # endpoints and keys are not identity
    warmer = OpenAILike(model="qwen", api_base="http://127.0.0.1:1/v1", temperature=0.7)
    assert model_namespace(warmer) != model_namespace(remote)


def test_parameters_tenants_and_call_kwargs_separate_entries(
    cache: StepCache, model: ScriptedLLM
) -> None:
    StepCacheLLM(llm=model, cache=cache).complete(MATH)
    hot = ScriptedLLM(temperature=0.9)
    assert path_of(StepCacheLLM(llm=hot, cache=cache).complete(MATH)) == "miss"
    assert hot.prompts == [MATH]
    assert path_of(StepCacheLLM(llm=model, cache=cache, tenant="acme").complete(MATH)) == "miss"
    llm = StepCacheLLM(llm=model, cache=cache)
    assert path_of(llm.complete(MATH)) == "exact"
    assert path_of(llm.complete(MATH, top_p=0.5)) == "miss"
    assert model.kwargs_seen[-1] == {"top_p": 0.5}
    assert path_of(llm.complete(MATH, top_p=0.5)) == "exact"
    assert len(model.prompts) == 3
    assert cache.clear(namespace=llm.namespace) == 2  # both tenants; call kwargs scope apart


def test_the_asking_messages_extra_fields_key_the_chat_and_reach_the_model(
    cache: StepCache, model: ScriptedLLM
) -> None:
    llm = StepCacheLLM(llm=model, cache=cache)

    def asked(name: str) -> ChatMessage:
        return ChatMessage(role=MessageRole.USER, content=MATH, additional_kwargs={"name": name})

    assert path_of(llm.chat([SYSTEM, asked("Ann")])) == "miss"
    assert model.chats[-1][-1].additional_kwargs == {"name": "Ann"}  # sent as the app sent it
    assert path_of(llm.chat([SYSTEM, asked("Bob")])) == "miss"  # another sender: not Ann's answer
    assert path_of(llm.chat([SYSTEM, asked("Bob")])) == "exact"
    assert path_of(llm.chat([SYSTEM, user(MATH)])) == "miss"


def test_a_wrapped_models_own_prompt_formatting_is_part_of_its_namespace(
    cache: StepCache,
) -> None:
    """A model that adds its system prompt or template inside `complete` is asked another
    request when those change, and when `formatted=True` skips them."""
    french = ScriptedLLM(system_prompt="Always answer in French.")
    assert model_namespace(french) != model_namespace(ScriptedLLM())
    assert model_namespace(french) != model_namespace(ScriptedLLM(system_prompt="In German."))
    tagged = ScriptedLLM(completion_to_prompt=lambda p: f"<s>[INST] {p} [/INST]")
    assert model_namespace(tagged) != model_namespace(ScriptedLLM())
    llm = StepCacheLLM(llm=tagged, cache=cache)
    assert path_of(llm.complete(MATH)) == "miss"
    assert path_of(llm.complete(MATH, formatted=True)) == "miss"  # the model gets bare text
    plain = StepCacheLLM(llm=ScriptedLLM(), cache=cache)
    assert path_of(plain.complete(MATH)) == "miss"
    assert path_of(plain.complete(MATH, formatted=True)) == "exact"  # no formatting: same text


def test_a_second_process_reads_the_same_disk_cache(tmp_path: FsPath) -> None:
    model = ScriptedLLM()
    first = make_cache(tmp_path)
    StepCacheLLM(llm=model, cache=first).complete(MATH)
    first.flush()  # answers are stored in the background: written before the process would exit
    other = ScriptedLLM()
    reopened = StepCacheLLM(llm=other, cache=make_cache(tmp_path))
    assert path_of(reopened.complete(MATH_REWORDED)) == "reuse" and other.calls == 0


@pytest.mark.slow
def test_real_minilm_embedder_finds_the_reworded_request(tmp_path: FsPath) -> None:
    from stepcache_core import MiniLMEmbedder

    model = ScriptedLLM()
    llm = StepCacheLLM(llm=model, cache=make_cache(tmp_path, MiniLMEmbedder()))
    assert path_of(llm.complete(MATH)) == "miss"
    assert path_of(llm.complete("Find x such that 2(x + 3) + 4 = 20.")) == "reuse"
    assert path_of(llm.chat([SYSTEM, user(CAT)])) == "miss"
    owner = llm.chat([SYSTEM, user("Give me a JSON object for a cat with name, age, color, owner")])
    assert path_of(owner) == "patch" and json.loads(owner.message.content or "") == VALUES
    assert model.calls == 3


def test_every_response_says_how_it_was_served_under_one_key(llm: StepCacheLLM) -> None:
    prompt = "Solve 3x + 5 = 20 for x."
    miss = llm.complete(prompt)
    exact = llm.complete(prompt)
    chat = llm.chat([user(prompt)])  # a chat is another scope than a completion
    streamed = list(llm.stream_complete("Solve 3x + 7 = 22 for x."))
    cases = ((miss, "miss"), (exact, "exact"), (chat, "miss"), (streamed[-1], "reuse"))
    for response, path in cases:
        served = response.additional_kwargs["stepcache"]
        assert served == response.raw["stepcache"]  # type: ignore[index]
        assert served["path"] == path, served
        assert {"reason", "task", "similarity", "verified", "tokens_spent"} <= set(served)
    assert miss.additional_kwargs["stepcache"]["tokens_spent"] > 0
    assert miss.additional_kwargs["stepcache"]["tokens_saved"] == 0
    spent = miss.additional_kwargs["stepcache"]["tokens_spent"]
    assert exact.additional_kwargs["stepcache"]["tokens_saved"] == spent  # the entry's cost


def test_a_provider_response_with_extra_fields_round_trips() -> None:
    """llama.cpp's server adds fields (``timings``) to OpenAI's ChatCompletion: kept, so the
    exact-only answer is stored losslessly instead of passed through on every repeat."""
    from openai.types.chat import ChatCompletion

    from stepcache_llamaindex.exact import decode, encode

    raw = ChatCompletion.model_validate(
        {
            "id": "c1",
            "object": "chat.completion",
            "created": 1,
            "model": "m",
            "choices": [
                {
                    "index": 0,
                    "finish_reason": "stop",
                    "message": {"role": "assistant", "content": '{"city": "Paris"}'},
                }
            ],
            "timings": {"prompt_ms": 1.5, "predicted_ms": 9.0},
        }
    )
    stored = encode(raw)
    assert stored is not None and decode(stored) == raw
    assert decode(stored).model_extra == {"timings": {"prompt_ms": 1.5, "predicted_ms": 9.0}}

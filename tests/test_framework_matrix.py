"""Framework features through the cache behave as without it: a feature matrix on a fake server.

A deterministic OpenAI-compatible server on 127.0.0.1 answers /v1/chat/completions: a tool call
when tools are sent (unless the last message is a tool result), a JSON object when a response
format asks for one (or the prompt mentions JSON), else text. Each cell runs the same call with
and without the cache, on the first call and on the repeat, and compares the results; the repeat
of an exact-cacheable cell makes no server call.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from langchain_core.globals import set_llm_cache
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import BaseMessage, HumanMessage, ToolMessage
from langchain_core.outputs import ChatGeneration
from langchain_core.utils.function_calling import convert_to_openai_tool
from langchain_openai import ChatOpenAI
from llama_index.core.agent.workflow import FunctionAgent
from llama_index.core.base.llms.types import ChatMessage, ChatResponse
from llama_index.core.chat_engine import SimpleChatEngine
from llama_index.core.llms import LLM
from llama_index.core.llms.function_calling import FunctionCallingLLM
from llama_index.core.prompts import PromptTemplate
from llama_index.core.tools import FunctionTool
from llama_index.llms.openai_like import OpenAILike
from pydantic import BaseModel

from stepcache_core import ChromaStore, Embedder, StepCache, TaskRegistry
from stepcache_langchain import StepCacheChatModel, StepCacheLLMCache
from stepcache_llamaindex import StepCacheLLM

PERSON = {"name": "Ann", "age": 3}


class Person(BaseModel):
    """A person."""

    name: str
    age: int


def get_weather(city: str) -> str:
    """The weather in a city."""
    return f"sunny in {city}"


def _value(schema: dict[str, Any]) -> Any:
    kind = schema.get("type")
    return {"integer": 3, "number": 1.5, "boolean": True}.get(str(kind), "Paris")


def _arguments(parameters: dict[str, Any]) -> dict[str, Any]:
    props = parameters.get("properties", {})
    if set(props) == set(PERSON):
        return dict(PERSON)
    return {name: _value(spec) for name, spec in props.items()}


def _reply(body: dict[str, Any]) -> dict[str, Any]:
    """The fake model's message for a request body (deterministic)."""
    messages = body["messages"]
    last = messages[-1]
    text = last.get("content") or ""
    text = text if isinstance(text, str) else " ".join(p.get("text", "") for p in text)
    digest = hashlib.sha256(json.dumps(messages, sort_keys=True).encode()).hexdigest()[:12]
    tools, choice = body.get("tools"), body.get("tool_choice")
    if tools and choice != "none" and last["role"] != "tool":
        chosen = tools[0]["function"]
        if isinstance(choice, dict):
            chosen = next(
                t["function"] for t in tools if t["function"]["name"] == choice["function"]["name"]
            )
        call = {
            "id": f"call_{digest}",
            "type": "function",
            "function": {
                "name": chosen["name"],
                "arguments": json.dumps(_arguments(chosen.get("parameters", {}))),
            },
        }
        return {"role": "assistant", "content": None, "tool_calls": [call]}
    fmt = (body.get("response_format") or {}).get("type")
    if fmt in ("json_schema", "json_object") or "json" in text.lower():
        return {"role": "assistant", "content": json.dumps(PERSON)}
    if last["role"] == "tool":
        return {"role": "assistant", "content": f"The tool said: {text}."}
    return {"role": "assistant", "content": f"You said: {text}. That is all."}


class FakeOpenAI:
    """The server and the number of chat requests it answered."""

    def __init__(self) -> None:
        self.calls = 0
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                fake.calls += 1
                message = _reply(body)
                reason = "tool_calls" if message.get("tool_calls") else "stop"
                usage = {"prompt_tokens": 7, "completion_tokens": 5, "total_tokens": 12}
                head = {"id": "chatcmpl-fixed", "created": 1, "model": "fake-model"}
                if not body.get("stream"):
                    choice = {
                        "index": 0,
                        "message": message,
                        "finish_reason": reason,
                        "logprobs": None,
                    }
                    self._send(
                        "application/json",
                        json.dumps(
                            {
                                **head,
                                "object": "chat.completion",
                                "choices": [choice],
                                "usage": usage,
                            }
                        ),
                    )
                    return
                chunks = []
                content = message.get("content")
                for i, piece in enumerate(
                    [content[: len(content) // 2], content[len(content) // 2 :]] if content else []
                ):
                    delta = (
                        {"role": "assistant", "content": piece} if i == 0 else {"content": piece}
                    )
                    chunks.append({"index": 0, "delta": delta, "finish_reason": None})
                if message.get("tool_calls"):
                    calls = [{"index": 0, **c} for c in message["tool_calls"]]
                    chunks.append(
                        {
                            "index": 0,
                            "delta": {"role": "assistant", "tool_calls": calls},
                            "finish_reason": None,
                        }
                    )
                chunks.append({"index": 0, "delta": {}, "finish_reason": reason})
                lines = [
                    json.dumps({**head, "object": "chat.completion.chunk", "choices": [c]})
                    for c in chunks
                ]
                lines.append(
                    json.dumps(
                        {**head, "object": "chat.completion.chunk", "choices": [], "usage": usage}
                    )
                )
                self._send(
                    "text/event-stream",
                    "".join(f"data: {line}\n\n" for line in lines) + "data: [DONE]\n\n",
                )

            def _send(self, kind: str, text: str) -> None:
                data = text.encode()
                self.send_response(200)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeOpenAI]:
    server = FakeOpenAI()
    thread = threading.Thread(target=server.server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.server.shutdown()


@pytest.fixture
def step_cache(tmp_path: Path, hash_embedder: Embedder) -> StepCache:
    store = ChromaStore(tmp_path / "chroma", embedder_name=hash_embedder.name)
    return StepCache(store, embedder=hash_embedder, tasks=TaskRegistry.with_builtins())


def _comparable(value: Any, strict: bool) -> Any:
    """A result without the cache's metadata and run ids; unless `strict`, a message is compared
    on what it says (text, tool calls, extra fields set), not on its usage and provider data."""
    if isinstance(value, BaseMessage):
        data = value.model_dump()
        data["response_metadata"] = {
            k: v for k, v in data["response_metadata"].items() if k != "stepcache"
        }
        if str(data.get("id", "")).startswith("lc_run"):
            data["id"] = None
        if data.get("usage_metadata"):  # LangChain itself adds a zero cost to any cache hit
            data["usage_metadata"].pop("total_cost", None)
        if not strict:
            kept = {k: v for k, v in data["additional_kwargs"].items() if v is not None}
            data.update(additional_kwargs=kept, response_metadata={}, usage_metadata=None, id=None)
        return data
    if isinstance(value, dict):
        return {k: _comparable(v, strict) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_comparable(v, strict) for v in value]
    if isinstance(value, ChatResponse):
        return {"message": _comparable(value.message, strict)}
    if isinstance(value, ChatMessage):
        return {"role": value.role, "blocks": [b.model_dump() for b in value.blocks]}
    if hasattr(value, "text") and hasattr(value, "delta"):  # a CompletionResponse
        return value.text
    return value


def _check(fake: FakeOpenAI, run: Callable[[bool], Any], cached_repeat: bool, strict: bool) -> None:
    """`run(with_cache)` twice each way: equal results; an exact repeat makes no server call."""
    plain = _comparable(run(False), strict)
    assert _comparable(run(True), strict) == plain
    before = fake.calls
    assert _comparable(run(True), strict) == plain
    if cached_repeat:
        assert fake.calls == before, "the repeat called the model"


# ---------------------------------------------------------------------------- LangChain

LANGCHAIN_CELLS = [
    "invoke", "ainvoke", "batch", "stream", "structured_function_calling", "structured_json_schema",
    "structured_json_mode", "structured_include_raw", "bind_tools_tool_choice", "agent_loop",
    "bind_tools_task_prompt",
]  # fmt: skip
#: Cells the global cache does not serve on a repeat: LangChain's `stream` never looks up a cache,
#: and a ``parsed`` Pydantic object does not serialize (not stored: the model answers again).
GLOBAL_PASS_THROUGH = {"stream", "structured_json_schema", "structured_include_raw"}
#: Plain text cells: served step by step, compared on what the answer says.
TEXT_CELLS = {
    "invoke",
    "ainvoke",
    "batch",
    "stream",
    "complete",
    "chat",
    "stream_complete",
    "stream_chat",
}


def _langchain_cell(cell: str, model: BaseChatModel) -> Any:
    ask = [HumanMessage("Tell me about the weather in Paris today")]
    if cell == "invoke":
        return model.invoke(ask)
    if cell == "ainvoke":
        return asyncio.run(model.ainvoke(ask))
    if cell == "batch":
        return model.batch([ask, [HumanMessage("Tell me about rivers")]])
    if cell == "stream":
        chunks = list(model.stream(ask))
        return [sum(chunks[1:], chunks[0]).content, sum(chunks[1:], chunks[0]).tool_calls]
    if cell.startswith("structured_"):
        method = {"function_calling": "function_calling", "json_schema": "json_schema"}.get(
            cell[11:], "json_mode"
        )
        raw = cell == "structured_include_raw"
        structured = model.with_structured_output(
            Person, method="json_schema" if raw else method, include_raw=raw
        )  # type: ignore[arg-type]
        return structured.invoke("Extract the person: Ann is 3 years old. Answer in JSON.")
    tools = model.bind_tools([get_weather], tool_choice="get_weather")
    if cell == "bind_tools_tool_choice":
        return tools.invoke(ask)
    if cell == "bind_tools_task_prompt":  # a prompt a task knows, then a variant: still tool calls
        return [tools.invoke("Solve 3x + 5 = 20 for x."), tools.invoke("Solve 3x + 7 = 22 for x.")]
    agent = model.bind_tools([get_weather])
    messages: list[BaseMessage] = list(ask)
    reply = agent.invoke(messages)
    messages.append(reply)
    for call in reply.tool_calls:
        messages.append(ToolMessage(get_weather(**call["args"]), tool_call_id=call["id"]))
    messages.append(agent.invoke(messages))
    return messages


def _chat_openai(fake: FakeOpenAI, **kwargs: Any) -> ChatOpenAI:
    return ChatOpenAI(model="fake-model", base_url=fake.url, api_key="x", max_retries=0, **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("cell", LANGCHAIN_CELLS)
def test_langchain_global_cache(cell: str, fake: FakeOpenAI, step_cache: StepCache) -> None:
    cache = StepCacheLLMCache(step_cache)

    def run(with_cache: bool) -> Any:
        set_llm_cache(cache if with_cache else None)
        try:
            return _langchain_cell(cell, _chat_openai(fake))
        finally:
            set_llm_cache(None)

    _check(fake, run, cell not in GLOBAL_PASS_THROUGH, cell not in TEXT_CELLS)


@pytest.mark.parametrize("cell", LANGCHAIN_CELLS)
def test_langchain_chat_model(cell: str, fake: FakeOpenAI, step_cache: StepCache) -> None:
    def run(with_cache: bool) -> Any:
        model = _chat_openai(fake)
        wrapped = StepCacheChatModel(model=model, step_cache=step_cache) if with_cache else model
        return _langchain_cell(cell, wrapped)

    _check(fake, run, True, cell not in TEXT_CELLS)


# ---------------------------------------------------------------------------- LlamaIndex

LLAMAINDEX_CELLS = [
    "complete", "chat", "stream_complete", "stream_chat", "structured_predict", "as_structured_llm",
    "chat_engine", "chat_with_tools", "function_agent",
]  # fmt: skip
#: Cells that need a function-calling model.
FUNCTION_CALLING_ONLY = {"chat_with_tools", "function_agent"}


def _llamaindex_cell(cell: str, llm: LLM) -> Any:
    ask = [ChatMessage(role="user", content="Tell me about the weather in Paris today")]
    if cell == "complete":
        return llm.complete("Tell me about rivers")
    if cell == "chat":
        return llm.chat(ask)
    if cell == "stream_complete":
        return "".join(r.delta or "" for r in llm.stream_complete("Tell me about rivers"))
    if cell == "stream_chat":
        return "".join(r.delta or "" for r in llm.stream_chat(ask))
    if cell == "structured_predict":
        return llm.structured_predict(
            Person, PromptTemplate("Extract the person: {text}"), text="Ann is 3"
        )
    if cell == "as_structured_llm":
        return (
            llm.as_structured_llm(Person)
            .chat([ChatMessage(role="user", content="Extract the person: Ann is 3")])
            .raw
        )
    if cell == "chat_engine":
        engine = SimpleChatEngine.from_defaults(llm=llm)
        return [str(engine.chat("Tell me about rivers")), str(engine.chat("And about lakes"))]
    weather = FunctionTool.from_defaults(fn=get_weather)
    if cell == "chat_with_tools":
        response = llm.chat_with_tools([weather], user_msg="What is the weather in Paris?")  # type: ignore[attr-defined]
        return [response, llm.get_tool_calls_from_response(response)]  # type: ignore[attr-defined]

    async def ask_agent() -> str:
        agent = FunctionAgent(tools=[weather], llm=llm)
        return str(await agent.run("What is the weather in Paris?"))

    return asyncio.run(ask_agent())


@pytest.mark.parametrize("function_calling", [True, False])
@pytest.mark.parametrize("cell", LLAMAINDEX_CELLS)
def test_llamaindex(
    cell: str, function_calling: bool, fake: FakeOpenAI, step_cache: StepCache
) -> None:
    if cell in FUNCTION_CALLING_ONLY and not function_calling:
        model = OpenAILike(model="fake-model", api_base=fake.url, api_key="x", is_chat_model=True)
        assert not isinstance(StepCacheLLM(llm=model, cache=step_cache), FunctionCallingLLM)
        return

    def run(with_cache: bool) -> Any:
        model = OpenAILike(
            model="fake-model", api_base=fake.url, api_key="x", is_chat_model=True,
            is_function_calling_model=function_calling, max_retries=0,
        )  # fmt: skip
        return _llamaindex_cell(
            cell, StepCacheLLM(llm=model, cache=step_cache) if with_cache else model
        )

    _check(fake, run, True, cell not in TEXT_CELLS)


# ---------------------------------------------------------------------------- metadata


def test_langchain_metadata_says_exact_only(fake: FakeOpenAI, step_cache: StepCache) -> None:
    """An exact-only request's generation info says it passed through, then that it was exact;
    the message itself is the model's."""
    model = StepCacheChatModel(model=_chat_openai(fake), step_cache=step_cache)
    tools = [convert_to_openai_tool(get_weather)]
    ask = [HumanMessage("Solve 3x + 5 = 20 for x.")]
    first = model.generate([ask], tools=tools).generations[0][0]
    again = model.generate([ask], tools=tools).generations[0][0]
    assert first.generation_info and again.generation_info
    assert first.generation_info["stepcache"]["path"] == "miss"
    assert "exact-only" in first.generation_info["stepcache"]["reason"]
    assert again.generation_info["stepcache"]["path"] == "exact"
    assert isinstance(first, ChatGeneration) and isinstance(again, ChatGeneration)
    assert again.message.tool_calls == first.message.tool_calls != []

    set_llm_cache(StepCacheLLMCache(step_cache))
    try:
        plain = _chat_openai(fake)
        plain.generate([ask], tools=tools)
        hit = plain.generate([ask], tools=tools).generations[0][0]
    finally:
        set_llm_cache(None)
    assert hit.generation_info and hit.generation_info["stepcache"]["path"] == "exact"


def test_llamaindex_metadata_says_exact_only(fake: FakeOpenAI, step_cache: StepCache) -> None:
    model = OpenAILike(
        model="fake-model", api_base=fake.url, api_key="x", is_chat_model=True,
        is_function_calling_model=True, max_retries=0,
    )  # fmt: skip
    llm = StepCacheLLM(llm=model, cache=step_cache)
    assert isinstance(llm, FunctionCallingLLM)
    weather = FunctionTool.from_defaults(fn=get_weather)
    first = llm.chat_with_tools([weather], user_msg="Solve 3x + 5 = 20 for x.")
    again = llm.chat_with_tools([weather], user_msg="Solve 3x + 5 = 20 for x.")
    assert first.additional_kwargs["stepcache"]["path"] == "miss"
    assert "exact-only" in first.additional_kwargs["stepcache"]["reason"]
    assert again.additional_kwargs["stepcache"]["path"] == "exact"
    assert again.message == first.message and again.raw == first.raw
    assert llm.get_tool_calls_from_response(again)[0].tool_name == "get_weather"

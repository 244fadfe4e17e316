"""The structured-output and tool rows of the framework matrix on the real local model.

Each row runs the same call without the cache, then with it (the miss and the exact repeat) and
compares the results; the repeat is served from the cache. Qwen2.5-Coder-0.5B writes a tool call
as text (a bare ``{"name": ..., "arguments": ...}``, not the ``<tool_call>`` tags llama.cpp
parses), so on this model the tool rows assert what the frameworks do with that text, with and
without the cache alike: ``tool_calls == []`` in LangChain, ``ValueError`` from LlamaIndex.

LlamaIndex's exact-only calls round-trip with the extra fields llama.cpp adds to each response
(``timings``), so their repeats are served from the cache too.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.globals import set_llm_cache
from langchain_core.outputs import LLMResult
from pydantic import BaseModel

from stepcache_core import ChromaStore, Embedder, StepCache, TaskRegistry
from stepcache_langchain import StepCacheChatModel, StepCacheLLMCache
from stepcache_llamaindex import StepCacheLLM

pytestmark = pytest.mark.model

QUESTION = "Paris is the capital of France. Extract the city."
NO_TOOL_CALL = "Expected at least one tool call, but got 0 tool calls."


class City(BaseModel):
    """A city and the country it is in."""

    name: str
    country: str


def get_weather(city: str) -> str:
    """The weather in a city."""
    return f"sunny in {city}"


class Served(BaseCallbackHandler):
    """The cache's ``generation_info["stepcache"]`` of LangChain's last model call."""

    info: dict[str, Any] | None = None

    def on_llm_end(self, response: LLMResult, **kwargs: Any) -> None:
        self.info = (response.generations[0][0].generation_info or {}).get("stepcache")


@pytest.fixture(scope="module")
def server() -> Iterator[Any]:
    pytest.importorskip("xllamacpp")
    from stepcache_core.backends.server import serve_local_model

    with serve_local_model() as srv:
        yield srv


@pytest.fixture
def step_cache(tmp_path: Path, hash_embedder: Embedder) -> StepCache:
    store = ChromaStore(tmp_path / "chroma", embedder_name=hash_embedder.name)
    return StepCache(store, embedder=hash_embedder, tasks=TaskRegistry.with_builtins())


def _chat_openai(server: Any) -> Any:
    from langchain_openai import ChatOpenAI

    return ChatOpenAI(
        base_url=server.base_url,
        api_key=server.api_key,
        model=server.model,
        temperature=0,
        max_tokens=40,
        max_retries=0,
    )


def _openai_like(server: Any, function_calling: bool, sent: list[Any] | None = None) -> Any:
    """`OpenAILike` for the server; `sent` collects the HTTP requests it makes."""
    import httpx
    from llama_index.llms.openai_like import OpenAILike

    hooks = {"request": [sent.append]} if sent is not None else {}

    return OpenAILike(
        api_base=server.base_url,
        api_key=server.api_key,
        model=server.model,
        is_chat_model=True,
        is_function_calling_model=function_calling,
        temperature=0,
        max_tokens=40,
        max_retries=0,
        http_client=httpx.Client(event_hooks=hooks),
    )


def _three_times(run: Callable[[bool], Any]) -> tuple[Any, Any, Any]:
    """`run` without the cache, then with it twice (the miss and the repeat)."""
    return run(False), run(True), run(True)


def _global(
    server: Any, step_cache: StepCache, call: Callable[[Any], Any]
) -> Callable[[bool], Any]:
    def run(with_cache: bool) -> Any:
        set_llm_cache(StepCacheLLMCache(step_cache) if with_cache else None)
        try:
            return call(_chat_openai(server))
        finally:
            set_llm_cache(None)

    return run


def test_langchain_structured_json_mode_global_cache(server: Any, step_cache: StepCache) -> None:
    served = Served()
    ask = f"{QUESTION} Output only a JSON object with the keys name and country."

    def call(model: Any) -> Any:
        structured = model.with_structured_output(City, method="json_mode")
        return structured.invoke(ask, config={"callbacks": [served]})

    plain, first, again = _three_times(_global(server, step_cache, call))
    assert isinstance(plain, City) and first == plain and again == plain
    assert served.info is not None and served.info["path"] == "exact"


def test_langchain_structured_function_calling_global_cache(
    server: Any, step_cache: StepCache
) -> None:
    """The forced tool call comes back as text: LangChain's parser finds no call and returns
    None, with the cache as without it; the repeat is served from the cache."""
    served = Served()

    def call(model: Any) -> Any:
        structured = model.with_structured_output(City, method="function_calling", include_raw=True)
        return structured.invoke(QUESTION, config={"callbacks": [served]})

    plain, first, again = _three_times(_global(server, step_cache, call))
    for out in (plain, first, again):
        assert out["parsed"] is None and out["raw"].tool_calls == []
        assert out["raw"].content == plain["raw"].content and '"City"' in out["raw"].content
    assert served.info is not None and served.info["path"] == "exact"


def test_langchain_bind_tools_global_cache(server: Any, step_cache: StepCache) -> None:
    served = Served()

    def call(model: Any) -> Any:
        tools = model.bind_tools([get_weather])
        return tools.invoke("What is the weather in Paris?", config={"callbacks": [served]})

    plain, first, again = _three_times(_global(server, step_cache, call))
    for out in (first, again):
        assert out.content == plain.content and out.tool_calls == plain.tool_calls
    assert plain.tool_calls == [] and '"get_weather"' in plain.content  # see the module docstring
    assert served.info is not None and served.info["path"] == "exact"


def test_langchain_chat_model_structured_json_schema(server: Any, step_cache: StepCache) -> None:
    def run(with_cache: bool) -> Any:
        model = _chat_openai(server)
        wrapped = StepCacheChatModel(model=model, step_cache=step_cache) if with_cache else model
        return wrapped.with_structured_output(City, include_raw=True).invoke(QUESTION)

    plain, first, again = _three_times(run)
    assert isinstance(plain["parsed"], City)
    assert first["parsed"] == plain["parsed"] and again["parsed"] == plain["parsed"]
    assert again["raw"].response_metadata["stepcache"]["path"] == "exact"


def test_llamaindex_structured_predict(server: Any, step_cache: StepCache) -> None:
    from llama_index.core.prompts import PromptTemplate

    template = PromptTemplate("Extract the city from this text: {text}")
    sent: list[Any] = []

    def run(with_cache: bool) -> Any:
        model = _openai_like(server, function_calling=False, sent=sent)
        llm = StepCacheLLM(llm=model, cache=step_cache) if with_cache else model
        return llm.structured_predict(City, template, text="Paris is the capital of France.")

    plain, first, again = _three_times(run)
    assert isinstance(plain, City) and first == plain and again == plain
    assert len(sent) == 2  # the repeat is served from the cache


def test_llamaindex_chat_with_tools(server: Any, step_cache: StepCache) -> None:
    from llama_index.core.tools import FunctionTool

    weather = FunctionTool.from_defaults(fn=get_weather)

    def run(with_cache: bool) -> Any:
        model = _openai_like(server, function_calling=True)
        llm = StepCacheLLM(llm=model, cache=step_cache) if with_cache else model
        response = llm.chat_with_tools([weather], user_msg="What is the weather in Paris?")
        with pytest.raises(ValueError, match=NO_TOOL_CALL):
            llm.get_tool_calls_from_response(response)
        return response

    plain, first, again = _three_times(run)
    assert first.message.content == plain.message.content == again.message.content
    assert '"get_weather"' in (plain.message.content or "")
    info = again.additional_kwargs["stepcache"]
    assert info["path"] == "exact"

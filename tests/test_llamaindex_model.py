"""StepCacheLLM around LlamaIndex's own `OpenAILike`, talking to the real local model over HTTP.

Seeded with two verified answers (`StepCache.put`), so the model is asked only for patches:
two short generations in all (the 0.5B model decodes a few tokens a second on a busy 2-core box).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path as FsPath
from typing import Any

import pytest
from llama_index.core.base.llms.types import ChatMessage, MessageRole

from stepcache_core import CacheConfig, ChromaStore, StepCache
from stepcache_core.backends import LlamaCppOptions, LocalModelServer, serve_local_model
from stepcache_llamaindex import StepCacheLLM, split_chat

from conftest import HashEmbedder

pytestmark = pytest.mark.model

MATH_ANSWER = "Expand the left side: 2(x + 3) + 4 = 2x + 10\nSo 2x + 10 = 20\n2x = 10\nx = 5\n"
CAT_ANSWER = '{\n  "name": "Tom",\n  "age": 3,\n  "color": "grey"\n}'
SYSTEM = ChatMessage(role=MessageRole.SYSTEM, content="You are a helpful assistant.")


@pytest.fixture(scope="module")
def server() -> Iterator[LocalModelServer]:
    pytest.importorskip("xllamacpp")
    pytest.importorskip("llama_index.llms.openai_like")
    with serve_local_model(options=LlamaCppOptions(max_tokens=120)) as srv:
        yield srv


def info(response: Any) -> dict[str, Any]:
    return dict(response.raw["stepcache"])


def user(text: str) -> ChatMessage:
    return ChatMessage(role=MessageRole.USER, content=text)


async def test_wrapping_openai_like_patches_with_the_real_model(
    server: LocalModelServer, tmp_path: FsPath
) -> None:
    from llama_index.llms.openai_like import OpenAILike

    model = OpenAILike(
        model=server.model, api_base=server.base_url, api_key=server.api_key,
        is_chat_model=True, temperature=0.0, max_tokens=120, timeout=300, max_retries=1,
    )  # fmt: skip
    embedder = HashEmbedder()
    store = ChromaStore(tmp_path / "chroma", embedder_name=embedder.name)
    cache = StepCache(store, embedder=embedder, config=CacheConfig(max_repairs=0))
    llm = StepCacheLLM(llm=model, cache=cache)
    assert llm.metadata.is_chat_model and llm.metadata.model_name == server.model

    math = "Solve 2(x + 3) + 4 = 20 for x."
    assert cache.put(math, MATH_ANSWER, namespace=llm.namespace) is not None
    reused = llm.complete("Please solve 2(x + 3) + 4 = 20 for x.")
    assert info(reused)["path"] == "reuse" and reused.text == MATH_ANSWER

    renumbered = llm.complete("Solve 2(x + 3) + 4 = 22 for x.")  # same structure: no model call
    assert info(renumbered)["path"] == "reuse" and renumbered.text.endswith("x = 6\n")

    patched = await llm.acomplete("Solve 2(x + 3) + 4 = x + 16 for x.")
    assert info(patched)["path"] == "patch" and info(patched)["verified"]
    assert patched.text.startswith("Expand the left side: 2(x + 3) + 4 = 2x + 10\n")
    assert patched.text.rstrip().endswith("6")
    assert info(patched)["backend_calls"] >= 1
    assert patched.raw["usage"]["prompt_tokens"] > 0  # type: ignore[index]  # OpenAI usage

    cat = "Return a JSON object describing a cat with keys name, age, color."
    split = split_chat([SYSTEM, user(cat)])
    assert split is not None
    assert cache.put(cat, CAT_ANSWER, namespace=llm.namespace, context=split[2]) is not None
    owner = "Return a JSON object describing a cat with keys name, age, color, owner."
    chat = llm.chat([SYSTEM, user(owner)])
    assert info(chat)["path"] == "patch" and info(chat)["verified"]
    data = json.loads(chat.message.content or "")
    assert list(data)[:3] == ["name", "age", "color"] and data["name"] == "Tom"
    assert sorted(data) == ["age", "color", "name", "owner"] and data["owner"]

    chunks = list(llm.stream_chat([SYSTEM, user(owner)]))
    *steps, last = chunks  # one delta per step, then the final response with `raw`
    assert info(last)["path"] == "exact" and all(c.raw is None for c in steps)
    assert "".join(c.delta or "" for c in chunks) == last.message.content
    assert chunks[-1].message.content == chat.message.content

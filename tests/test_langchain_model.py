"""The real local model through LangChain's own OpenAI client, StepCache as the global cache."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from langchain_core.globals import set_llm_cache

from stepcache_core import ChromaStore, MiniLMEmbedder, StepCache, TaskRegistry
from stepcache_core.tasks.json import JsonObjectTask
from stepcache_core.tasks.linear import LinearEquationTask
from stepcache_langchain import StepCacheLLMCache

pytestmark = pytest.mark.model


@pytest.fixture(scope="module")
def server() -> Iterator[Any]:
    pytest.importorskip("xllamacpp")
    pytest.importorskip("langchain_openai")
    from stepcache_core.backends.server import serve_local_model

    with serve_local_model() as srv:
        yield srv


def test_local_model_through_the_global_cache(server: Any, tmp_path: Path) -> None:
    from langchain_openai import ChatOpenAI

    model = ChatOpenAI(
        base_url=server.base_url,
        api_key=server.api_key,
        model=server.model,
        temperature=0,
        seed=0,
        max_tokens=256,
    )
    embedder = MiniLMEmbedder()
    step_cache = StepCache(
        ChromaStore(tmp_path / "chroma", embedder_name=embedder.name),
        embedder=embedder,
        tasks=TaskRegistry.with_builtins(),
    )
    set_llm_cache(StepCacheLLMCache(step_cache, patch_model=model))
    try:
        math = "Solve 3x + 5 = 20 for x."
        first = model.invoke(math)
        t0 = time.perf_counter()
        again = model.invoke(math)
        assert time.perf_counter() - t0 < 2.0
        assert again.content == first.content  # an exact hit: the stored message itself
        assert step_cache.stats()["paths"]["exact"] == 1

        linear = LinearEquationTask()
        for prompt in ("Solve 3x + 7 = 22 for x.", "Solve 3x - 5 = 20 for x."):
            answer = model.invoke(prompt)
            if "stepcache" in answer.response_metadata:  # served by the cache: it must be right
                spec = linear.detect(prompt)
                assert spec is not None and linear.integrity(str(answer.content), spec).ok

        json_task = JsonObjectTask()
        model.invoke("Return a JSON object with keys name and age for a person.")
        prompt = "Give me a JSON object with keys name and age describing a person."
        answer = model.invoke(prompt)
        if "stepcache" in answer.response_metadata:
            spec = json_task.detect(prompt)
            assert spec is not None and json_task.integrity(str(answer.content), spec).ok
    finally:
        set_llm_cache(None)

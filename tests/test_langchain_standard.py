"""langchain-tests' standard cache suites against StepCacheLLMCache on a Chroma store on disk."""

from __future__ import annotations

from pathlib import Path

import pytest
from langchain_core.caches import BaseCache
from langchain_core.globals import set_llm_cache
from langchain_core.language_models import FakeListLLM
from langchain_tests.integration_tests import AsyncCacheTestSuite, SyncCacheTestSuite

from stepcache_core import ChromaStore, Embedder, MiniLMEmbedder, StepCache, TaskRegistry
from stepcache_langchain import StepCacheLLMCache


def _cache(path: Path, embedder: Embedder) -> StepCacheLLMCache:
    store = ChromaStore(path / "chroma", embedder_name=embedder.name)
    return StepCacheLLMCache(
        StepCache(store, embedder=embedder, tasks=TaskRegistry.with_builtins())
    )


@pytest.fixture(scope="module")
def minilm() -> MiniLMEmbedder:
    return MiniLMEmbedder()


class TestSyncSuite(SyncCacheTestSuite):
    @pytest.fixture
    def cache(self, tmp_path: Path, hash_embedder: Embedder) -> BaseCache:
        return _cache(tmp_path, hash_embedder)


class TestAsyncSuite(AsyncCacheTestSuite):
    @pytest.fixture
    async def cache(self, tmp_path: Path, hash_embedder: Embedder) -> BaseCache:
        return _cache(tmp_path, hash_embedder)


class TestSyncSuiteMiniLM(SyncCacheTestSuite):
    """The same suite with the real bundled embedder."""

    @pytest.fixture
    def cache(self, tmp_path: Path, minilm: MiniLMEmbedder) -> BaseCache:
        return _cache(tmp_path, minilm)


def test_one_line_setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STEPCACHE_HOME", str(tmp_path))
    set_llm_cache(StepCacheLLMCache())  # the default engine: Chroma on disk, bundled MiniLM
    try:
        llm = FakeListLLM(responses=["hello", "unused"])
        assert llm.invoke("Say hello.") == llm.invoke("Say hello.") == "hello"
        assert llm.i == 1
    finally:
        set_llm_cache(None)
    assert (tmp_path / "chroma").is_dir()

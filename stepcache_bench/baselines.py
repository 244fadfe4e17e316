"""Arms for the caches users run today: GPTCache 0.1.44 itself and LangChain's `InMemoryCache`.

- `GPTCacheArm`: GPTCache configured as its README recommends (sqlite + faiss data manager,
  `SearchDistanceEvaluation`, its `get_prompt` pre-processing), with the benchmark's embedder
  wrapped as its embedding function (the same MiniLM as StepCache, dimension 384). One `Cache`
  object per arm and seed, never the global `gptcache.cache`; `get`/`put` of `gptcache.adapter.api`
  with `cache_obj=`. The stored value is a JSON object of the prompt and the answer, so the grader
  knows which prompt a served answer was cached for. `timings["lookup"]` is the `get()` time.
- `LangChainExactArm`: a minimal LangChain `LLM` whose `_call` is the benchmark backend, invoked
  with `set_llm_cache(InMemoryCache())` for the span of the call only (the previous global cache is
  put back afterwards): LangChain's exact (prompt, llm_string) cache.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from stepcache_bench.harness import Arm, MemoBackend, Served
from stepcache_core import Embedder


class _Detached:
    """Stands in for a closed GPTCache data manager: GPTCache registers an atexit hook that closes
    `cache.data_manager` again (writing its faiss index into a store the benchmark deleted)."""

    def close(self) -> None:
        return None


class GPTCacheArm(Arm):
    """GPTCache 0.1.44 with sqlite + faiss and `SearchDistanceEvaluation` at `similarity_threshold`
    (GPTCache's units: see `harness.GPTCACHE_THRESHOLDS`)."""

    def __init__(
        self,
        name: str,
        backend: MemoBackend,
        max_tokens: int | None,
        data_dir: Path,
        embedder: Embedder,
        similarity_threshold: float,
    ) -> None:
        from gptcache import Cache, Config  # type: ignore[import-untyped]
        from gptcache.manager import CacheBase, VectorBase, get_data_manager  # type: ignore[import-untyped]
        from gptcache.processor.pre import get_prompt  # type: ignore[import-untyped]
        from gptcache.similarity_evaluation import SearchDistanceEvaluation  # type: ignore[import-untyped]

        super().__init__(backend, max_tokens)
        self.name = name
        self.embedder = embedder
        data_dir.mkdir(parents=True, exist_ok=True)
        dimension = len(embedder.embed("dimension probe"))
        data_manager = get_data_manager(
            CacheBase("sqlite", sql_url=f"sqlite:///{data_dir / 'sqlite.db'}"),
            VectorBase("faiss", dimension=dimension, index_path=str(data_dir / "faiss.index")),
        )
        self.cache = Cache()
        self.cache.init(
            pre_embedding_func=get_prompt,
            embedding_func=self._embed,
            data_manager=data_manager,
            similarity_evaluation=SearchDistanceEvaluation(),
            config=Config(similarity_threshold=similarity_threshold),
        )

    def _embed(self, text: str, **_: Any) -> Any:
        import numpy as np

        return np.asarray(self.embedder.embed(text), dtype="float32")

    def serve(self, prompt: str) -> Served:
        from gptcache.adapter.api import get, put  # type: ignore[import-untyped]

        t0 = time.perf_counter()
        hit = get(prompt, cache_obj=self.cache)
        lookup = time.perf_counter() - t0
        if hit is not None:
            stored = json.loads(hit)
            same = " ".join(stored["prompt"].split()) == " ".join(prompt.split())
            return Served(
                stored["answer"],
                "exact" if same else "reuse",
                True,
                stored["prompt"],
                timings={"lookup": lookup},
            )
        c = self.backend.complete(prompt, self.max_tokens)
        put(prompt, json.dumps({"prompt": prompt, "answer": c.text}), cache_obj=self.cache)
        return Served(c.text, "miss", False, timings={"lookup": lookup})

    def close(self) -> None:
        manager = self.cache.data_manager
        self.cache.data_manager = _Detached()
        manager.close()


class LangChainExactArm(Arm):
    """LangChain's `InMemoryCache` through `set_llm_cache`, in front of the benchmark backend."""

    name = "langchain_exact"

    def __init__(self, backend: MemoBackend, max_tokens: int | None) -> None:
        from langchain_core.caches import InMemoryCache

        super().__init__(backend, max_tokens)
        self.cache = InMemoryCache()
        self.llm = _backend_llm(backend, max_tokens)

    def serve(self, prompt: str) -> Served:
        from langchain_core.globals import get_llm_cache, set_llm_cache

        before = self.backend.pending
        previous = get_llm_cache()
        set_llm_cache(self.cache)
        try:
            text = self.llm.invoke(prompt)
        finally:
            set_llm_cache(previous)
        if self.backend.pending > before:
            return Served(text, "miss", False)
        return Served(text, "exact", True, prompt)


def _backend_llm(backend: MemoBackend, max_tokens: int | None) -> Any:
    from langchain_core.callbacks import CallbackManagerForLLMRun
    from langchain_core.language_models.llms import LLM

    class BenchBackendLLM(LLM):
        """The benchmark's (memoized) backend as a LangChain LLM."""

        def _call(
            self,
            prompt: str,
            stop: list[str] | None = None,
            run_manager: CallbackManagerForLLMRun | None = None,
            **kwargs: Any,
        ) -> str:
            return backend.complete(prompt, max_tokens).text

        @property
        def _llm_type(self) -> str:
            return "stepcache-bench-backend"

        @property
        def _identifying_params(self) -> dict[str, Any]:
            return {"backend": backend.name, "max_tokens": max_tokens}

    return BenchBackendLLM()

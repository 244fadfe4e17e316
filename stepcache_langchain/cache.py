"""StepCache as a LangChain `BaseCache`: ``set_llm_cache(StepCacheLLMCache(...))``."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

from langchain_core.caches import BaseCache
from langchain_core.language_models import BaseChatModel, BaseLLM
from langchain_core.load import dumps
from langchain_core.messages import AIMessage
from langchain_core.outputs import ChatGeneration, Generation

from stepcache_core import Result, StepCache
from stepcache_langchain._prompt import Query, info, load_json, namespace_of, query_from_prompt
from stepcache_langchain.backend import LangChainBackend

log = logging.getLogger("stepcache.langchain")


class StepCacheLLMCache(BaseCache):
    """A LangChain LLM cache that reuses cached answers step by step, for LLMs and chat models.

    Exact repeats return the stored generations unchanged. A similar request of a known task
    (e.g. a linear equation with other constants) reuses the verified steps of a cached answer;
    steps that fail verification are patched with `patch_model` (called with caching off) or the
    task's deterministic fallback, else the lookup is a miss and LangChain calls the model.

    Args:
        step_cache: the engine; default ``StepCache()`` (Chroma under ``~/.cache/stepcache``).
        patch_model: the model that patches failing steps inside ``lookup`` (optional).
        tenant: keeps one user's or application's answers apart from another's.

    Answers are scoped by LangChain's ``llm_string``: two models, or one model at two temperatures,
    never share answers. A cache failure logs a warning and reads as a miss.
    """

    def __init__(
        self,
        step_cache: StepCache | None = None,
        *,
        patch_model: BaseChatModel | BaseLLM | None = None,
        tenant: str = "",
    ) -> None:
        self.step_cache = step_cache if step_cache is not None else StepCache()
        self.patch_model = patch_model
        self.tenant = tenant

    def lookup(self, prompt: str, llm_string: str) -> list[Generation] | None:
        """Generations for `prompt`: stored (exact), reused or patched; None on a miss."""
        query = query_from_prompt(prompt)
        try:
            if query is not None:
                args = self._scope(query, llm_string, backend=self._backend(query))
                return _generations(self.step_cache.lookup(query.text, **args), query)
        except Exception as exc:
            log.warning("stepcache: lookup failed, treated as a miss: %s", exc)
        return None

    async def alookup(self, prompt: str, llm_string: str) -> list[Generation] | None:
        """Async `lookup` (patch calls are awaited)."""
        query = query_from_prompt(prompt)
        try:
            if query is not None:
                args = self._scope(query, llm_string, backend=self._backend(query))
                return _generations(await self.step_cache.alookup(query.text, **args), query)
        except Exception as exc:
            log.warning("stepcache: lookup failed, treated as a miss: %s", exc)
        return None

    def update(self, prompt: str, llm_string: str, return_val: Sequence[Generation]) -> None:
        """Store the model's answer; the generations themselves are kept for exact repeats."""
        query = query_from_prompt(prompt)
        if query is None or not return_val:
            return
        try:
            self.step_cache.put(
                query.text,
                return_val[0].text,
                payload=dumps(list(return_val)),
                **self._scope(query, llm_string),
            )
        except Exception as exc:
            log.warning("stepcache: update failed, the answer is not cached: %s", exc)

    async def aupdate(self, prompt: str, llm_string: str, return_val: Sequence[Generation]) -> None:
        """Async `update` (the core's store write is blocking, so it runs in a worker thread)."""
        await asyncio.to_thread(self.update, prompt, llm_string, return_val)

    def clear(self, **kwargs: Any) -> None:
        """Delete this tenant's entries; ``llm_string=...`` limits it to one model's answers."""
        llm_string = kwargs.get("llm_string")
        namespace = namespace_of(llm_string) if isinstance(llm_string, str) else None
        self.step_cache.clear(namespace=namespace, tenant=self.tenant)

    async def aclear(self, **kwargs: Any) -> None:
        """Async `clear` (blocking store call in a worker thread)."""
        await asyncio.to_thread(self.clear, **kwargs)

    def _scope(self, query: Query, llm_string: str, **extra: Any) -> dict[str, Any]:
        scope = {"namespace": namespace_of(llm_string), "tenant": self.tenant}
        return {**scope, "context": query.context, **extra}

    def _backend(self, query: Query) -> LangChainBackend | None:
        if self.patch_model is None:
            return None
        return LangChainBackend(self.patch_model, query.messages, query.index)


def _generations(result: Result | None, query: Query) -> list[Generation] | None:
    """Stored generations when the stored answer is served, else fresh ones from the text."""
    if result is None:
        return None
    if result.payload is not None:  # exact hit (or opt-in semantic reuse): the stored answer
        value = load_json(result.payload, "core")
        if isinstance(value, list) and all(isinstance(g, Generation) for g in value):
            return value
        raise ValueError("the stored payload is not a list of generations")
    meta = {"stepcache": info(result)}
    if query.messages:
        message = AIMessage(content=result.text, response_metadata=meta)
        return [ChatGeneration(message=message, generation_info=meta)]
    return [Generation(text=result.text, generation_info=meta)]

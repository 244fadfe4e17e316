"""StepCache as a LangChain `BaseCache`: ``set_llm_cache(StepCacheLLMCache(...))``."""

import asyncio
from collections.abc import Sequence
from dataclasses import KW_ONLY, dataclass, field
from typing import Any

from langchain_core.caches import BaseCache
from langchain_core.language_models import BaseChatModel, BaseLLM
from langchain_core.messages import AIMessage
from langchain_core.outputs import ChatGeneration, Generation

from stepcache_core import Result, StepCache
from stepcache_core.exact import get_exact, put_exact
from stepcache_core.miss_clock import MissClock
from stepcache_langchain._prompt import Query, load_list, namespace_of, query_from_prompt, warned
from stepcache_langchain.backend import LangChainBackend
from stepcache_langchain.call_arguments import with_call_arguments
from stepcache_langchain.exact import (
    exact_only_llm_string,
    from_payload,
    more_than_text,
    to_payload,
)


@dataclass(eq=False)
class StepCacheLLMCache(BaseCache):
    """A LangChain LLM cache that reuses cached answers step by step, for LLMs and chat models.

    Exact repeats return the stored generations unchanged. A similar request of a known task
    (e.g. a linear equation with other constants) reuses the verified steps of a cached answer;
    steps that fail verification are patched with `patch_model` (called with caching off) or the
    task's deterministic fallback, else the lookup is a miss and LangChain calls the model.

    Attributes:
        step_cache: the engine; default ``StepCache()`` (Chroma under ``~/.cache/stepcache``).
        patch_model: the model that patches failing steps inside ``lookup`` (optional).
        tenant: keeps one user's or application's answers apart from another's.

    Every generation ``lookup`` returns carries ``Result.summary()`` under the key
    ``"stepcache"`` in its ``generation_info`` (and, for chat models, its message's
    ``response_metadata``). A miss or a skip returns None and LangChain calls the model itself:
    its answer never passes through the cache, so it carries no ``"stepcache"`` metadata (it is
    still counted in `StepCache.stats`); use `StepCacheChatModel` to get it on every answer.

    Answers are scoped by LangChain's ``llm_string``: two models, or one model at two temperatures,
    never share answers. A text LLM's arguments given at call time (``llm.bind(max_tokens=3)``),
    which LangChain leaves out of that string, are added to it (`with_call_arguments`). A cache
    failure logs a warning and reads as a miss. ``aclear`` is `BaseCache`'s: `clear` in a worker
    thread.
    """

    step_cache: StepCache = field(default_factory=StepCache)
    _: KW_ONLY
    patch_model: BaseChatModel | BaseLLM | None = None
    tenant: str = ""

    _missed: MissClock = field(default_factory=MissClock, init=False, repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.step_cache, StepCache):
            raise TypeError(f"step_cache must be a StepCache, not {type(self.step_cache).__name__}")

    def lookup(self, prompt: str, llm_string: str) -> list[Generation] | None:
        """Generations for `prompt`: stored (exact), reused or patched; None on a miss."""
        with warned("lookup failed, treated as a miss"):
            if (query := query_from_prompt(prompt)) is not None:
                keyed = with_call_arguments(llm_string)
                if exact_only_llm_string(llm_string):
                    return self._exact(prompt, query, keyed)
                result = self.step_cache.lookup(query.text, **self._args(query, keyed))
                return self._served(prompt, keyed, result, query)
        return None

    async def alookup(self, prompt: str, llm_string: str) -> list[Generation] | None:
        """Async `lookup` (patch calls are awaited)."""
        with warned("lookup failed, treated as a miss"):
            if (query := query_from_prompt(prompt)) is not None:
                keyed = with_call_arguments(llm_string)
                if exact_only_llm_string(llm_string):
                    return self._exact(prompt, query, keyed)
                result = await self.step_cache.alookup(query.text, **self._args(query, keyed))
                return self._served(prompt, keyed, result, query)
        return None

    def update(self, prompt: str, llm_string: str, return_val: Sequence[Generation]) -> None:
        """Store the model's answer; the generations themselves are kept for exact repeats.

        An answer to an exact-only request, or one with tool calls or non-text content, is
        stored only when its generations round-trip unchanged, and for that very request only.
        """
        self._update(prompt, llm_string, with_call_arguments(llm_string), return_val)

    async def aupdate(self, prompt: str, llm_string: str, return_val: Sequence[Generation]) -> None:
        """`update` in a worker thread (the call's arguments are read here, in the caller's)."""
        keyed = with_call_arguments(llm_string)
        await asyncio.to_thread(self._update, prompt, llm_string, keyed, return_val)

    def _update(
        self, prompt: str, llm_string: str, keyed: str, return_val: Sequence[Generation]
    ) -> None:
        """`update` with `keyed`, the `llm_string` that keys the answer (call arguments added)."""
        with warned("update failed, the answer is not cached"):
            if (query := query_from_prompt(prompt)) is None or not return_val:
                return
            scope = query.scope(keyed, self.tenant)
            payload = to_payload(return_val)
            cost = _cost(return_val[0], self._missed.seconds((prompt, keyed)))
            text = return_val[0].text
            if exact_only_llm_string(llm_string) or more_than_text(return_val):
                if payload is not None:  # lossless or not at all
                    put_exact(self.step_cache, query.text, text, payload, **scope, **cost)
            else:  # without a lossless payload an exact repeat gets the text back
                self.step_cache.put(query.text, text, payload=payload, **scope, **cost)

    def _served(
        self, prompt: str, llm_string: str, result: Result | None, query: Query
    ) -> list[Generation] | None:
        """`result` as generations; on a miss, note when the model was asked (its seconds)."""
        if result is None:
            self._missed.start((prompt, llm_string))
        return None if result is None else _generations(result, query)

    def clear(self, *, llm_string: str | None = None, **kwargs: Any) -> None:
        """Delete this tenant's entries; `llm_string` limits it to one model's answers."""
        namespace = None if llm_string is None else namespace_of(llm_string)
        self.step_cache.clear(namespace=namespace, tenant=self.tenant)

    def _exact(self, prompt: str, query: Query, llm_string: str) -> list[Generation] | None:
        """The stored answer of this very exact-only request (tools or a response format bound),
        unchanged but for ``generation_info["stepcache"]``; else None: the model answers. Both
        are counted (`stats()`, the store's counters): a hit as ``exact``, else a ``miss``."""
        scope = query.scope(llm_string, self.tenant)
        found = get_exact(self.step_cache, query.text, **scope, count_miss=True)
        if found is None or found.payload is None:
            return self._served(prompt, llm_string, None, query)  # the model answers
        return [_with_summary(g, found) for g in from_payload(found.payload)]

    def _args(self, query: Query, llm_string: str) -> dict[str, Any]:
        """The engine's lookup arguments: the scope, and the patch model as a backend."""
        model = self.patch_model
        backend = None if model is None else LangChainBackend(model, query.messages, query.index)
        return {**query.scope(llm_string, self.tenant), "backend": backend}


def _cost(generation: Generation, seconds: float) -> dict[str, Any]:
    """What the model spent on `generation`: its tokens (chat usage metadata) and the `seconds`
    since the lookup that missed, as `StepCache.put` takes them."""
    usage = getattr(getattr(generation, "message", None), "usage_metadata", None) or {}
    return {
        "prompt_tokens": int(usage.get("input_tokens", 0)),
        "completion_tokens": int(usage.get("output_tokens", 0)),
        "seconds": seconds,
    }


def _generations(result: Result, query: Query) -> list[Generation]:
    """Stored generations when the stored answer is served, else fresh ones from the text.

    Stored generations come back exactly as the model produced them (LangChain's cache contract:
    langchain-tests' cache suites compare them whole), so an exact hit of a stored model answer
    carries no ``stepcache`` metadata; everything the engine builds (reuse, patch) does."""
    meta = {"stepcache": result.summary()}
    if result.payload is not None:  # exact hit (or opt-in semantic reuse): the stored answer
        return load_list(result.payload, "core", Generation)
    if query.messages:
        message = AIMessage(content=result.text, response_metadata=meta)
        return [ChatGeneration(message=message, generation_info=meta)]
    return [Generation(text=result.text, generation_info=meta)]


def _with_summary(generation: Generation, result: Result) -> Generation:
    """`generation` with how it was served (``"stepcache"``: `result.summary()`) added to its
    ``generation_info`` and, for a chat generation, to its message's ``response_metadata``;
    nothing else changed."""
    meta = {"stepcache": result.summary()}
    info = {**(generation.generation_info or {}), **meta}
    if isinstance(generation, ChatGeneration):
        message = generation.message
        response = {**message.response_metadata, **meta}
        message = message.model_copy(update={"response_metadata": response})
        return generation.model_copy(update={"generation_info": info, "message": message})
    return generation.model_copy(update={"generation_info": info})

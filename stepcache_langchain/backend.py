"""A LangChain LLM or chat model as a StepCache `Backend`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from langchain_core.callbacks import CallbackManager, Callbacks
from langchain_core.callbacks.manager import BaseRunManager
from langchain_core.language_models import BaseChatModel, BaseLLM
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from langchain_core.outputs import LLMResult
from langchain_core.runnables import RunnableConfig

from stepcache_core import Backend, Completion


class LangChainBackend(Backend):
    """Calls `model` with LangChain caching off (``cache=False``): no recursion into a cache.

    Chat models get the request's conversation (`messages`) with the message at `index` replaced
    by the engine's prompt; other messages (system prompt, earlier turns) are kept. Token counts
    come from ``usage_metadata`` (chat) or ``llm_output["token_usage"]`` (LLMs). `last` holds the
    model's latest chat message, tool calls and metadata included.
    """

    def __init__(
        self,
        model: BaseChatModel | BaseLLM,
        messages: Sequence[BaseMessage] = (),
        index: int = -1,
        *,
        callbacks: Callbacks = None,
        **kwargs: Any,
    ) -> None:
        self.model = model if model.cache is False else model.model_copy(update={"cache": False})
        self.name = f"langchain:{model._llm_type}"
        self._messages = list(messages)
        self._index = index
        self._callbacks = callbacks
        self._config = RunnableConfig(callbacks=callbacks)
        self._kwargs = kwargs
        self.last: AIMessage | None = None

    def complete(self, prompt: str, max_tokens: int | None = None) -> Completion:
        kwargs = self._kw(max_tokens)
        if isinstance(self.model, BaseChatModel):
            return self._chat(self.model.invoke(self._chat_input(prompt), self._config, **kwargs))
        return _llm(self.model.generate([prompt], callbacks=self._callbacks, **kwargs))

    async def acomplete(self, prompt: str, max_tokens: int | None = None) -> Completion:
        kwargs = self._kw(max_tokens)
        if isinstance(self.model, BaseChatModel):
            chat_input = self._chat_input(prompt)
            return self._chat(await self.model.ainvoke(chat_input, self._config, **kwargs))
        return _llm(await self.model.agenerate([prompt], callbacks=self._callbacks, **kwargs))

    def _kw(self, max_tokens: int | None) -> dict[str, Any]:
        return self._kwargs if max_tokens is None else {**self._kwargs, "max_tokens": max_tokens}

    def _chat_input(self, prompt: str) -> list[BaseMessage]:
        if not self._messages:
            return [HumanMessage(prompt)]
        messages = list(self._messages)
        asked = messages[self._index]
        if asked.text != prompt:  # a patch prompt: keep the conversation around it
            messages[self._index] = asked.model_copy(update={"content": prompt})
        return messages

    def _chat(self, message: BaseMessage) -> Completion:
        usage = message.usage_metadata if isinstance(message, AIMessage) else None
        self.last = message if isinstance(message, AIMessage) else self.last
        tokens = (usage["input_tokens"], usage["output_tokens"]) if usage else (0, 0)
        return Completion(message.text, *tokens, message.response_metadata.get("finish_reason"))


def child_callbacks(run_manager: BaseRunManager | None) -> CallbackManager | None:
    """Callbacks for a model called inside `run_manager`'s run, so its run nests under it."""
    if run_manager is None:
        return None
    manager = CallbackManager(handlers=[], parent_run_id=run_manager.run_id)
    manager.set_handlers(run_manager.inheritable_handlers)
    manager.add_tags(run_manager.inheritable_tags)
    manager.add_metadata(run_manager.inheritable_metadata)
    return manager


def _llm(result: LLMResult) -> Completion:
    generation = result.generations[0][0]
    usage = (result.llm_output or {}).get("token_usage") or {}
    return Completion(
        generation.text,
        int(usage.get("prompt_tokens", 0)),
        int(usage.get("completion_tokens", 0)),
        (generation.generation_info or {}).get("finish_reason"),
    )

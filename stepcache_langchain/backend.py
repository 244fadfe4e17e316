"""A LangChain LLM or chat model as a StepCache `Backend`."""

from collections.abc import Sequence
from typing import Any, Generic, TypeVar, cast

from langchain_core.callbacks import BaseRunManager, CallbackManager, Callbacks
from langchain_core.language_models import BaseChatModel, BaseLLM
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, HumanMessage
from langchain_core.messages.utils import message_chunk_to_message
from langchain_core.outputs import LLMResult
from langchain_core.runnables import RunnableConfig

from stepcache_core import Backend, Completion, TextListener

M = TypeVar("M", bound=BaseChatModel | BaseLLM)


class LangChainBackend(Backend, Generic[M]):
    """Calls `model` with LangChain caching off (``cache=False``): no recursion into a cache.

    Chat models get the request's conversation (`messages`) with the message at `index` replaced
    by the engine's prompt; other messages (system prompt, earlier turns) are kept. Token counts
    come from ``usage_metadata`` (chat) or ``llm_output["token_usage"]`` (LLMs). `last` holds the
    model's latest chat message, tool calls and metadata included (streamed chunks added up).
    Every call gets `config` (the callbacks) and `kwargs` (``stop`` and other model arguments);
    `model` is the cache-free copy, for callers that call it themselves with those.
    """

    def __init__(
        self,
        model: M,
        messages: Sequence[BaseMessage] = (),
        index: int = -1,
        *,
        callbacks: Callbacks = None,
        **kwargs: Any,
    ) -> None:
        self.model = cast(M, model.model_copy(update={"cache": False}))
        self.name = f"langchain:{model._llm_type}"
        self._messages = list(messages) or [HumanMessage("")]
        self._index = index
        self._callbacks = callbacks
        self.config = RunnableConfig(callbacks=callbacks)
        self.kwargs = kwargs
        self.last: AIMessage | None = None

    def complete(self, prompt: str, max_tokens: int | None = None) -> Completion:
        kwargs = self._kw(max_tokens)
        if isinstance(self.model, BaseChatModel):
            return self._chat(self.model.invoke(self._input(prompt), self.config, **kwargs))
        return _llm(self.model.generate([prompt], callbacks=self._callbacks, **kwargs))

    async def acomplete(self, prompt: str, max_tokens: int | None = None) -> Completion:
        kwargs = self._kw(max_tokens)
        if isinstance(self.model, BaseChatModel):
            return self._chat(await self.model.ainvoke(self._input(prompt), self.config, **kwargs))
        return _llm(await self.model.agenerate([prompt], callbacks=self._callbacks, **kwargs))

    def complete_streaming(
        self, prompt: str, max_tokens: int | None, on_text: TextListener
    ) -> Completion:
        """`complete` through the model's ``stream``, passing on each piece of text."""
        pieces = self.model.stream(self._input(prompt), self.config, **self._kw(max_tokens))
        return self._joined([_passed_on(piece, on_text) for piece in pieces])

    async def acomplete_streaming(
        self, prompt: str, max_tokens: int | None, on_text: TextListener
    ) -> Completion:
        """Async `complete_streaming`, through the model's ``astream``."""
        pieces = self.model.astream(self._input(prompt), self.config, **self._kw(max_tokens))
        return self._joined([_passed_on(piece, on_text) async for piece in pieces])

    def _kw(self, max_tokens: int | None) -> dict[str, Any]:
        return self.kwargs if max_tokens is None else {**self.kwargs, "max_tokens": max_tokens}

    def _input(self, prompt: str) -> str | list[BaseMessage]:
        """`prompt` for an LLM; for a chat model the conversation, `prompt` at `index`."""
        if isinstance(self.model, BaseLLM):
            return prompt
        messages = list(self._messages)
        if messages[self._index].text != prompt:  # a patch prompt: keep the conversation around it
            messages[self._index] = messages[self._index].model_copy(update={"content": prompt})
        return messages

    def _chat(self, message: BaseMessage) -> Completion:
        usage = message.usage_metadata if isinstance(message, AIMessage) else None
        self.last = message if isinstance(message, AIMessage) else self.last
        tokens = (usage["input_tokens"], usage["output_tokens"]) if usage else (0, 0)
        return Completion(message.text, *tokens, message.response_metadata.get("finish_reason"))

    def _joined(self, chunks: list[AIMessageChunk]) -> Completion:
        """The streamed answer: the chunks added up (a chat model's message becomes `last`)."""
        if not chunks:
            return Completion("")
        message = message_chunk_to_message(sum(chunks[1:], chunks[0]))
        return Completion(message.text) if isinstance(self.model, BaseLLM) else self._chat(message)


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
    tokens = int(usage.get("prompt_tokens", 0)), int(usage.get("completion_tokens", 0))
    finish_reason = (generation.generation_info or {}).get("finish_reason")
    return Completion(generation.text, *tokens, finish_reason)


def _passed_on(piece: AIMessageChunk | str, on_text: TextListener) -> AIMessageChunk:
    """`piece` (an LLM's text as a chunk), after handing its text, unless empty, to `on_text`."""
    chunk = AIMessageChunk(content=piece) if isinstance(piece, str) else piece
    if chunk.text:
        on_text(chunk.text)
    return chunk

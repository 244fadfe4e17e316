"""`StepCacheLLM`: a LlamaIndex LLM that answers through StepCache, wrapping any LlamaIndex LLM.

Why one module (over ~500 lines): `StepCacheLLM` must implement LlamaIndex's whole LLM surface
(complete and chat, sync and async, streaming or not), each method a thin shim over the private
helpers here (the backend adapter, event muting, the stream converters); those helpers serve this
class only, and moving them out would leave a module of private functions with one user.

The wrapped model answers misses, patches and repairs. Each user call reports one LLM start/end
event pair (callback manager and instrumentation); the wrapped model's own calls are muted.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Awaitable,
    Callable,
    Generator,
    Iterator,
    Mapping,
    Sequence,
)
from contextlib import contextmanager, suppress
from contextvars import ContextVar
from functools import partial
from typing import Any, TypeVar, cast

from llama_index.core.base.llms.types import (
    ChatMessage,
    ChatResponse,
    ChatResponseAsyncGen,
    ChatResponseGen,
    CompletionResponse,
    CompletionResponseAsyncGen,
    CompletionResponseGen,
    LLMMetadata,
    MessageRole,
    TextBlock,
)
from llama_index.core.bridge.pydantic import Field, PrivateAttr
from llama_index.core.callbacks import CallbackManager
from llama_index.core.llms import LLM
from llama_index.core.llms import callbacks as llm_callbacks
from llama_index.core.llms.function_calling import FunctionCallingLLM

from stepcache_core import (
    Backend,
    Completion,
    InvalidPromptError,
    Path,
    Result,
    StepCache,
    StepOutcome,
    TextListener,
)
from stepcache_core.exact import get_exact, passed_through, put_exact
from stepcache_core.streaming import StepOrResult, astream_steps, stream_steps
from stepcache_llamaindex.exact import decode, encode, exact_only, structured, with_summary

F = TypeVar("F", bound=Callable[..., Any])
R = TypeVar("R")
OnStep = Callable[[StepOutcome], None] | None
_Response = CompletionResponse | ChatResponse
#: A completion's prompt or a chat's messages.
Request = str | Sequence[ChatMessage]

#: Fields of a wrapped model that shape its answers (a system prompt it may add itself among
#: them): part of the cache namespace. Endpoints (`api_base`) and credentials are left out.
GENERATION_FIELDS = (
    "model", "model_name", "temperature", "top_p", "top_k", "min_p", "max_tokens",
    "max_new_tokens", "seed", "stop", "frequency_penalty", "presence_penalty",
    "repetition_penalty", "repeat_penalty", "reasoning_effort", "response_format",
    "additional_kwargs", "system_prompt", "query_wrapper_prompt",
)  # fmt: skip
#: Prompt-shaping settings the wrapper takes over from the wrapped model, so `predict` matches.
_INHERITED = (
    "system_prompt", "messages_to_prompt", "completion_to_prompt", "output_parser",
    "query_wrapper_prompt", "pydantic_program_mode",
)  # fmt: skip

_QUIET: ContextVar[bool] = ContextVar("stepcache_llamaindex_quiet", default=False)


def _on_completion(f: F) -> F:
    return cast(F, llm_callbacks.llm_completion_callback()(f))


def _on_chat(f: F) -> F:
    return cast(F, llm_callbacks.llm_chat_callback()(f))


@contextmanager
def _quiet() -> Iterator[None]:
    """Mute LLM events in this context: the wrapped model's calls are part of the user's call."""
    _install_quiet_events()
    token = _QUIET.set(True)
    try:
        yield
    finally:
        _QUIET.reset(token)


def _install_quiet_events() -> None:
    """Make the LLM-callbacks dispatcher drop events while `_quiet` is active (idempotent).

    LlamaIndex emits every LLM start/end event through this one dispatcher, with no per-call
    switch; outside `_quiet` the patched `event` behaves exactly as before.
    """
    dispatcher = llm_callbacks.dispatcher
    loud = dispatcher.event
    if getattr(loud, "_stepcache_quiet", False):
        return

    def event(event: Any, **kwargs: Any) -> None:
        if not _QUIET.get():
            loud(event, **kwargs)

    event._stepcache_quiet = True  # type: ignore[attr-defined]
    object.__setattr__(dispatcher, "event", event)


def _digest(value: Any) -> str:
    blob = json.dumps(value, sort_keys=True, default=repr, ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


#: Stand for the user's text and a conversation when reading what a model's templates add.
_PROBE = "\x00stepcache-probe\x00"
_CHAT = [ChatMessage(role=r, content=_PROBE + r) for r in ("system", "user", "assistant", "user")]


def _formats_itself(llm: LLM) -> bool:
    """True when `llm` adds text around an unformatted completion (a system prompt, a query
    wrapper, a completion template): ``formatted=True``, which skips it, is another request."""
    try:
        wraps = bool(llm.system_prompt or llm.query_wrapper_prompt)
        return wraps or (llm.completion_to_prompt or str)(_PROBE) != _PROBE
    except Exception:
        return True


def model_namespace(llm: LLM) -> str:
    """The cache namespace of `llm`: its class, metadata, generation parameters, and the prompt
    formatting it may apply inside its own `complete` and `chat` (HuggingFaceLLM its system
    prompt, llama.cpp models their chat template): its system prompt and query wrapper
    (`GENERATION_FIELDS`) and what its `completion_to_prompt` and `messages_to_prompt` make of a
    probe, so two models that wrap the same text differently are never asked the same request."""
    fields = type(llm).model_fields
    params = {k: getattr(llm, k) for k in GENERATION_FIELDS if k in fields}
    formatters: list[Any] = [llm.completion_to_prompt, llm.messages_to_prompt]
    try:
        params["templates"] = [formatters[0](_PROBE), formatters[1](_CHAT)]
    except Exception:  # a template that cannot read the probe (or none): named instead
        params["templates"] = [repr(getattr(f, "__qualname__", f)) for f in formatters]
    meta = llm.metadata
    identity = {"class": llm.class_name(), "metadata": meta.model_dump(mode="json"), **params}
    return f"llamaindex:{llm.class_name()}:{meta.model_name}:{_digest(identity)[:16]}"


def _usage(response: _Response) -> tuple[int, int]:
    """Prompt and completion tokens from the response's raw usage (dict or object), else 0."""
    usage = _field(response.raw, "usage")
    return int(_field(usage, "prompt_tokens") or 0), int(_field(usage, "completion_tokens") or 0)


def _field(value: Any, name: str) -> Any:
    """`value[name]` of a mapping, else `value`'s attribute `name`; None when it has neither."""
    return value.get(name) if isinstance(value, Mapping) else getattr(value, name, None)


def _text(response: _Response) -> str:
    text = response.text if isinstance(response, CompletionResponse) else response.message.content
    return text or ""


def _completion(response: _Response) -> Completion:
    return Completion(_text(response), *_usage(response))


class _Pieces:
    """Reads a wrapped model's stream, handing each new piece of text to `on_text`: the pieces
    join to the resulting Completion's text; its tokens are the last response's."""

    def __init__(self, on_text: TextListener) -> None:
        self.on_text = on_text
        self.completion = Completion("")

    def add(self, response: _Response) -> None:
        """Take the response's delta, else what its text adds to the text so far."""
        text = self.completion.text
        piece = response.delta if response.delta is not None else _text(response)[len(text) :]
        self.completion = Completion(text + piece, *_usage(response))
        if piece:
            self.on_text(piece)

    def drain(self, stream: Iterator[_Response]) -> Completion:
        for response in stream:
            self.add(response)
        return self.completion

    async def adrain(self, stream: AsyncIterator[_Response]) -> Completion:
        async for response in stream:
            self.add(response)
        return self.completion


class LlamaIndexBackend(Backend):
    """A LlamaIndex LLM as a StepCache backend: `complete`, or `chat` after `history` when given.

    In a chat the prompt is sent as a user message with `asked` as its ``additional_kwargs``
    (the user's own message's extra fields, e.g. a ``name``), so the model receives the request
    as the app sent it.

    Calls, streamed or not, are muted (no instrumentation LLM events): they are reported as part
    of the wrapper's call (`StepCacheLLM` also gives its copy a silent callback manager).
    """

    def __init__(
        self,
        llm: LLM,
        history: Sequence[ChatMessage] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        asked: Mapping[str, Any] | None = None,
    ) -> None:
        self.llm = llm
        self.history = history
        self.kwargs = dict(kwargs or {})
        self.asked = dict(asked or {})
        self.name = f"llamaindex:{llm.class_name()}:{llm.metadata.model_name}"

    def _call(self, method: str, prompt: str, max_tokens: int | None) -> Callable[[], Any]:
        """The wrapped model's `method` (a ``complete`` one; its ``chat`` twin in a chat),
        ready to call with the request built from `prompt`."""
        kwargs = dict(self.kwargs)
        if max_tokens is not None:
            kwargs["max_tokens"] = max_tokens
        if self.history is None:
            return partial(getattr(self.llm, method), prompt, **kwargs)
        kwargs.pop("formatted", None)
        asked = ChatMessage(role=MessageRole.USER, content=prompt, additional_kwargs=self.asked)
        chat = getattr(self.llm, method.replace("complete", "chat"))
        return partial(chat, [*self.history, asked], **kwargs)

    def complete(self, prompt: str, max_tokens: int | None = None) -> Completion:
        call = self._call("complete", prompt, max_tokens)
        with _quiet():
            return _completion(call())

    async def acomplete(self, prompt: str, max_tokens: int | None = None) -> Completion:
        call = self._call("acomplete", prompt, max_tokens)
        with _quiet():
            return _completion(await call())

    def complete_streaming(
        self, prompt: str, max_tokens: int | None, on_text: TextListener
    ) -> Completion:
        call = self._call("stream_complete", prompt, max_tokens)
        with _quiet():
            return _Pieces(on_text).drain(call())

    async def acomplete_streaming(
        self, prompt: str, max_tokens: int | None, on_text: TextListener
    ) -> Completion:
        call = self._call("astream_complete", prompt, max_tokens)
        with _quiet():
            return await _Pieces(on_text).adrain(await call())


def split_chat(messages: Sequence[ChatMessage]) -> tuple[str, list[ChatMessage], str] | None:
    """(last user message, earlier messages, context key), or None when not cacheable.

    Cacheable: the last message is the user's and every message is plain text. The context key
    hashes the earlier messages' roles, texts and extra fields, and the last message's extra
    fields (its ``name``...: the model receives them too); chats never share completions'.
    """
    if not messages or messages[-1].role != MessageRole.USER:
        return None
    if any(not isinstance(b, TextBlock) for m in messages for b in m.blocks):
        return None
    *history, last = messages
    context: list[Any] = [[m.role.value, m.content or "", m.additional_kwargs] for m in history]
    if last.additional_kwargs:
        context.append(["asked", last.additional_kwargs])
    return last.content or "", history, "chat:" + _digest(context)


def _raw(result: Result) -> dict[str, Any]:
    usage = {"prompt_tokens": result.prompt_tokens, "completion_tokens": result.completion_tokens}
    usage["total_tokens"] = result.total_tokens
    return {"usage": usage, "stepcache": result.summary()}


def _meta(raw: Any) -> dict[str, Any]:
    """``raw`` and, when it says how the answer was served (``"stepcache"``, on every response:
    docs/metadata.md), ``additional_kwargs`` with that."""
    if isinstance(raw, Mapping) and "stepcache" in raw:
        return {"raw": raw, "additional_kwargs": {"stepcache": raw["stepcache"]}}
    return {"raw": raw}


def _bypassed(answer: Completion) -> Result:
    """The result of a request the cache cannot take, answered by the wrapped model directly."""
    return Result(
        answer.text, Path.MISS, prompt_tokens=answer.prompt_tokens,
        completion_tokens=answer.completion_tokens, backend_calls=1, reason="not cacheable",
    )  # fmt: skip


class StepCacheLLM(LLM):
    """Wrap any LlamaIndex LLM with StepCache: `StepCacheLLM(llm=OpenAI(...), cache=StepCache())`.

    Completions, chats, streams and their async variants reuse verified cached steps and ask
    the wrapped model only for what is missing. Chats are keyed on the last user message; the
    system prompt and earlier turns must match exactly. The wrapped model is copied once (with
    a silent callback manager) to serve as the backend: wrap again after changing its settings.
    """

    llm: LLM = Field(description="The wrapped model: answers misses, patches and repairs.")

    def __new__(cls, *args: Any, **kwargs: Any) -> StepCacheLLM:
        """A `StepCacheFunctionCallingLLM` when the wrapped model calls functions (its class and
        its metadata say so), else a plain `StepCacheLLM`."""
        llm = kwargs.get("llm", args[0] if args else None)
        calls = isinstance(llm, FunctionCallingLLM) and llm.metadata.is_function_calling_model
        if cls is StepCacheLLM and calls:
            cls = StepCacheFunctionCallingLLM
        return super().__new__(cls)

    cache: StepCache = Field(exclude=True, description="The StepCache that answers.")
    tenant: str = Field(default="", description="Keeps this tenant's entries apart.")
    _backend_llm: LLM = PrivateAttr()
    _namespace: str = PrivateAttr()

    def __init__(self, llm: LLM, cache: StepCache, tenant: str = "", **kwargs: Any) -> None:
        for name in _INHERITED:
            kwargs.setdefault(name, getattr(llm, name, None))
        kwargs.setdefault("callback_manager", llm.callback_manager)
        kwargs.update(llm=llm, cache=cache, tenant=tenant)
        super().__init__(**kwargs)
        self._backend_llm = llm.model_copy(update={"callback_manager": CallbackManager([])})
        self._namespace = model_namespace(self._backend_llm)

    @classmethod
    def class_name(cls) -> str:
        return "StepCacheLLM"

    @property
    def metadata(self) -> LLMMetadata:
        return self.llm.metadata

    @property
    def namespace(self) -> str:
        """The cache namespace of the wrapped model (pass it to `StepCache.clear`)."""
        return self._namespace

    def to_payload(self) -> dict[str, Any]:
        return {**super().to_payload(), "wrapped": self.llm.class_name()}

    # ------------------------------------------------------------------ requests

    def _plan(
        self, request: Request, kwargs: dict[str, Any]
    ) -> tuple[str, LlamaIndexBackend, dict[str, Any]] | None:
        """(prompt, backend, `generate` keywords), or None for a chat that cannot be cached.

        The namespace is the wrapped model's, scoped by the call's kwargs; ``formatted=True``
        counts only for a model that formats completions itself (`_formats_itself`).
        """
        split = (request, None, "") if isinstance(request, str) else split_chat(request)
        if split is None:
            return None
        prompt, history, context = split
        formats = kwargs.get("formatted") and _formats_itself(self._backend_llm)
        extra = {k: v for k, v in kwargs.items() if k != "formatted" or formats}
        scope = f"{self._namespace}:{_digest(extra)[:12]}" if extra else self._namespace
        asked = None if isinstance(request, str) else request[-1].additional_kwargs
        backend = LlamaIndexBackend(self._backend_llm, history, kwargs, asked)
        return prompt, backend, {"namespace": scope, "tenant": self.tenant, "context": context}

    def _answer(self, request: Request, kwargs: dict[str, Any], on_step: OnStep = None) -> Result:
        """Answer a completion (`kwargs` hold `formatted`) or a chat through the cache; what
        the cache cannot take goes to the wrapped model directly."""
        plan = self._plan(request, kwargs)
        if plan is not None:
            prompt, backend, options = plan
            with suppress(InvalidPromptError):
                return self.cache.generate(prompt, backend, on_step=on_step, **options)
        with _quiet():
            return _bypassed(_completion(self._direct("complete", request, kwargs)()))

    async def _aanswer(
        self, request: Request, kwargs: dict[str, Any], on_step: OnStep = None
    ) -> Result:
        plan = self._plan(request, kwargs)
        if plan is not None:
            prompt, backend, options = plan
            with suppress(InvalidPromptError):
                return await self.cache.agenerate(prompt, backend, on_step=on_step, **options)
        with _quiet():
            return _bypassed(_completion(await self._direct("acomplete", request, kwargs)()))

    def _direct(self, method: str, request: Request, kwargs: dict[str, Any]) -> Callable[[], Any]:
        """The wrapped model's own `method` (a ``complete`` one, or its ``chat`` twin for a
        chat), bound to `request` and `kwargs`."""
        name = method if isinstance(request, str) else method.replace("complete", "chat")
        return partial(getattr(self._backend_llm, name), request, **kwargs)

    def _exact_key(self, request: Request, kwargs: dict[str, Any]) -> dict[str, str] | None:
        """The exact-only key of a call with tools, a response format or inside a structured
        prediction (None for any other call): the whole request and every argument."""
        if not exact_only(kwargs):
            return None
        sent = request if isinstance(request, str) else [m.model_dump_json() for m in request]
        extra = {k: v for k, v in kwargs.items() if k != "formatted"}
        namespace = f"{self._namespace}:exact:{_digest(extra)[:16]}"
        return {"prompt": "exact:" + _digest(sent), "namespace": namespace, "tenant": self.tenant}

    def _stored(self, key: dict[str, str]) -> tuple[Any, Result] | None:
        with suppress(Exception):  # a cache failure is a miss
            found = get_exact(self.cache, key["prompt"], **_scope(key))
            if found is not None and found.payload is not None:
                return decode(found.payload), found
        return None

    def _keep(self, key: dict[str, str], answer: Any) -> Result:
        """Store `answer` for this very call if it round-trips; what the metadata then says."""
        why = "tools, response format or structured prediction: exact-only, answered by the model"
        payload = encode(answer)
        with suppress(Exception):
            if payload is not None:
                put_exact(self.cache, key["prompt"], "", payload, **_scope(key))
        return passed_through(why if payload else f"{why} (not stored)", self.cache, **_scope(key))

    def _exact(self, key: dict[str, str], call: Callable[[], R]) -> R:
        if (stored := self._stored(key)) is not None:
            return cast(R, with_summary(*stored))
        with _quiet():
            answer = call()
        return cast(R, with_summary(answer, self._keep(key, answer)))

    async def _aexact(self, key: dict[str, str], call: Callable[[], Awaitable[R]]) -> R:
        if (stored := self._stored(key)) is not None:
            return cast(R, with_summary(*stored))
        with _quiet():
            answer = await call()
        return cast(R, with_summary(answer, self._keep(key, answer)))

    def _exact_stream(
        self, key: dict[str, str], call: Callable[[], Iterator[R]]
    ) -> Generator[R, None, None]:
        """The stored responses of this very stream, else the model's, stored once done."""
        if (stored := self._stored(key)) is not None:
            yield from stored[0]
            return
        seen = []
        for response in call():
            seen.append(response)
            yield response
        self._keep(key, seen)

    async def _aexact_stream(
        self, key: dict[str, str], call: Callable[[], Awaitable[AsyncIterator[R]]]
    ) -> AsyncGenerator[R, None]:
        if (stored := self._stored(key)) is not None:
            for response in stored[0]:
                yield response
            return
        seen = []
        async for response in await call():
            seen.append(response)
            yield response
        self._keep(key, seen)

    def structured_predict(self, *args: Any, **kwargs: Any) -> Any:
        """The wrapped model's way of predicting `output_cls`; its calls are exact-only."""
        with structured():
            return super().structured_predict(*args, **kwargs)

    async def astructured_predict(self, *args: Any, **kwargs: Any) -> Any:
        with structured():
            return await super().astructured_predict(*args, **kwargs)

    # ------------------------------------------------------------------ the LLM interface

    @_on_completion
    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        options = {"formatted": formatted, **kwargs}
        if key := self._exact_key(prompt, options):
            return self._exact(key, lambda: self._backend_llm.complete(prompt, **options))
        result = self._answer(prompt, options)
        return CompletionResponse(text=result.text, **_meta(_raw(result)))

    @_on_completion
    async def acomplete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponse:
        options = {"formatted": formatted, **kwargs}
        if key := self._exact_key(prompt, options):
            return await self._aexact(key, lambda: self._backend_llm.acomplete(prompt, **options))
        result = await self._aanswer(prompt, options)
        return CompletionResponse(text=result.text, **_meta(_raw(result)))

    @_on_chat
    def chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        if key := self._exact_key(messages, kwargs):
            return self._exact(key, lambda: self._backend_llm.chat(messages, **kwargs))
        result = self._answer(messages, kwargs)
        return _chat_response(result.text, **_meta(_raw(result)))

    @_on_chat
    async def achat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        if key := self._exact_key(messages, kwargs):
            return await self._aexact(key, lambda: self._backend_llm.achat(messages, **kwargs))
        result = await self._aanswer(messages, kwargs)
        return _chat_response(result.text, **_meta(_raw(result)))

    # Streams: reused steps arrive at once, before the wrapped model is asked to patch the rest;
    # patched and generated steps as the model writes them, each once whole and verified; the
    # last response carries `raw`.

    @_on_completion
    def stream_complete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponseGen:
        options = {"formatted": formatted, **kwargs}
        if key := self._exact_key(prompt, options):
            return self._exact_stream(key, self._direct("stream_complete", prompt, options))
        return _responses(lambda on: self._answer(prompt, options, on), CompletionResponse)

    @_on_completion
    async def astream_complete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponseAsyncGen:
        options = {"formatted": formatted, **kwargs}
        if key := self._exact_key(prompt, options):
            return self._aexact_stream(key, self._direct("astream_complete", prompt, options))
        return _aresponses(lambda on: self._aanswer(prompt, options, on), CompletionResponse)

    @_on_chat
    def stream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseGen:
        if key := self._exact_key(messages, kwargs):
            return self._exact_stream(key, self._direct("stream_chat", messages, kwargs))
        return _responses(lambda on: self._answer(messages, kwargs, on), _chat_response)

    @_on_chat
    async def astream_chat(
        self, messages: Sequence[ChatMessage], **kwargs: Any
    ) -> ChatResponseAsyncGen:
        if key := self._exact_key(messages, kwargs):
            return self._aexact_stream(key, self._direct("astream_chat", messages, kwargs))
        return _aresponses(lambda on: self._aanswer(messages, kwargs, on), _chat_response)


class StepCacheFunctionCallingLLM(StepCacheLLM, FunctionCallingLLM):
    """`StepCacheLLM` around a function-calling model (made by ``StepCacheLLM(llm=...)`` itself):
    tool calls (`chat_with_tools`, agents, structured prediction) go through the cache as
    exact-only calls; the wrapped model prepares the tools and reads the tool calls back."""

    def _prepare_chat_with_tools_compat(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        return cast(FunctionCallingLLM, self.llm)._prepare_chat_with_tools_compat(*args, **kwargs)

    def _prepare_chat_with_tools(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        return cast(FunctionCallingLLM, self.llm)._prepare_chat_with_tools(*args, **kwargs)

    def _validate_chat_with_tools_response(self, *args: Any, **kwargs: Any) -> ChatResponse:
        llm = cast(FunctionCallingLLM, self.llm)
        return llm._validate_chat_with_tools_response(*args, **kwargs)

    def get_tool_calls_from_response(self, *args: Any, **kwargs: Any) -> Any:
        return cast(FunctionCallingLLM, self.llm).get_tool_calls_from_response(*args, **kwargs)


def _scope(key: dict[str, str]) -> dict[str, Any]:
    return {"namespace": key["namespace"], "tenant": key["tenant"]}


def _delta(item: StepOrResult, text: str) -> tuple[str, str, dict[str, Any] | None]:
    """(new text, delta, raw) for a streamed step, or for the final Result (raw set)."""
    if isinstance(item, Result):
        rest = item.text[len(text) :] if item.text.startswith(text) else ""
        return text + rest, rest, _raw(item)
    return text + item.text, item.text, None


def _responses(
    run: Callable[[Callable[[StepOutcome], None]], Result], make: Callable[..., R]
) -> Generator[R, None, None]:
    """Each step `run(on_step)` streams, then its Result, as a response built by `make` (the
    text so far, the delta, and on the last one `raw`)."""
    text = ""
    for item in stream_steps(run):
        text, delta, raw = _delta(item, text)
        yield make(text=text, delta=delta, **_meta(raw))


async def _aresponses(
    run: Callable[[Callable[[StepOutcome], None]], Awaitable[Result]], make: Callable[..., R]
) -> AsyncGenerator[R, None]:
    text = ""
    async for item in astream_steps(run):
        text, delta, raw = _delta(item, text)
        yield make(text=text, delta=delta, **_meta(raw))


def _chat_response(text: str, **fields: Any) -> ChatResponse:
    """A chat response whose message is the assistant's `text`."""
    return ChatResponse(message=ChatMessage(role=MessageRole.ASSISTANT, content=text), **fields)

"""A backend for any OpenAI-compatible chat-completions endpoint, on the official `openai` client.

Works with OpenAI itself, llama.cpp's server (`serve_local_model`), vLLM, Ollama and the like.
`openai` is imported on first use, so ``import stepcache_core`` does not need it.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal

from stepcache_core.backends.base import (
    Backend,
    TextListener,
    chat_messages,
    json_schema_format,
)
from stepcache_core.backends.chunks import StreamedChat
from stepcache_core.errors import BackendError, ConfigError
from stepcache_core.types import Completion

if TYPE_CHECKING:
    from openai import AsyncOpenAI, OpenAI
    from openai.types.chat import ChatCompletion

__all__ = ["OpenAIBackend", "json_schema_format"]


def _check_max_tokens(max_tokens: int | None, default: int) -> int:
    if max_tokens is None:
        return default
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
        raise ConfigError(f"max_tokens must be a positive int or None: {max_tokens!r}")
    return max_tokens


def _to_completion(response: ChatCompletion) -> Completion:
    """Text, usage token counts and finish reason of the first choice."""
    try:
        choice = response.choices[0]
        usage = response.usage
        return Completion(
            text=choice.message.content or "",
            prompt_tokens=int(usage.prompt_tokens) if usage is not None else 0,
            completion_tokens=int(usage.completion_tokens) if usage is not None else 0,
            finish_reason=choice.finish_reason,
        )
    except (AttributeError, IndexError, TypeError, ValueError) as exc:
        raise BackendError(f"malformed chat-completion response: {response!r:.300}") from exc


class OpenAIBackend(Backend):
    """Chat completions on an OpenAI-compatible endpoint: greedy (temperature 0) with a fixed seed
    by default; sync `complete` on `OpenAI`, native async `acomplete` on `AsyncOpenAI`."""

    def __init__(
        self,
        model: str,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        temperature: float = 0.0,
        seed: int | None = 42,
        max_tokens: int = 320,
        system_prompt: str | None = None,
        response_format: Mapping[str, Any] | None = None,
        max_tokens_field: Literal["max_tokens", "max_completion_tokens"] = "max_tokens",
        extra_body: Mapping[str, Any] | None = None,
        timeout: float = 120.0,
        max_retries: int = 2,
    ) -> None:
        """`api_key` None: the client reads ``OPENAI_API_KEY``. `response_format`: the default
        for every call (see `json_schema_format`). `max_tokens_field`: newer OpenAI models want
        ``max_completion_tokens``."""
        if not model:
            raise ConfigError("model must be a non-empty string")
        if temperature < 0:
            raise ConfigError(f"temperature must be >= 0: {temperature}")
        if max_tokens < 1:
            raise ConfigError(f"max_tokens must be >= 1: {max_tokens}")
        if timeout <= 0:
            raise ConfigError(f"timeout must be > 0: {timeout}")
        self.model = model
        self.base_url = base_url
        self._api_key = api_key
        self.temperature = temperature
        self.seed = seed
        self.max_tokens = max_tokens
        self.system_prompt = system_prompt
        self.response_format = dict(response_format) if response_format is not None else None
        self.max_tokens_field = max_tokens_field
        self.extra_body = dict(extra_body) if extra_body is not None else None
        self.timeout = timeout
        self.max_retries = max_retries
        self._client: OpenAI | None = None
        self._aclients: dict[int, tuple[asyncio.AbstractEventLoop, AsyncOpenAI]] = {}
        where = f"@{base_url.rstrip('/')}" if base_url else ""
        name = f"openai:{model}{where}?temperature={temperature:g}&seed={seed}"
        name += f"&max_tokens={max_tokens}"
        if system_prompt is not None:
            name += f"&system={hashlib.sha256(system_prompt.encode()).hexdigest()[:12]}"
        self.name = name

    # -- clients ---------------------------------------------------------------------------------

    def _client_kwargs(self) -> dict[str, Any]:
        return {
            "base_url": self.base_url,
            "api_key": self._api_key,
            "timeout": self.timeout,
            "max_retries": self.max_retries,
        }

    def _sync_client(self) -> OpenAI:
        if self._client is None:
            try:
                import openai
            except ImportError as exc:
                raise BackendError(
                    "OpenAIBackend needs the openai package: pip install 'stepcache[openai]'"
                ) from exc
            try:
                self._client = openai.OpenAI(**self._client_kwargs())
            except openai.OpenAIError as exc:
                raise BackendError(f"cannot create the OpenAI client: {exc}") from exc
        return self._client

    def _async_client(self) -> AsyncOpenAI:
        # httpx's async pool is bound to the loop that created it: one client per running loop.
        loop = asyncio.get_running_loop()
        entry = self._aclients.get(id(loop))
        if entry is not None and entry[0] is loop:
            return entry[1]
        try:
            import openai
        except ImportError as exc:
            raise BackendError(
                "OpenAIBackend needs the openai package: pip install 'stepcache[openai]'"
            ) from exc
        for key, (old_loop, _) in list(self._aclients.items()):
            if old_loop.is_closed():
                del self._aclients[key]
        try:
            client = openai.AsyncOpenAI(**self._client_kwargs())
        except openai.OpenAIError as exc:
            raise BackendError(f"cannot create the OpenAI client: {exc}") from exc
        self._aclients[id(loop)] = (loop, client)
        return client

    def close(self) -> None:
        """Close the sync client's connection pool (async clients: `aclose`)."""
        if self._client is not None:
            self._client.close()
            self._client = None

    async def aclose(self) -> None:
        """Close every client this backend opened that belongs to the running loop."""
        self.close()
        loop = asyncio.get_running_loop()
        entry = self._aclients.pop(id(loop), None)
        if entry is not None:
            await entry[1].close()

    def __enter__(self) -> OpenAIBackend:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    async def __aenter__(self) -> OpenAIBackend:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # -- requests --------------------------------------------------------------------------------

    def _messages(self, prompt: str) -> list[dict[str, str]]:
        return chat_messages(prompt, self.system_prompt)

    def _request(
        self,
        messages: Sequence[Mapping[str, str]],
        max_tokens: int | None,
        response_format: Mapping[str, Any] | None,
    ) -> dict[str, Any]:
        request: dict[str, Any] = {
            "model": self.model,
            "messages": [dict(m) for m in messages],
            "temperature": self.temperature,
            self.max_tokens_field: _check_max_tokens(max_tokens, self.max_tokens),
        }
        if self.seed is not None:
            request["seed"] = self.seed
        fmt = response_format if response_format is not None else self.response_format
        if fmt is not None:
            request["response_format"] = dict(fmt)
        if self.extra_body is not None:
            request["extra_body"] = dict(self.extra_body)
        return request

    def chat(
        self,
        messages: Sequence[Mapping[str, str]],
        max_tokens: int | None = None,
        *,
        response_format: Mapping[str, Any] | None = None,
    ) -> Completion:
        """Complete a list of ``{"role", "content"}`` messages."""
        request = self._request(messages, max_tokens, response_format)
        client = self._sync_client()
        import openai

        try:
            response = client.chat.completions.create(**request)
        except openai.OpenAIError as exc:
            raise BackendError(f"{self.name}: {type(exc).__name__}: {exc}") from exc
        return _to_completion(response)

    async def achat(
        self,
        messages: Sequence[Mapping[str, str]],
        max_tokens: int | None = None,
        *,
        response_format: Mapping[str, Any] | None = None,
    ) -> Completion:
        """Async `chat` on `AsyncOpenAI`."""
        request = self._request(messages, max_tokens, response_format)
        client = self._async_client()
        import openai

        try:
            response = await client.chat.completions.create(**request)
        except openai.OpenAIError as exc:
            raise BackendError(f"{self.name}: {type(exc).__name__}: {exc}") from exc
        return _to_completion(response)

    def complete(
        self,
        prompt: str,
        max_tokens: int | None = None,
        *,
        response_format: Mapping[str, Any] | None = None,
    ) -> Completion:
        """Answer `prompt` as the user turn; `response_format` overrides the default one."""
        return self.chat(self._messages(prompt), max_tokens, response_format=response_format)

    async def acomplete(
        self,
        prompt: str,
        max_tokens: int | None = None,
        *,
        response_format: Mapping[str, Any] | None = None,
    ) -> Completion:
        """Native async `complete`."""
        return await self.achat(self._messages(prompt), max_tokens, response_format=response_format)

    def complete_json(
        self, prompt: str, schema: Mapping[str, Any], max_tokens: int | None = None
    ) -> Completion:
        """`complete` with a ``json_schema`` response format (structured outputs), not strict:
        OpenAI's strict mode refuses schemas with optional properties."""
        return self.complete(
            prompt, max_tokens, response_format=json_schema_format(schema, strict=False)
        )

    async def acomplete_json(
        self, prompt: str, schema: Mapping[str, Any], max_tokens: int | None = None
    ) -> Completion:
        """Async `complete_json`."""
        return await self.acomplete(
            prompt, max_tokens, response_format=json_schema_format(schema, strict=False)
        )

    def complete_streaming(
        self, prompt: str, max_tokens: int | None, on_text: TextListener
    ) -> Completion:
        """`complete` with ``stream=True``: each piece goes to `on_text` as it arrives (usage is
        asked for with ``stream_options``; servers that ignore it leave the token counts 0)."""
        request = self._streaming_request(prompt, max_tokens)
        client = self._sync_client()
        import openai

        streamed = StreamedChat(on_text, self.name)
        try:
            with client.chat.completions.create(**request) as chunks:
                for chunk in chunks:
                    streamed.add(chunk.model_dump())
        except openai.OpenAIError as exc:
            raise BackendError(f"{self.name}: {type(exc).__name__}: {exc}") from exc
        return streamed.completion()

    async def acomplete_streaming(
        self, prompt: str, max_tokens: int | None, on_text: TextListener
    ) -> Completion:
        """Native async `complete_streaming` on `AsyncOpenAI`."""
        request = self._streaming_request(prompt, max_tokens)
        client = self._async_client()
        import openai

        streamed = StreamedChat(on_text, self.name)
        try:
            async with await client.chat.completions.create(**request) as chunks:
                async for chunk in chunks:
                    streamed.add(chunk.model_dump())
        except openai.OpenAIError as exc:
            raise BackendError(f"{self.name}: {type(exc).__name__}: {exc}") from exc
        return streamed.completion()

    def _streaming_request(self, prompt: str, max_tokens: int | None) -> dict[str, Any]:
        request = self._request(self._messages(prompt), max_tokens, None)
        return {**request, "stream": True, "stream_options": {"include_usage": True}}

    def __repr__(self) -> str:
        return f"OpenAIBackend({self.name!r})"

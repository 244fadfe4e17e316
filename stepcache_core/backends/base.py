"""The Backend protocol: one abstract method; the async and streaming variants derived."""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from typing import Any

from stepcache_core.errors import BackendError
from stepcache_core.types import Completion

#: Receives each new piece of an answer as the backend writes it.
TextListener = Callable[[str], None]


def checked_completion(answer: object) -> Completion:
    """`answer` if it is a well-formed `Completion`, else a `BackendError` naming what the
    backend returned instead (so that a malformed answer is never parsed, cached or served)."""
    if not isinstance(answer, Completion):
        raise BackendError(f"the backend returned a {type(answer).__name__}, not a Completion")
    if not isinstance(answer.text, str):
        kind = type(answer.text).__name__
        raise BackendError(f"the backend returned a Completion whose text is a {kind}, not a str")
    for name in ("prompt_tokens", "completion_tokens"):
        value = getattr(answer, name)
        if isinstance(value, bool) or not isinstance(value, int):
            kind = type(value).__name__
            raise BackendError(f"the backend returned a Completion whose {name} is a {kind}")
    return answer


class Backend(ABC):
    """Something that completes a prompt: a local model, an HTTP endpoint, a framework model."""

    #: A stable identity (model name and generation parameters); part of the cache namespace.
    name: str = "backend"

    @abstractmethod
    def complete(self, prompt: str, max_tokens: int | None = None) -> Completion:
        """Answer `prompt` with at most `max_tokens` new tokens (None: the backend's default)."""

    async def acomplete(self, prompt: str, max_tokens: int | None = None) -> Completion:
        """Async variant; override where the backend has a native async path."""
        return await asyncio.to_thread(self.complete, prompt, max_tokens)

    def complete_streaming(
        self, prompt: str, max_tokens: int | None, on_text: TextListener
    ) -> Completion:
        """`complete`, calling `on_text` with each piece of the answer as it is written; the
        pieces join to the returned `Completion.text`. Override where the backend can stream;
        the default hands over the whole answer as one piece."""
        completion = checked_completion(self.complete(prompt, max_tokens))
        if completion.text:
            on_text(completion.text)
        return completion

    async def acomplete_streaming(
        self, prompt: str, max_tokens: int | None, on_text: TextListener
    ) -> Completion:
        """Async `complete_streaming`; `on_text` is called on the running loop."""
        completion = checked_completion(await self.acomplete(prompt, max_tokens))
        if completion.text:
            on_text(completion.text)
        return completion

    def complete_json(
        self, prompt: str, schema: Mapping[str, Any], max_tokens: int | None = None
    ) -> Completion:
        """`complete`, asking for one JSON value that matches `schema`. Backends with
        schema-constrained decoding (llama.cpp, OpenAI structured outputs) override it; the
        default answers `prompt` as plain text, so a caller must still validate the reply."""
        return self.complete(prompt, max_tokens)

    async def acomplete_json(
        self, prompt: str, schema: Mapping[str, Any], max_tokens: int | None = None
    ) -> Completion:
        """Async `complete_json`; the default is `acomplete` without the schema."""
        return await self.acomplete(prompt, max_tokens)


def json_schema_format(
    schema: Mapping[str, Any], name: str = "answer", *, strict: bool = True
) -> dict[str, Any]:
    """An OpenAI ``response_format`` asking for JSON that matches `schema` (structured outputs;
    grammar-constrained decoding on llama.cpp)."""
    return {
        "type": "json_schema",
        "json_schema": {"name": name, "schema": dict(schema), "strict": strict},
    }


def chat_messages(prompt: str, system_prompt: str | None = None) -> list[dict[str, str]]:
    """OpenAI-style messages for one user turn, after an optional system message."""
    system = [{"role": "system", "content": system_prompt}] if system_prompt is not None else []
    return [*system, {"role": "user", "content": prompt}]


class FunctionBackend(Backend):
    """Wrap a plain `prompt -> str | Completion` callable (tests, quick scripts, adapters)."""

    def __init__(self, fn: Callable[[str], str | Completion], name: str = "function") -> None:
        self._fn = fn
        self.name = name

    def complete(self, prompt: str, max_tokens: int | None = None) -> Completion:
        out = self._fn(prompt)
        return out if isinstance(out, Completion) else Completion(text=out)

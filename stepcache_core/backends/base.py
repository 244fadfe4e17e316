"""The Backend protocol: one abstract method, the async variant derived."""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Callable

from stepcache_core.types import Completion


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

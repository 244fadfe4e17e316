"""Assembling a streamed chat completion (OpenAI chunk shape, as llama.cpp also sends it)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from stepcache_core.backends.base import TextListener
from stepcache_core.errors import BackendError
from stepcache_core.types import Completion


def raise_for_error(payload: Mapping[str, Any], source: str) -> None:
    """Raise `BackendError` with the server's message when `payload` is an error answer."""
    if "error" in payload:
        err = payload["error"]
        message = err.get("message", err) if isinstance(err, Mapping) else err
        raise BackendError(f"{source} error: {message}")


class StreamedChat:
    """Feeds each chunk's new text to `on_text` and keeps what the final `Completion` needs:
    the whole text, the usage (sent last, when the request asks for it) and the finish reason."""

    def __init__(self, on_text: TextListener, source: str) -> None:
        self._on_text = on_text
        self._source = source
        self._pieces: list[str] = []
        self._usage: Mapping[str, Any] = {}
        self._finish_reason: str | None = None

    def add(self, chunk: Any) -> None:
        """Take one chunk (a dict); an error chunk raises `BackendError`."""
        if not isinstance(chunk, Mapping):
            raise BackendError(f"unexpected {self._source} stream chunk: {chunk!r:.200}")
        raise_for_error(chunk, self._source)
        self._usage = chunk.get("usage") or self._usage
        for choice in chunk.get("choices") or ():
            if choice.get("index", 0) != 0:
                continue
            self._finish_reason = choice.get("finish_reason") or self._finish_reason
            piece = (choice.get("delta") or {}).get("content")
            if piece:
                self._pieces.append(piece)
                self._on_text(piece)

    def completion(self) -> Completion:
        """The answer streamed so far, with its token counts."""
        return Completion(
            text="".join(self._pieces),
            prompt_tokens=int(self._usage.get("prompt_tokens", 0)),
            completion_tokens=int(self._usage.get("completion_tokens", 0)),
            finish_reason=self._finish_reason,
        )

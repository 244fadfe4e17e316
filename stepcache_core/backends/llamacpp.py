"""A local llama.cpp backend on `xllamacpp` (in-process, no HTTP round trip).

Greedy decoding (temperature 0, fixed seed) with the model's own chat template; 2 CPU threads by
default. `xllamacpp` is imported on first use, so importing this module costs nothing.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import secrets
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from stepcache_core.backends.base import (
    Backend,
    TextListener,
    chat_messages,
    json_schema_format,
)
from stepcache_core.backends.chunks import StreamedChat, raise_for_error
from stepcache_core.backends.model_assets import ModelSpec, resolve_model
from stepcache_core.errors import BackendError, ConfigError
from stepcache_core.types import Completion

__all__ = ["LlamaCppBackend", "LlamaCppOptions"]

ModelArg = str | os.PathLike[str] | ModelSpec | None


@dataclass(frozen=True, slots=True)
class LlamaCppOptions:
    """Load and sampling settings shared by `LlamaCppBackend` and the local HTTP server."""

    n_ctx: int = 4096
    n_threads: int = 2
    temperature: float = 0.0
    seed: int = 42
    max_tokens: int = 320
    #: llama.cpp log level: 0 silent-ish, 1 errors only, 3 info (llama.cpp's default), 4 debug.
    verbosity: int = 1
    #: Concurrent request slots (the context is split between them).
    n_parallel: int = 1

    def __post_init__(self) -> None:
        if self.n_ctx < 256:
            raise ConfigError(f"n_ctx must be >= 256: {self.n_ctx}")
        if self.n_threads < 1:
            raise ConfigError(f"n_threads must be >= 1: {self.n_threads}")
        if self.temperature < 0:
            raise ConfigError(f"temperature must be >= 0: {self.temperature}")
        if self.seed < 0:
            raise ConfigError(f"seed must be >= 0: {self.seed}")
        if self.max_tokens < 1:
            raise ConfigError(f"max_tokens must be >= 1: {self.max_tokens}")
        if self.n_parallel < 1:
            raise ConfigError(f"n_parallel must be >= 1: {self.n_parallel}")

    def sampling_fields(self) -> dict[str, Any]:
        """Per-request sampling fields (also sent over HTTP, so the server's defaults don't
        matter)."""
        fields: dict[str, Any] = {"temperature": self.temperature, "seed": self.seed}
        if self.temperature == 0:
            fields["top_k"] = 1
        return fields


def model_file_name(model: ModelArg) -> str:
    """The GGUF file name `model` resolves to, without assembling or opening anything."""
    if model is None:
        from stepcache_core.backends.model_assets import DEFAULT_MODEL

        return DEFAULT_MODEL.file_name
    if isinstance(model, ModelSpec):
        return model.file_name
    return Path(model).name


def build_server(
    model_path: Path,
    options: LlamaCppOptions,
    *,
    api_key: str,
    host: str = "127.0.0.1",
    port: int = 0,
    alias: str | None = None,
) -> Any:
    """Start an `xllamacpp.Server` for `model_path` (it also listens on HTTP at `host:port`,
    port 0 = a free one). Raises BackendError when llama.cpp cannot load the model."""
    try:
        import xllamacpp
    except ImportError as exc:
        raise BackendError(
            "the local llama.cpp backend needs xllamacpp: pip install 'stepcache[local]'"
        ) from exc
    params = xllamacpp.CommonParams()
    params.model.path = str(model_path)
    params.n_ctx = options.n_ctx
    params.n_predict = options.max_tokens
    params.n_parallel = options.n_parallel
    params.cpuparams.n_threads = options.n_threads
    params.cpuparams_batch.n_threads = options.n_threads
    params.sampling.temp = options.temperature
    params.sampling.seed = options.seed
    if options.temperature == 0:
        params.sampling.top_k = 1
    params.verbosity = options.verbosity
    params.hostnames = [host]
    params.port = port
    params.api_keys = [api_key]
    if alias:
        params.model_alias = {alias}
    # xllamacpp race: freeing a Server whose task loop has not started yet hangs forever (the
    # stop signal is lost, ~Server joins the loop thread). A metrics request goes through that
    # loop, so once it answers, the server can be freed safely.
    params.endpoint_metrics = True
    try:
        server = xllamacpp.Server(params)
    except Exception as exc:
        raise BackendError(f"llama.cpp could not load {model_path}: {exc}") from exc
    server.handle_metrics()
    return server


def parse_chat_response(response: Any) -> Completion:
    """Turn a chat-completion dict (llama.cpp / OpenAI shape) into a `Completion`."""
    if not isinstance(response, Mapping):
        raise BackendError(f"unexpected llama.cpp response: {response!r:.200}")
    raise_for_error(response, "llama.cpp")
    try:
        choice = response["choices"][0]
        text = choice["message"].get("content") or ""
        usage = response.get("usage") or {}
        return Completion(
            text=text,
            prompt_tokens=int(usage.get("prompt_tokens", 0)),
            completion_tokens=int(usage.get("completion_tokens", 0)),
            finish_reason=choice.get("finish_reason"),
        )
    except (KeyError, IndexError, TypeError, AttributeError, ValueError) as exc:
        raise BackendError(f"malformed llama.cpp response: {response!r:.200}") from exc


def _check_max_tokens(max_tokens: int | None, default: int) -> int:
    if max_tokens is None:
        return default
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
        raise ConfigError(f"max_tokens must be a positive int or None: {max_tokens!r}")
    return max_tokens


class LlamaCppBackend(Backend):
    """A GGUF model run in-process by llama.cpp (`xllamacpp`), started on first use.

    >>> with LlamaCppBackend() as llm:  # the bundled Qwen2.5-Coder-0.5B  # doctest: +SKIP
    ...     llm.complete("Solve 2x + 3 = 7 for x", max_tokens=64).text
    """

    def __init__(
        self,
        model: ModelArg = None,
        *,
        options: LlamaCppOptions | None = None,
        system_prompt: str | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        """`model`: None (the bundled default), a `ModelSpec`, or a path to any GGUF file.
        `system_prompt`: None keeps the chat template's own default system message."""
        self._model = model
        self.options = options if options is not None else LlamaCppOptions()
        self.system_prompt = system_prompt
        self._cache_dir = cache_dir
        self._lock = threading.Lock()
        self._server: Any = None
        self._model_path: Path | None = None
        o = self.options
        name = (
            f"llamacpp:{model_file_name(model)}?temperature={o.temperature:g}&seed={o.seed}"
            f"&max_tokens={o.max_tokens}"
        )
        if system_prompt is not None:
            digest = hashlib.sha256(system_prompt.encode()).hexdigest()[:12]
            name += f"&system={digest}"
        self.name = name

    # -- lifecycle -------------------------------------------------------------------------------

    @property
    def started(self) -> bool:
        return self._server is not None

    @property
    def model_path(self) -> Path:
        """The resolved GGUF file (assembles the bundled model if needed)."""
        if self._model_path is None:
            self._model_path = resolve_model(self._model, self._cache_dir)
        return self._model_path

    def start(self) -> None:
        """Load the model now (otherwise the first call does). Idempotent, thread-safe."""
        self._ensure_server()

    def _ensure_server(self) -> Any:
        server = self._server
        if server is not None:
            return server
        with self._lock:
            if self._server is None:
                self._server = build_server(
                    self.model_path, self.options, api_key=secrets.token_urlsafe(16)
                )
            return self._server

    def close(self) -> None:
        """Unload the model; a later call loads it again."""
        with self._lock:
            self._server = None  # xllamacpp stops its threads and frees the model on dealloc

    def __enter__(self) -> LlamaCppBackend:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- completion ------------------------------------------------------------------------------

    def _messages(self, prompt: str) -> list[dict[str, str]]:
        return chat_messages(prompt, self.system_prompt)

    def _request(
        self, messages: Sequence[Mapping[str, str]], max_tokens: int | None
    ) -> dict[str, Any]:
        return {
            "messages": [dict(m) for m in messages],
            "max_tokens": _check_max_tokens(max_tokens, self.options.max_tokens),
            **self.options.sampling_fields(),
        }

    def chat(
        self,
        messages: Sequence[Mapping[str, str]],
        max_tokens: int | None = None,
        *,
        response_format: Mapping[str, Any] | None = None,
    ) -> Completion:
        """Complete a list of ``{"role", "content"}`` messages with the model's chat template."""
        request = self._request(messages, max_tokens)
        if response_format is not None:
            request["response_format"] = dict(response_format)
        server = self._ensure_server()
        try:
            response = server.handle_chat_completions(request)
        except Exception as exc:
            raise BackendError(f"llama.cpp chat completion failed: {exc}") from exc
        return parse_chat_response(response)

    def complete(
        self,
        prompt: str,
        max_tokens: int | None = None,
        *,
        response_format: Mapping[str, Any] | None = None,
    ) -> Completion:
        """Answer `prompt` as the user turn. `response_format`: an OpenAI-style dict, e.g.
        ``{"type": "json_schema", "json_schema": {"name": "x", "schema": {...}}}``, for
        grammar-constrained output."""
        return self.chat(self._messages(prompt), max_tokens, response_format=response_format)

    def complete_json(
        self, prompt: str, schema: Mapping[str, Any], max_tokens: int | None = None
    ) -> Completion:
        """`complete` with the schema as a ``json_schema`` response format: llama.cpp turns it
        into a grammar, so the reply is JSON of that shape."""
        return self.complete(
            prompt, max_tokens, response_format=json_schema_format(schema, strict=False)
        )

    def complete_streaming(
        self, prompt: str, max_tokens: int | None, on_text: TextListener
    ) -> Completion:
        """`complete`, handing each decoded piece to `on_text` as llama.cpp produces it."""
        request = self._request(self._messages(prompt), max_tokens)
        request.update(stream=True, stream_options={"include_usage": True})
        server = self._ensure_server()
        streamed = StreamedChat(on_text, "llama.cpp")
        failure: list[BaseException] = []

        def receive(chunk: Any) -> None:
            if failure:
                return
            try:
                streamed.add(chunk)
            except BaseException as exc:  # raised below, in the caller's frame
                failure.append(exc)

        try:
            response = server.handle_chat_completions(request, receive)
        except Exception as exc:
            raise BackendError(f"llama.cpp chat completion failed: {exc}") from exc
        if isinstance(response, Mapping):  # an error answered instead of a stream
            parse_chat_response(response)
        if failure:
            raise failure[0]
        return streamed.completion()

    async def acomplete_streaming(
        self, prompt: str, max_tokens: int | None, on_text: TextListener
    ) -> Completion:
        """`complete_streaming` in a worker thread; `on_text` is called on the running loop."""
        loop = asyncio.get_running_loop()

        def on_loop(piece: str) -> None:
            loop.call_soon_threadsafe(on_text, piece)

        return await asyncio.to_thread(self.complete_streaming, prompt, max_tokens, on_loop)

    async def acomplete(
        self,
        prompt: str,
        max_tokens: int | None = None,
        *,
        response_format: Mapping[str, Any] | None = None,
    ) -> Completion:
        """Runs `complete` in a worker thread; llama.cpp releases the GIL while it decodes."""
        return await asyncio.to_thread(
            self.complete, prompt, max_tokens, response_format=response_format
        )

    async def acomplete_json(
        self, prompt: str, schema: Mapping[str, Any], max_tokens: int | None = None
    ) -> Completion:
        """`complete_json` in a worker thread."""
        return await asyncio.to_thread(self.complete_json, prompt, schema, max_tokens)

    def __repr__(self) -> str:
        return f"LlamaCppBackend({self.name!r}, started={self.started})"

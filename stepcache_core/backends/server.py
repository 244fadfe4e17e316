"""Serve a local GGUF model on llama.cpp's OpenAI-compatible HTTP endpoint (127.0.0.1).

>>> with serve_local_model() as srv:  # doctest: +SKIP
...     backend = srv.backend()  # an OpenAIBackend pointed at srv.base_url
...     backend.complete("Solve 2x + 3 = 7 for x").text
"""

from __future__ import annotations

import os
import secrets
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

from stepcache_core.backends.llamacpp import LlamaCppOptions, ModelArg, build_server
from stepcache_core.backends.model_assets import resolve_model
from stepcache_core.backends.openai_compat import OpenAIBackend
from stepcache_core.errors import BackendError, ConfigError

__all__ = ["LocalModelServer", "serve_forever", "serve_local_model"]


class LocalModelServer:
    """A running llama.cpp HTTP server; a context manager that stops it on exit."""

    def __init__(
        self,
        server: Any,
        *,
        model: str,
        api_key: str,
        model_path: Path,
        options: LlamaCppOptions,
        startup_s: float,
    ) -> None:
        """Built by `serve_local_model`; `server` is the started `xllamacpp.Server`."""
        self._server = server
        address = str(server.listening_address).rstrip("/")
        #: e.g. ``http://127.0.0.1:41234/v1`` — what OpenAI clients take as ``base_url``.
        self.base_url = f"{address}/v1"
        self.address = address
        self.model = model
        self.api_key = api_key
        self.model_path = model_path
        self.options = options
        #: Seconds from the start call until the endpoint answered (model load included).
        self.startup_s = startup_s

    @property
    def running(self) -> bool:
        return self._server is not None

    def backend(self, **kwargs: Any) -> OpenAIBackend:
        """An `OpenAIBackend` for this server with its sampling settings (kwargs override)."""
        if self._server is None:
            raise BackendError("the local model server is stopped")
        settings: dict[str, Any] = {
            "base_url": self.base_url,
            "api_key": self.api_key,
            "temperature": self.options.temperature,
            "seed": self.options.seed,
            "max_tokens": self.options.max_tokens,
        }
        settings.update(kwargs)
        return OpenAIBackend(self.model, **settings)

    def close(self) -> None:
        """Stop the HTTP server and unload the model (idempotent)."""
        self._server = None  # xllamacpp shuts the server down when the object is freed

    def __enter__(self) -> LocalModelServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"LocalModelServer({self.base_url!r}, model={self.model!r}, {state})"


def serve_local_model(
    model: ModelArg = None,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    api_key: str | None = None,
    model_name: str | None = None,
    options: LlamaCppOptions | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
) -> LocalModelServer:
    """Load `model` (None: the bundled Qwen2.5-Coder-0.5B) and serve it over HTTP on
    `host:port` (port 0: a free port); returns once the endpoint answers. `api_key` None: a
    random one (see `.api_key`). Use as ``with serve_local_model() as srv: ...``."""
    if not 0 <= port <= 65535:
        raise ConfigError(f"port must be in 0..65535: {port}")
    opts = options if options is not None else LlamaCppOptions()
    key = api_key if api_key is not None else secrets.token_urlsafe(24)
    started = time.perf_counter()
    path = resolve_model(model, cache_dir)
    name = model_name or path.name.removesuffix(".gguf")
    server = build_server(path, opts, api_key=key, host=host, port=port, alias=name)
    return LocalModelServer(
        server,
        model=name,
        api_key=key,
        model_path=path,
        options=opts,
        startup_s=time.perf_counter() - started,
    )


def serve_forever(
    model: ModelArg = None,
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    api_key: str | None = None,
    model_name: str | None = None,
    options: LlamaCppOptions | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    echo: Callable[[str], None] = print,
    stop: threading.Event | None = None,
) -> None:
    """Serve `model` until Ctrl-C (or until `stop` is set); prints where and how to connect.
    The body of ``stepcache serve-model``."""
    with serve_local_model(
        model,
        host=host,
        port=port,
        api_key=api_key,
        model_name=model_name,
        options=options,
        cache_dir=cache_dir,
    ) as srv:
        echo(f"serving {srv.model_path.name} (loaded in {srv.startup_s:.1f} s)")
        echo(f"  base_url: {srv.base_url}")
        echo(f"  model:    {srv.model}")
        echo(f"  api_key:  {srv.api_key}")
        echo("press Ctrl-C to stop")
        event = stop if stop is not None else threading.Event()
        try:
            while not event.wait(0.5):
                pass
        except KeyboardInterrupt:
            echo("stopping")

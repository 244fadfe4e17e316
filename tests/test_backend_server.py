"""The local model on its OpenAI-compatible HTTP endpoint, used through OpenAIBackend."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from stepcache_core.backends import (
    LlamaCppOptions,
    LocalModelServer,
    json_schema_format,
    serve_forever,
    serve_local_model,
)
from stepcache_core.errors import BackendError, ConfigError

pytestmark = pytest.mark.model


@pytest.fixture(scope="module")
def server() -> Iterator[LocalModelServer]:
    pytest.importorskip("xllamacpp")
    pytest.importorskip("openai")
    with serve_local_model(options=LlamaCppOptions(max_tokens=32)) as srv:
        yield srv


def test_server_shape_and_auth(server: LocalModelServer) -> None:
    assert server.base_url.startswith("http://127.0.0.1:") and server.base_url.endswith("/v1")
    assert server.model == "qwen2.5-coder-0.5b-instruct-q4_k_m"
    assert server.api_key and server.startup_s > 0
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(server.base_url + "/models", timeout=10)
    assert err.value.code == 401
    request = urllib.request.Request(
        server.base_url + "/models", headers={"Authorization": f"Bearer {server.api_key}"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert server.model in response.read().decode()


def test_openai_backend_against_local_server(server: LocalModelServer) -> None:
    backend = server.backend()
    out = backend.complete("Solve 2x + 3 = 7 for x")
    assert out.text.strip()
    assert out.prompt_tokens > 10 and 0 < out.completion_tokens <= 32


async def test_async_openai_backend_against_local_server(server: LocalModelServer) -> None:
    async with server.backend() as backend:
        out = await backend.acomplete("Solve 5x = 20 for x", max_tokens=16)
    assert out.text.strip() and 0 < out.completion_tokens <= 16


def test_streaming_over_http_matches_the_plain_answer(server: LocalModelServer) -> None:
    backend = server.backend()
    pieces: list[str] = []
    streamed = backend.complete_streaming("Solve 2x + 3 = 7 for x", 24, pieces.append)
    assert len(pieces) > 3 and "".join(pieces) == streamed.text
    assert streamed.completion_tokens > 0  # usage arrives with stream_options
    assert streamed.text == backend.complete("Solve 2x + 3 = 7 for x", max_tokens=24).text


def test_json_schema_over_http(server: LocalModelServer) -> None:
    schema = {
        "type": "object",
        "properties": {"city": {"type": "string"}, "population": {"type": "integer"}},
        "required": ["city", "population"],
        "additionalProperties": False,
    }
    backend = server.backend(response_format=json_schema_format(schema, "city"))
    out = backend.complete("Give a JSON object for Paris and its population.", max_tokens=48)
    assert sorted(json.loads(out.text)) == ["city", "population"]


def test_stopped_server_refuses() -> None:
    pytest.importorskip("xllamacpp")
    pytest.importorskip("openai")
    with pytest.raises(ConfigError):
        serve_local_model(port=70000)
    with serve_local_model(options=LlamaCppOptions(max_tokens=8)) as srv:
        backend = srv.backend(max_retries=0, timeout=10)
    assert not srv.running
    with pytest.raises(BackendError):
        backend.complete("hello")
    with pytest.raises(BackendError, match="stopped"):
        srv.backend()


def test_serve_forever_until_stopped() -> None:
    pytest.importorskip("xllamacpp")
    lines: list[str] = []
    stop = threading.Event()
    ready = threading.Event()

    def echo(line: str) -> None:
        lines.append(line)
        if line.startswith("press Ctrl-C"):
            ready.set()

    thread = threading.Thread(
        target=serve_forever, kwargs={"port": 0, "echo": echo, "stop": stop}, daemon=True
    )
    thread.start()
    assert ready.wait(120), lines
    base_url = next(line.split()[-1] for line in lines if "base_url" in line)
    with urllib.request.urlopen(base_url.removesuffix("/v1") + "/health", timeout=10) as r:
        assert r.status == 200
    stop.set()
    thread.join(30)
    assert not thread.is_alive()

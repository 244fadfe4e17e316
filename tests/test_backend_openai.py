"""OpenAIBackend against a tiny real HTTP server on 127.0.0.1 (the real client, a real socket)."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from stepcache_core.backends import Backend, FunctionBackend, OpenAIBackend, json_schema_format
from stepcache_core.errors import BackendError, ConfigError

pytest.importorskip("openai")


@dataclass
class FakeEndpoint:
    """Canned chat completions; records every request. ``"FAIL <code>"`` in the prompt makes it
    answer with that HTTP status, ``"NOCHOICES"`` with an empty choice list."""

    base_url: str = ""
    requests: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)

    def stream(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        """The reply as chat-completion chunks, one per word, then usage when asked for."""
        text = f"echo: {body['messages'][-1]['content']}"
        words = text.split(" ")
        chunks = [
            {
                "id": "chatcmpl-test",
                "object": "chat.completion.chunk",
                "created": 1,
                "model": body.get("model", "?"),
                "choices": [
                    {
                        "index": 0,
                        "delta": {"content": word if i == 0 else " " + word},
                        "finish_reason": "stop" if i == len(words) - 1 else None,
                    }
                ],
            }
            for i, word in enumerate(words)
        ]
        if (body.get("stream_options") or {}).get("include_usage"):
            usage = {"prompt_tokens": 11, "completion_tokens": len(words), "total_tokens": 99}
            chunks.append({**chunks[0], "choices": [], "usage": usage})
        return chunks

    def reply(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        prompt = body["messages"][-1]["content"]
        if prompt.startswith("FAIL "):
            code = int(prompt.split()[1])
            return code, {"error": {"message": f"canned {code}", "type": "server_error"}}
        choices = (
            []
            if prompt == "NOCHOICES"
            else [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": f"echo: {prompt}"},
                    "finish_reason": "stop",
                }
            ]
        )
        return 200, {
            "id": "chatcmpl-test",
            "object": "chat.completion",
            "created": 1,
            "model": body.get("model", "?"),
            "choices": choices,
            "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18},
        }


@pytest.fixture
def endpoint() -> Iterator[FakeEndpoint]:
    state = FakeEndpoint()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            state.requests.append(body)
            state.headers.append({k.lower(): v for k, v in self.headers.items()})
            code, payload = state.reply(body)
            if body.get("stream") and code == 200:
                events = "".join(f"data: {json.dumps(c)}\n\n" for c in state.stream(body))
                data = (events + "data: [DONE]\n\n").encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                return
            data = json.dumps(payload).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    state.base_url = f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


def _backend(endpoint: FakeEndpoint, **kwargs: Any) -> OpenAIBackend:
    kwargs.setdefault("max_retries", 0)
    return OpenAIBackend("test-model", base_url=endpoint.base_url, api_key="sk-test", **kwargs)


def test_complete_sends_greedy_request_and_reads_usage(endpoint: FakeEndpoint) -> None:
    with _backend(endpoint) as backend:
        out = backend.complete("Solve 2x + 3 = 7 for x")
    assert out.text == "echo: Solve 2x + 3 = 7 for x"
    assert (out.prompt_tokens, out.completion_tokens, out.finish_reason) == (11, 7, "stop")
    (request,) = endpoint.requests
    assert request["model"] == "test-model"
    assert request["messages"] == [{"role": "user", "content": "Solve 2x + 3 = 7 for x"}]
    assert request["temperature"] == 0
    assert request["seed"] == 42
    assert request["max_tokens"] == 320
    assert "response_format" not in request
    assert endpoint.headers[0]["authorization"] == "Bearer sk-test"


def test_max_tokens_system_prompt_and_field_name(endpoint: FakeEndpoint) -> None:
    backend = _backend(
        endpoint, system_prompt="Be terse.", seed=None, max_tokens_field="max_completion_tokens"
    )
    backend.complete("hi", max_tokens=16)
    request = endpoint.requests[-1]
    assert request["messages"][0] == {"role": "system", "content": "Be terse."}
    assert request["max_completion_tokens"] == 16
    assert "max_tokens" not in request and "seed" not in request
    with pytest.raises(ConfigError):
        backend.complete("hi", max_tokens=0)


def test_response_format_passthrough(endpoint: FakeEndpoint) -> None:
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}
    fmt = json_schema_format(schema, "thing")
    assert fmt == {
        "type": "json_schema",
        "json_schema": {"name": "thing", "schema": schema, "strict": True},
    }
    backend = _backend(endpoint, response_format={"type": "json_object"})
    backend.complete("default format")
    assert endpoint.requests[-1]["response_format"] == {"type": "json_object"}
    backend.complete("per-call format", response_format=fmt)
    assert endpoint.requests[-1]["response_format"] == fmt


async def test_native_async_complete(endpoint: FakeEndpoint) -> None:
    assert OpenAIBackend.acomplete is not Backend.acomplete
    async with _backend(endpoint) as backend:
        outs = await asyncio.gather(*(backend.acomplete(f"q{i}", max_tokens=8) for i in range(3)))
    assert sorted(o.text for o in outs) == ["echo: q0", "echo: q1", "echo: q2"]
    assert all(r["max_tokens"] == 8 for r in endpoint.requests)


def test_async_client_survives_a_new_event_loop(endpoint: FakeEndpoint) -> None:
    backend = _backend(endpoint)
    assert asyncio.run(backend.acomplete("one")).text == "echo: one"
    assert asyncio.run(backend.acomplete("two")).text == "echo: two"


def test_streaming_hands_over_each_piece_and_reads_usage(endpoint: FakeEndpoint) -> None:
    pieces: list[str] = []
    out = _backend(endpoint).complete_streaming("two words", 8, pieces.append)
    assert pieces == ["echo:", " two", " words"]
    assert (out.text, out.prompt_tokens, out.completion_tokens) == ("echo: two words", 11, 3)
    assert out.finish_reason == "stop"
    request = endpoint.requests[-1]
    assert request["stream"] is True and request["stream_options"] == {"include_usage": True}
    assert request["max_tokens"] == 8 and request["temperature"] == 0.0


async def test_native_async_streaming(endpoint: FakeEndpoint) -> None:
    pieces: list[str] = []
    async with _backend(endpoint) as backend:
        out = await backend.acomplete_streaming("a b", None, pieces.append)
    assert "".join(pieces) == out.text == "echo: a b" and len(pieces) == 3


def test_streaming_http_errors_become_backend_errors(endpoint: FakeEndpoint) -> None:
    with pytest.raises(BackendError, match="500"):
        _backend(endpoint).complete_streaming("FAIL 500", None, lambda piece: None)


def test_http_errors_become_backend_errors(endpoint: FakeEndpoint) -> None:
    backend = _backend(endpoint)
    with pytest.raises(BackendError, match="InternalServerError"):
        backend.complete("FAIL 500")
    with pytest.raises(BackendError, match="BadRequestError"):
        backend.complete("FAIL 400")
    with pytest.raises(BackendError, match=r"no choices|malformed"):
        backend.complete("NOCHOICES")


async def test_async_errors_become_backend_errors(endpoint: FakeEndpoint) -> None:
    with pytest.raises(BackendError, match="InternalServerError"):
        await _backend(endpoint).acomplete("FAIL 500")


def test_connection_refused_is_a_backend_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    backend = OpenAIBackend(
        "m", base_url=f"http://127.0.0.1:{port}/v1", api_key="k", max_retries=0, timeout=5
    )
    with pytest.raises(BackendError, match="APIConnectionError"):
        backend.complete("hello")


def test_missing_api_key_is_a_backend_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(BackendError, match="client"):
        OpenAIBackend("m", base_url="http://127.0.0.1:9/v1").complete("hello")


def test_name_and_validation() -> None:
    backend = OpenAIBackend("gpt-x", base_url="http://h:1/v1/", api_key="k", seed=7)
    assert backend.name == "openai:gpt-x@http://h:1/v1?temperature=0&seed=7&max_tokens=320"
    other = OpenAIBackend("gpt-x", base_url="http://h:1/v1", api_key="k", system_prompt="S")
    assert other.name != backend.name and "system=" in other.name
    for bad in ({"temperature": -1.0}, {"max_tokens": 0}, {"timeout": 0.0}):
        with pytest.raises(ConfigError):
            OpenAIBackend("m", api_key="k", **bad)
    with pytest.raises(ConfigError):
        OpenAIBackend("", api_key="k")


def test_importing_backends_does_not_import_openai_or_xllamacpp() -> None:
    code = (
        "import sys, stepcache_core.backends; "
        "print(sorted(m for m in ('openai', 'xllamacpp', 'httpx') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


def test_complete_json_asks_for_the_schema_as_response_format(endpoint: FakeEndpoint) -> None:
    schema = {"type": "object", "properties": {"/a": {"type": "integer"}}, "required": ["/a"]}
    backend = _backend(endpoint)
    backend.complete_json("fill /a", schema, max_tokens=12)
    request = endpoint.requests[-1]
    assert request["response_format"] == json_schema_format(schema, strict=False)
    assert request["max_tokens"] == 12
    asyncio.run(backend.acomplete_json("fill /a", schema))
    assert endpoint.requests[-1]["response_format"] == json_schema_format(schema, strict=False)


def test_the_default_complete_json_is_plain_complete() -> None:
    seen: list[str] = []

    def answer(prompt: str) -> str:
        seen.append(prompt)
        return '{"a": 1}'

    backend = FunctionBackend(answer)
    assert backend.complete_json("give a", {"type": "object"}).text == '{"a": 1}'
    assert asyncio.run(backend.acomplete_json("again", {"type": "object"})).text == '{"a": 1}'
    assert seen == ["give a", "again"]

"""LlamaCppBackend: request shape and parsing with a fake server; the real model, briefly."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from stepcache_core.backends import (
    QWEN25_CODER_05B,
    LlamaCppBackend,
    LlamaCppOptions,
    json_schema_format,
)
from stepcache_core.backends.llamacpp import parse_chat_response
from stepcache_core.errors import BackendError, ConfigError, ModelAssetError

CANNED = {
    "choices": [
        {"index": 0, "finish_reason": "length", "message": {"role": "assistant", "content": "x=2"}}
    ],
    "usage": {"prompt_tokens": 42, "completion_tokens": 3, "total_tokens": 45},
}


class FakeServer:
    """Stands in for `xllamacpp.Server`: records requests, returns a canned response."""

    def __init__(self, response: Any = CANNED) -> None:
        self.response = response
        self.requests: list[dict[str, Any]] = []

    def handle_chat_completions(
        self, request: dict[str, Any], callback: Callable[[Any], None] | None = None
    ) -> Any:
        self.requests.append(request)
        if isinstance(self.response, Exception):
            raise self.response
        if callback is None:
            return self.response
        for chunk in self.response:  # a stream: a list of chunks
            callback(chunk)
        return None


def _chunk(content: str | None = None, finish: str | None = None, **extra: Any) -> dict[str, Any]:
    delta = {} if content is None else {"content": content}
    return {"choices": [{"index": 0, "delta": delta, "finish_reason": finish}], **extra}


STREAM = [
    {"choices": [{"index": 0, "delta": {"role": "assistant", "content": None}}]},
    _chunk("3x"),
    _chunk(" = 15\n"),
    _chunk("x = 5"),
    _chunk(finish="stop"),
    {"choices": [], "usage": {"prompt_tokens": 30, "completion_tokens": 6}},
]


def _with_fake(backend: LlamaCppBackend, server: FakeServer) -> LlamaCppBackend:
    backend._server = server
    return backend


def test_name_holds_model_and_generation_parameters() -> None:
    backend = LlamaCppBackend()
    assert backend.name == (
        "llamacpp:qwen2.5-coder-0.5b-instruct-q4_k_m.gguf?temperature=0&seed=42&max_tokens=320"
    )
    assert not backend.started  # nothing loaded or assembled yet
    other = LlamaCppBackend(
        "/models/x.gguf", options=LlamaCppOptions(seed=7, max_tokens=64), system_prompt="S"
    )
    assert other.name.startswith("llamacpp:x.gguf?temperature=0&seed=7&max_tokens=64&system=")


def test_options_validation() -> None:
    for bad in (
        {"n_ctx": 10},
        {"n_threads": 0},
        {"temperature": -0.1},
        {"seed": -1},
        {"max_tokens": 0},
        {"n_parallel": 0},
    ):
        with pytest.raises(ConfigError):
            LlamaCppOptions(**bad)
    assert LlamaCppOptions().sampling_fields() == {"temperature": 0.0, "seed": 42, "top_k": 1}
    assert "top_k" not in LlamaCppOptions(temperature=0.7).sampling_fields()


def test_request_shape_and_completion() -> None:
    server = FakeServer()
    backend = _with_fake(LlamaCppBackend(system_prompt="Be brief."), server)
    out = backend.complete("Solve 2x + 3 = 7 for x")
    assert (out.text, out.prompt_tokens, out.completion_tokens) == ("x=2", 42, 3)
    assert out.finish_reason == "length"
    (request,) = server.requests
    assert request["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Solve 2x + 3 = 7 for x"},
    ]
    assert request["max_tokens"] == 320
    assert (request["temperature"], request["seed"], request["top_k"]) == (0.0, 42, 1)
    assert "response_format" not in request

    fmt = json_schema_format({"type": "object"})
    backend.complete("json please", max_tokens=16, response_format=fmt)
    assert server.requests[-1]["max_tokens"] == 16
    assert server.requests[-1]["response_format"] == fmt
    assert asyncio.run(backend.acomplete("async")).text == "x=2"
    with pytest.raises(ConfigError):
        backend.complete("x", max_tokens=0)


def test_streaming_hands_over_each_piece_and_keeps_usage() -> None:
    server = FakeServer(STREAM)
    backend = _with_fake(LlamaCppBackend(), server)
    pieces: list[str] = []
    out = backend.complete_streaming("Solve 3x = 15 for x", 64, pieces.append)
    assert pieces == ["3x", " = 15\n", "x = 5"]
    assert (out.text, out.prompt_tokens, out.completion_tokens) == ("3x = 15\nx = 5", 30, 6)
    assert out.finish_reason == "stop"
    assert server.requests[0]["stream"] is True and server.requests[0]["max_tokens"] == 64

    async def run() -> tuple[list[str], str]:
        got: list[str] = []
        loop = asyncio.get_running_loop()

        def on_text(piece: str) -> None:
            assert asyncio.get_running_loop() is loop  # delivered on the caller's loop
            got.append(piece)

        completion = await backend.acomplete_streaming("again", None, on_text)
        return got, completion.text

    assert asyncio.run(run()) == (pieces, out.text)


def test_streaming_errors_become_backend_errors() -> None:
    error = {"error": {"message": "context overflow"}}
    backend = _with_fake(LlamaCppBackend(), FakeServer([_chunk("x"), error]))
    with pytest.raises(BackendError, match="context overflow"):
        backend.complete_streaming("x", None, lambda piece: None)
    backend = _with_fake(LlamaCppBackend(), FakeServer(RuntimeError("boom")))
    with pytest.raises(BackendError, match="boom"):
        backend.complete_streaming("x", None, lambda piece: None)


def test_errors_become_backend_errors() -> None:
    backend = _with_fake(LlamaCppBackend(), FakeServer(RuntimeError("boom")))
    with pytest.raises(BackendError, match="boom"):
        backend.complete("x")
    err = {"error": {"code": 400, "message": "bad field", "type": "invalid_request_error"}}
    with pytest.raises(BackendError, match="bad field"):
        parse_chat_response(err)
    with pytest.raises(BackendError, match="malformed"):
        parse_chat_response({"choices": []})
    with pytest.raises(BackendError):
        parse_chat_response("not a dict")
    assert parse_chat_response({"choices": [{"message": {"content": None}}]}).text == ""


def test_close_drops_the_server() -> None:
    backend = _with_fake(LlamaCppBackend(), FakeServer())
    assert backend.started
    backend.close()
    assert not backend.started


def test_bad_model_files(tmp_path: Path) -> None:
    with pytest.raises(ModelAssetError, match="not found"):
        LlamaCppBackend(tmp_path / "missing.gguf").complete("x")
    pytest.importorskip("xllamacpp")
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"GGUF" + b"\xff" * 60)
    with pytest.raises(BackendError, match="could not load"):
        LlamaCppBackend(broken, options=LlamaCppOptions(verbosity=0)).start()


# -- the real model ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def llm() -> Iterator[LlamaCppBackend]:
    pytest.importorskip("xllamacpp")
    with LlamaCppBackend(QWEN25_CODER_05B, options=LlamaCppOptions(max_tokens=32)) as backend:
        yield backend


@pytest.mark.model
def test_real_model_answers(llm: LlamaCppBackend) -> None:
    out = llm.complete("Solve 2x + 3 = 7 for x")
    assert out.text.strip()
    assert out.prompt_tokens > 10 and 0 < out.completion_tokens <= 32
    assert out.finish_reason in ("stop", "length")


@pytest.mark.model
def test_real_model_is_deterministic(llm: LlamaCppBackend) -> None:
    prompt = "Solve 3x - 4 = 11 for x"
    first = llm.complete(prompt, max_tokens=24)
    second = asyncio.run(llm.acomplete(prompt, max_tokens=24))
    assert first == second


@pytest.mark.model
def test_real_model_streams_the_same_answer(llm: LlamaCppBackend) -> None:
    prompt = "Solve 3x - 4 = 11 for x"
    pieces: list[str] = []
    streamed = llm.complete_streaming(prompt, 24, pieces.append)
    assert len(pieces) > 3 and "".join(pieces) == streamed.text
    assert streamed == llm.complete(prompt, max_tokens=24)


@pytest.mark.model
def test_real_model_json_schema(llm: LlamaCppBackend) -> None:
    schema = {
        "type": "object",
        "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
        "required": ["name", "age"],
        "additionalProperties": False,
    }
    out = llm.complete(
        "Return a JSON object for a person named Ann who is 31.",
        max_tokens=48,
        response_format=json_schema_format(schema, "person"),
    )
    assert sorted(json.loads(out.text)) == ["age", "name"]


@pytest.mark.model
@pytest.mark.timeout(300, method="thread")
def test_close_right_after_start_does_not_hang() -> None:
    # xllamacpp hangs when a Server is freed before its task loop runs; build_server guards it.
    pytest.importorskip("xllamacpp")
    for _ in range(2):
        backend = LlamaCppBackend(options=LlamaCppOptions(n_ctx=512))
        backend.start()
        backend.close()
        assert not backend.started


def test_complete_json_constrains_decoding_with_the_schema() -> None:
    server = FakeServer()
    backend = _with_fake(LlamaCppBackend(), server)
    schema = {"type": "object", "properties": {"/a": {"type": "integer"}}, "required": ["/a"]}
    backend.complete_json("fill /a", schema, max_tokens=16)
    assert server.requests[-1]["response_format"] == json_schema_format(schema, strict=False)
    assert server.requests[-1]["max_tokens"] == 16
    asyncio.run(backend.acomplete_json("again", schema))
    assert server.requests[-1]["response_format"] == json_schema_format(schema, strict=False)

"""A hung Chroma server (SIGSTOPped: it accepts connections and never answers) costs a user's call
at most the store's timeout plus a small margin, logs one warning per outage, and the cache works
again once the server answers (SIGCONT). A real ``chroma run`` on 127.0.0.1."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from stepcache_core import ChromaStore, StepCache, StoreError
from stepcache_core import Path as CachePath
from stepcache_core.chroma_server import ChromaServer

from conftest import HashEmbedder, ScriptedBackend
from reliability_workers import multiples_backend_answer
from toy_tasks import MultiplesTask, multiples_answer

T = TypeVar("T")

TIMEOUT = 3.0
#: What a call may cost while the server hangs: a generous margin over the timeout.
BOUND = TIMEOUT * 2 + 2


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ChromaServer]:
    srv = ChromaServer(tmp_path / "hung")
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()  # SIGCONT first when paused, then SIGTERM (SIGKILL after 10 s)


def _timed(fn: Callable[[], T]) -> tuple[T, float]:
    t0 = time.monotonic()
    out = fn()
    return out, time.monotonic() - t0


def _store(server: ChromaServer, **args: Any) -> ChromaStore:
    return ChromaStore(
        host=server.host, port=server.port, embedder_name="hash-64", timeout=TIMEOUT, **args
    )


def _outage_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelno >= logging.WARNING and "running without the cache" in r.getMessage()
    ]


@pytest.mark.slow
def test_a_hung_server_costs_a_call_at_most_the_timeout_then_the_cache_recovers(
    server: ChromaServer, caplog: pytest.LogCaptureFixture
) -> None:
    cache = StepCache(
        _store(server, retry_seconds=0.5), embedder=HashEmbedder(), tasks=[MultiplesTask()]
    )
    backend = ScriptedBackend(multiples_backend_answer)
    prompt = "List the first 3 multiples of 4."
    assert cache.generate(prompt, backend).path is CachePath.MISS
    cache.flush()
    assert cache.generate(prompt, backend).path is CachePath.EXACT

    server.pause()
    took_calls: list[float] = []
    with caplog.at_level(logging.WARNING, logger="stepcache"):
        for n in (5, 6, 7, 8):
            request = f"List the first {n} multiples of 4."
            result, took = _timed(lambda: cache.generate(request, backend))  # noqa: B023
            took_calls.append(took)
            assert took < BOUND, f"a call took {took:.1f} s with a hung server"
            assert result.text == multiples_answer(n, 4)  # the backend's answer, uncached
            assert result.path is CachePath.MISS
            _, took = _timed(cache.flush)  # the answer's write in the background gives up too
            assert took < BOUND, f"a write took {took:.1f} s with a hung server"
            time.sleep(0.6)  # past retry_seconds: every call tries the server again
    print("seconds per call with a hung server:", [round(t, 2) for t in took_calls])
    assert backend.calls == 1 + 4
    assert len(_outage_warnings(caplog)) == 1, _outage_warnings(caplog)

    server.resume()
    deadline = time.monotonic() + 30
    while cache.generate(prompt, backend).path is not CachePath.EXACT:
        assert time.monotonic() < deadline, "the store did not recover after SIGCONT"
        time.sleep(0.3)
    fresh = "List the first 9 multiples of 4."
    assert cache.generate(fresh, backend).text == multiples_answer(9, 4)
    cache.flush()
    assert cache.generate(fresh, backend).path is CachePath.EXACT


@pytest.mark.slow
def test_making_a_store_against_a_hung_server_returns_within_the_timeout(
    server: ChromaServer, caplog: pytest.LogCaptureFixture
) -> None:
    server.pause()
    with caplog.at_level(logging.WARNING, logger="stepcache"):
        store, took = _timed(lambda: _store(server, retry_seconds=0.2))
        assert took < BOUND, f"making the store took {took:.1f} s"
        for _ in range(3):
            t0 = time.monotonic()
            with pytest.raises(StoreError):
                store.count()
            assert time.monotonic() - t0 < BOUND
            time.sleep(0.3)
    assert len(_outage_warnings(caplog)) == 1, _outage_warnings(caplog)

    server.resume()
    deadline = time.monotonic() + 30
    while True:
        try:
            assert store.count() == 0
            break
        except StoreError:
            assert time.monotonic() < deadline, "the store did not connect after SIGCONT"
            time.sleep(0.3)

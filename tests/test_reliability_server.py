"""Many processes, one cache: a Chroma server shared by 4 worker processes × 3 threads each.

The tests start and stop the server themselves (``chroma run --path DIR --host 127.0.0.1``).
Each worker first stores its own requests, waits for the others at a barrier, then asks for the
others' requests: exact repeats, rewordings (reuse) and longer lists (patch). Checked: every
served answer passes its task's checker, every process reused what another one cached, no entry
is lost or duplicated, and every stored step list is whole.
"""

from __future__ import annotations

import json
import logging
import multiprocessing as mp
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from stepcache_core import ChromaStore, StepCache
from stepcache_core import Path as CachePath
from stepcache_core.chroma_server import ChromaServer, free_port
from stepcache_core.store import _decode, entry_key
from stepcache_core.tasks.linear import LinearEquationTask, detect_linear

from conftest import HashEmbedder, ScriptedBackend
from reliability_workers import (
    NAMESPACE,
    borrow_prompts,
    linear_backend_answer,
    linear_borrow_prompts,
    linear_seed_prompts,
    multiples_backend_answer,
    run_worker,
    seed_prompts,
)
from toy_tasks import MultiplesTask, multiples_answer

WORKERS = 4
THREADS = 3


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChromaServer]:
    with ChromaServer(tmp_path_factory.mktemp("chroma-server")) as srv:
        yield srv


def _run_workers(
    server: ChromaServer, out: Path, task_kind: str, workers: int, threads: int
) -> list[dict[str, Any]]:
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(workers)
    procs = [
        ctx.Process(
            target=run_worker,
            args=(server.port, w, workers, threads, str(out), task_kind, barrier),
        )
        for w in range(workers)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(150)
    for p in procs:
        if p.is_alive():
            p.kill()
    assert [p.exitcode for p in procs] == [0] * workers
    return [json.loads((out / f"worker-{w}.json").read_text()) for w in range(workers)]


def _owner(prompt: str, workers: int, seeds: Any) -> int | None:
    return next((w for w in range(workers) if prompt in seeds(w)), None)


@pytest.mark.slow
def test_many_processes_share_one_cache(server: ChromaServer, tmp_path: Path) -> None:
    reports = _run_workers(server, tmp_path, "multiples", WORKERS, THREADS)
    task = MultiplesTask()
    asked: set[str] = set()
    for report in reports:
        w = report["worker"]
        assert report["degraded"] == 0, "a store call failed"
        records = report["records"]
        assert len(records) == len(seed_prompts(w)) + len(borrow_prompts(w, WORKERS))
        borrowed_from: set[int] = set()
        for r in records:
            asked.add(r["prompt"])
            spec = task.detect(r["prompt"])
            if spec is None:
                assert r["text"] == multiples_backend_answer(r["prompt"])
            else:
                assert r["text"] == multiples_answer(spec.n, spec.k), r
                assert r["verified"] and task.integrity(r["text"], spec).ok
            if r["phase"] == "borrow" and r["from_cache"]:
                owner = _owner(r["cached_prompt"] or "", WORKERS, seed_prompts)
                if owner is not None and owner != w:
                    borrowed_from.add(owner)
        paths = {r["path"] for r in records if r["phase"] == "borrow"}
        assert {"exact", "reuse", "patch"} <= paths
        assert borrowed_from == set(range(WORKERS)) - {w}, "did not reuse every other process"

    store = ChromaStore(host=server.host, port=server.port, embedder_name="hash-64")
    got = store._collection.get(include=["documents", "metadatas"])
    expected = {entry_key(NAMESPACE, "", "", p) for p in asked}
    assert len(got["ids"]) == len(set(got["ids"])) == len(expected)  # none duplicated
    assert set(got["ids"]) == expected  # none lost
    for key, doc, meta in zip(got["ids"], got["documents"], got["metadatas"], strict=True):
        entry = _decode(key, doc, meta)
        assert entry is not None
        spec = task.detect(entry.prompt)
        if spec is not None:  # whole step lists, each step verified
            assert "".join(entry.steps) == entry.answer == multiples_answer(spec.n, spec.k)
            assert all(c.ok for c in task.verify(entry.steps, spec, spec))


@pytest.mark.slow
def test_many_processes_share_linear_equations(server: ChromaServer, tmp_path: Path) -> None:
    reports = _run_workers(server, tmp_path, "linear", 2, 2)
    task = LinearEquationTask()
    for report in reports:
        w = report["worker"]
        assert report["degraded"] == 0
        reused_other = False
        for r in report["records"]:
            spec = detect_linear(r["prompt"])
            assert spec is not None
            assert r["verified"] and task.integrity(r["text"], spec).ok, r
            assert re.search(rf"x = {spec.solution_text}\s*$", r["text"])
            owner = _owner(r["cached_prompt"] or "", 2, linear_seed_prompts)
            if r["phase"] == "borrow" and r["from_cache"] and owner not in (None, w):
                reused_other = True
        assert reused_other
        assert len(report["records"]) == len(linear_seed_prompts(w)) + len(
            linear_borrow_prompts(w, 2)
        )
    store = ChromaStore(host=server.host, port=server.port, embedder_name="hash-64-linear")
    asked = {r["prompt"] for report in reports for r in report["records"]}
    assert store.count(NAMESPACE) == len(asked)
    assert linear_backend_answer("Solve 2x + 3 = 7").endswith("x = 2\n")


# ---------------------------------------------------------------------------- outage


def _cache(port: int, **store_args: Any) -> StepCache:
    return StepCache(
        ChromaStore(host="127.0.0.1", port=port, embedder_name="hash-64", **store_args),
        embedder=HashEmbedder(),
        tasks=[MultiplesTask()],
    )


def test_unreachable_server_at_start_goes_straight_to_the_backend(
    caplog: pytest.LogCaptureFixture,
) -> None:
    port = free_port()
    with caplog.at_level(logging.WARNING, logger="stepcache"):
        cache = _cache(port, retry_seconds=60)
        backend = ScriptedBackend(multiples_backend_answer)
        for _ in range(2):
            result = cache.generate("List the first 3 multiples of 4.", backend)
            assert result.text == multiples_answer(3, 4)
            assert result.path is CachePath.MISS
            cache.flush()  # the answer's write (in the background) fails too
    assert backend.calls == 2
    assert "unreachable" in caplog.text
    assert cache.stats()["entries"] is None and cache.stats()["degraded"] >= 2


@pytest.mark.slow
def test_server_outage_mid_run_degrades_then_recovers(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    server = ChromaServer(tmp_path / "outage")
    server.start()
    try:
        cache = _cache(server.port, retry_seconds=0.2)
        backend = ScriptedBackend(multiples_backend_answer)
        prompt = "List the first 3 multiples of 4."
        assert cache.generate(prompt, backend).path is CachePath.MISS
        assert cache.generate(prompt, backend).path is CachePath.EXACT
        cache.flush()  # the first answer's background write has landed (else it is still in memory)
        server.kill()  # the store goes away mid-run
        with caplog.at_level(logging.WARNING, logger="stepcache"):
            for n in (3, 5, 6):
                result = cache.generate(f"List the first {n} multiples of 4.", backend)
                assert result.text == multiples_answer(n, 4)
                assert result.path is CachePath.MISS
        assert "continuing without the cache" in caplog.text
        assert backend.calls == 4
        server.start()  # same path, same port: the store reconnects by itself
        import time

        deadline = time.monotonic() + 10
        while cache.generate(prompt, backend).path is not CachePath.EXACT:
            assert time.monotonic() < deadline, "the store did not reconnect"
            time.sleep(0.3)
    finally:
        server.stop()

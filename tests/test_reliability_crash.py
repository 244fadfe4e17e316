"""Crash safety: a writer SIGKILLed mid-write leaves each entry whole or absent, never torn.

A child process stores entries in a loop (1 to 12 steps each, the count written in the prompt) and
is killed with SIGKILL after a random delay, several rounds on the same store. After every round
the parent reopens the store and checks that every visible entry decodes with all its steps, that
the exact tier and the similarity search both still work, and that the next round can write on.
"""

from __future__ import annotations

import os
import random
import re
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from stepcache_core import ChromaStore
from stepcache_core.chroma_server import ChromaServer
from stepcache_core.store import _decode

from reliability_workers import CRASH_DIM, crash_entry

TESTS = Path(__file__).parent
ROUNDS = 4


def _kill_mid_write(path: Path, port: int, seed: int, delay: float) -> int:
    """Run a crash writer, SIGKILL it `delay` s after it is ready; return how many it reported."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(TESTS), str(TESTS.parent)]))
    proc = subprocess.Popen(
        [
            sys.executable,
            str(TESTS / "reliability_workers.py"),
            "crash",
            str(path),
            str(port),
            str(seed),
        ],
        stdout=subprocess.PIPE,
        env=env,
        cwd=TESTS,
    )
    assert proc.stdout is not None
    # selectors (epoll), not select.select: earlier tests' Chroma stores keep files open, and
    # select() fails on a descriptor numbered 1024 or above
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    try:
        deadline = time.monotonic() + 60
        line = b""
        while not line.startswith(b"ready"):
            ready = sel.select(max(0.0, deadline - time.monotonic()))
            assert ready and proc.poll() is None, "crash writer did not start"
            line = proc.stdout.readline()
        time.sleep(delay)
    finally:
        sel.close()
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    reported = [int(m) for m in re.findall(rb"wrote (\d+)", proc.stdout.read())]
    proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL
    return max(reported, default=0)


def _check_store(store: ChromaStore, seeds: list[int]) -> int:
    """Every visible row is a whole entry; return how many there are."""
    got = store._collection.get(include=["documents", "metadatas"])
    for key, doc, meta in zip(got["ids"], got["documents"], got["metadatas"], strict=True):
        entry = _decode(key, doc, meta)
        assert entry is not None, f"row {key} does not decode: {doc!r:.200}"
        m = re.fullmatch(r"crash (\d+) (\d+) steps (\d+)", entry.prompt)
        assert m, entry.prompt
        seed, i, n = (int(g) for g in m.groups())
        assert seed in seeds
        expected, _ = crash_entry(seed, i)
        assert entry.steps == expected.steps and len(entry.steps) == n
        assert "".join(entry.steps) == entry.answer == expected.answer
        assert store.get(key) == entry
    _, vec = crash_entry(seeds[-1], 0)
    near = store.nearest(vec, "crash", "", "", "t", k=5)
    assert len(near) == min(5, len(got["ids"]))  # the vector index agrees with the rows
    for hit in near:
        m = re.fullmatch(r"crash (\d+) (\d+) steps \d+", hit.entry.prompt)
        assert m and hit.entry.steps == crash_entry(int(m.group(1)), int(m.group(2)))[0].steps
    return len(got["ids"])


def _reopen(path: Path) -> ChromaStore:
    from chromadb.api.shared_system_client import SharedSystemClient

    SharedSystemClient.clear_system_cache()  # drop the in-process cache of the previous client
    return ChromaStore(path, embedder_name="crash")


@pytest.mark.slow
def test_sigkilled_embedded_writer_leaves_whole_entries_or_none(tmp_path: Path) -> None:
    rng = random.Random(7)
    seen = 0
    seeds: list[int] = []
    for seed in range(ROUNDS):
        seeds.append(seed)
        _kill_mid_write(tmp_path, 0, seed, rng.uniform(0.05, 1.2))
        visible = _check_store(_reopen(tmp_path), seeds)
        assert visible >= seen  # committed entries survive later crashes
        seen = visible
    assert seen > 0
    # the store still takes writes after the crashes
    store = _reopen(tmp_path)
    entry, vec = crash_entry(999, 0)
    store.put(entry, vec)
    assert store.get(entry.key) == entry
    assert len(vec) == CRASH_DIM


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ChromaServer]:
    with ChromaServer(tmp_path / "server") as srv:
        yield srv


@pytest.mark.slow
def test_sigkilled_server_client_leaves_whole_entries_or_none(server: ChromaServer) -> None:
    rng = random.Random(11)
    seeds: list[int] = []
    seen = 0
    for seed in range(2):
        seeds.append(seed)
        _kill_mid_write(server.path, server.port, seed, rng.uniform(0.05, 1.0))
        store = ChromaStore(host=server.host, port=server.port, embedder_name="crash")
        visible = _check_store(store, seeds)
        assert visible >= seen
        seen = visible
    assert seen > 0

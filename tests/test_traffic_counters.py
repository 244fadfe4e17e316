"""Traffic counters kept in the store: every process that uses a store adds to the same
numbers (per namespace and tenant), and `stepcache stats` prints them."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from stepcache_cli.main import main
from stepcache_core import ChromaStore, InMemoryStore, StepCache, TaskRegistry
from stepcache_core.chroma_server import ChromaServer

from conftest import HashEmbedder, ScriptedBackend

ROOT = Path(__file__).resolve().parents[1]
MATH = "Solve 3x + 5 = 20 for x."
MATH_ANSWER = "3x + 5 = 20\n3x = 15\nx = 5"

#: One process's traffic: a miss and an exact repeat of a linear equation, a miss of an
#: untyped prompt, all in namespace "app" (the store's entries persist between processes, so a
#: second process gets two exact hits and one miss of its own: "Say hi <n>.").
WORKER = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, {tests!r})
    from conftest import HashEmbedder, ScriptedBackend
    from stepcache_core import ChromaStore, StepCache

    class MiniLMNamed(HashEmbedder):
        name = "all-MiniLM-L6-v2"

    where, n = sys.argv[1], sys.argv[2]
    store = (
        ChromaStore(host="127.0.0.1", port=int(where[5:]), embedder_name=MiniLMNamed.name)
        if where.startswith("port:") else ChromaStore(where)
    )
    cache = StepCache(store, embedder=MiniLMNamed())
    backend = ScriptedBackend(lambda p: {{{math_!r}: {answer!r}}}.get(p, "hi"))
    cache.generate({math_!r}, backend, namespace="app")
    cache.flush()
    cache.generate({math_!r}, backend, namespace="app")
    cache.generate("Say hi " + n + ".", backend, namespace="app")
    cache.flush()
    """
).format(tests=str(ROOT / "tests"), math_=MATH, answer=MATH_ANSWER)


def run_worker(where: str, n: int) -> subprocess.Popen[str]:
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    env["ANONYMIZED_TELEMETRY"] = "False"
    return subprocess.Popen(
        [sys.executable, "-c", WORKER, where, str(n)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(worker: subprocess.Popen[str]) -> None:
    _, err = worker.communicate(timeout=120)
    assert worker.returncode == 0, err


def test_two_caches_on_one_store_see_the_same_totals(hash_embedder: HashEmbedder) -> None:
    store = InMemoryStore()
    caches = [StepCache(store, embedder=hash_embedder) for _ in range(2)]
    backend = ScriptedBackend(lambda p: MATH_ANSWER)
    caches[0].generate(MATH, backend, tenant="alice")
    caches[0].flush()
    caches[1].generate(MATH, backend, tenant="alice")
    caches[1].generate(MATH, backend, tenant="bob")
    caches[1].flush()  # its counts are written in the background
    for cache in caches:
        totals = cache.stats()["store"]
        assert totals["requests"] == 3 and totals["paths"]["exact"] == 1
        assert totals["paths"]["miss"] == 2 and totals["backend_calls"] == 2
        assert totals["tasks"]["linear_equation"]["hit_rate"] == pytest.approx(1 / 3)
        assert totals["tokens_saved"] == 8 + 11  # the first answer's prompt and answer words
    assert caches[1].stats(tenant="alice")["store"]["requests"] == 2
    assert caches[1].stats()["requests"] == 2  # this process: its own requests only


def test_stats_command_shows_both_processes_traffic(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    where = tmp_path / "store"
    for n in (1, 2):  # an embedded store is one process at a time
        finish(run_worker(str(where), n))
    assert main(["stats", "--store", str(where), "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    assert got["requests"] == 6 and got["backend_calls"] == 3  # 1 + 2 misses, 3 exact hits
    assert got["paths"]["exact"] == 3 and got["paths"]["miss"] == 3
    assert got["tasks"]["linear_equation"] == {
        "exact": 3, "reuse": 0, "patch": 0, "skip": 0, "miss": 1, "hit_rate": 0.75,
    }  # fmt: skip
    assert got["tokens_saved"] == 3 * (8 + 11) and got["entries"] == 3
    assert main(["stats", "--store", str(where), "--namespace", "other", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["requests"] == 0
    assert main(["stats", "--store", str(where)]) == 0
    table = capsys.readouterr().out.splitlines()
    assert "entries: 3" in table
    header = table.index(next(line for line in table if "hit rate" in line))
    assert table[header + 1].split() == ["all", "6", "3", "0", "0", "0", "3", "50.0%"]
    assert table[header + 2].split() == ["linear_equation", "4", "3", "0", "0", "0", "1", "75.0%"]
    assert any("57 tokens" in line for line in table)


def test_processes_at_once_on_one_chroma_server_lose_no_count(tmp_path: Path) -> None:
    with ChromaServer(tmp_path / "server") as server:
        workers = [run_worker(f"port:{server.port}", n) for n in range(4)]
        for worker in workers:
            finish(worker)
        store = ChromaStore(host=server.host, port=server.port)
        totals = StepCache(store, embedder=HashEmbedder(), tasks=TaskRegistry.with_builtins())
        got = totals.store_stats(namespace="app")
    assert got is not None and got["requests"] == 12
    assert sum(got["paths"].values()) == 12  # every request of every process counted once
    assert got["backend_calls"] == got["paths"]["miss"] + got["paths"]["skip"]

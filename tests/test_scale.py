"""`stepcache scale` at tiny sizes, embedded and through a local Chroma server, and the client
wrapper that batches its fill."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import chromadb
import psutil  # type: ignore[import-untyped]
import pytest
from chromadb.config import Settings

from stepcache_bench import scale

SIZES = (50, 120)


def _run(tmp_path: Path, *extra: str) -> tuple[dict[str, Any], str]:
    out = tmp_path / "out"
    argv = ["--sizes", *map(str, SIZES), "--lookups", "5", "--single", "10"]
    argv += ["--store-dir", str(tmp_path / "store"), "--out", str(out), "--no-progress", *extra]
    assert scale.main(argv) == 0
    return json.loads((out / "scale.json").read_text()), (out / "scale.md").read_text()


def _check_rows(result: dict[str, Any]) -> None:
    rows = result["sizes"]
    assert [r["size"] for r in rows] == list(SIZES)
    assert [r["count"] for r in rows] == list(SIZES)
    assert [r["inserted"] for r in rows] == [SIZES[0], SIZES[1] - SIZES[0]]
    for r in rows:
        assert r["rss_mb"] > 0 and r["disk_mb"] > 0 and r["fill_s"] > 0
        assert r["insert_per_s"] > 0 and r["bulk_insert_per_s"] > 0
        assert 0 < r["lookup_nearest_ms"]["p50"] <= r["lookup_nearest_ms"]["p99"]
        assert 0 < r["lookup_exact_ms"]["p50"] <= r["lookup_exact_ms"]["p99"]
    assert rows[1]["disk_mb"] > rows[0]["disk_mb"]


def test_embedded_run_reports_its_mode(tmp_path: Path) -> None:
    result, md = _run(tmp_path)
    assert result["mode"] == "embedded"
    _check_rows(result)
    assert all(r["server_rss_mb"] is None for r in result["sizes"])
    assert md.startswith("## Scale (embedded)")
    assert "RSS server" not in md and "One embedded Chroma store" in md


def test_server_run_reports_server_memory_and_disk(tmp_path: Path) -> None:
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    result, md = _run(tmp_path, "--server")
    assert result["mode"] == "server"
    _check_rows(result)
    assert all(r["server_rss_mb"] > 10 for r in result["sizes"])
    # The client's RSS is this process's own (the run was in it), not the server's added to it.
    own = psutil.Process().memory_info().rss / 1e6
    assert result["sizes"][-1]["rss_mb"] < own + result["sizes"][-1]["server_rss_mb"] / 2
    assert 0 < result["max_batch"] <= result["chroma_max_batch"]
    assert md.startswith("## Scale (server)")
    assert "A local Chroma server" in md and "| RSS client | RSS server | disk |" in md
    # The data lives in the server's directory, its log beside it; the server is gone.
    assert (tmp_path / "store" / "data" / "chroma.sqlite3").exists()
    assert (tmp_path / "store" / "chroma-server.log").exists()
    after = {p.pid for p in psutil.Process().children(recursive=True)}
    assert after <= before


def test_a_lookup_on_the_wrong_path_stops_the_run(tmp_path: Path, monkeypatch: Any) -> None:
    # Entries stored under another task registry are no exact hit for this cache: the run must
    # refuse to report the figures of a path it did not take.
    real_entry = scale._entry
    monkeypatch.setattr(scale, "_entry", lambda i, registry: real_entry(i, "other@1"))
    with pytest.raises(AssertionError):
        scale.run([30], lookups=3, store_dir=tmp_path, progress=False, single=5)


@pytest.fixture
def client(tmp_path: Path) -> Any:
    return chromadb.PersistentClient(
        path=str(tmp_path / "c"), settings=Settings(anonymized_telemetry=False)
    )


def test_prefetched_reads_answer_as_chroma_does(client: Any) -> None:
    real = client.get_or_create_collection("rows")
    real.upsert(ids=["a"], embeddings=[[0.5]], metadatas=[{"scope": "s"}])
    wrapped = scale._Collection(real, max_batch=2)
    wrapped.prefetch(["a", "b", "c"])
    wrapped.capturing = True
    for ids in (["a"], ["b"], ["a", "c"]):
        got = wrapped.get(ids=ids, include=["metadatas"])
        want = real.get(ids=ids, include=["metadatas"])
        assert got["ids"] == want["ids"] and got["metadatas"] == want["metadatas"]
    # Anything the prefetch does not cover goes to Chroma.
    assert wrapped.get(ids=["z"], include=["metadatas"])["ids"] == []
    assert wrapped.get(ids=["a"], include=["documents"])["ids"] == ["a"]


def test_captured_upserts_are_sent_in_batches_no_larger_than_the_limit(client: Any) -> None:
    real = client.get_or_create_collection("rows")
    sent: list[int] = []
    upsert = real.upsert

    class Spy:
        name = "rows"

        def upsert(self, **kw: Any) -> None:
            sent.append(len(kw["ids"]))
            upsert(**kw)

    wrapped = scale._Collection(Spy(), max_batch=3)
    wrapped.capturing = True
    for i in range(7):
        wrapped.upsert(ids=[f"k{i}"], embeddings=[[i / 7]])
    assert sent == [] and real.count() == 0
    wrapped.flush()
    assert sent == [3, 3, 1] and real.count() == 7
    assert wrapped.rows == {} and wrapped.prefetched is None

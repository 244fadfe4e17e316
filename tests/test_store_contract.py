"""One contract suite, run against every StepStore implementation."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from stepcache_core import ChromaStore, Entry, InMemoryStore, SchemaVersionError, StepStore
from stepcache_core.store import entry_key


def unit(i: int, dim: int = 8) -> list[float]:
    v = [0.0] * dim
    v[i % dim] = 1.0
    return v


def mixed(a: int, b: int, wa: float, dim: int = 8) -> list[float]:
    v = [0.0] * dim
    v[a] = wa
    v[b] = (1 - wa * wa) ** 0.5
    return v


def entry(
    prompt: str,
    ns: str = "ns",
    task: str | None = "t",
    reusable: bool = True,
    tenant: str = "",
    context: str = "",
) -> Entry:
    return Entry(
        key=entry_key(ns, tenant, context, prompt),
        namespace=ns,
        context=context,
        prompt=prompt,
        answer=f"answer to {prompt}",
        steps=(f"answer to {prompt}",),
        task=task,
        reusable=reusable,
        tenant=tenant,
    )


@pytest.fixture(params=["memory", "chroma"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StepStore]:
    if request.param == "memory":
        yield InMemoryStore()
    else:
        yield ChromaStore(tmp_path / "chroma", embedder_name="test-8d")


def test_put_get_roundtrip_keeps_every_field(store: StepStore) -> None:
    e = Entry(
        key="k1",
        namespace="ns",
        context="ctx",
        prompt="p ü 🚀",
        answer="a\n\nb",
        steps=("a\n\n", "b"),
        task="t",
        reusable=True,
        payload='{"g": [1]}',
        tenant="t1",
    )
    store.put(e, unit(0))
    got = store.get("k1")
    assert got is not None
    assert (
        got.prompt,
        got.answer,
        got.steps,
        got.task,
        got.reusable,
        got.payload,
        got.tenant,
        got.context,
        got.namespace,
    ) == (e.prompt, e.answer, e.steps, e.task, True, e.payload, "t1", "ctx", "ns")
    assert store.get("missing") is None


def test_get_many_reads_the_stored_keys_in_one_call(store: StepStore) -> None:
    a, b = entry("a"), entry("b", reusable=False)
    store.put(a, unit(0))
    store.put(b, None)
    got = store.get_many([b.key, "missing", a.key, b.key])
    assert got == {a.key: store.get(a.key), b.key: store.get(b.key)}
    assert got[a.key].prompt == "a" and got[b.key].prompt == "b"
    assert store.get_many([]) == {} and store.get_many(["missing"]) == {}


def test_an_entry_reads_back_equal_to_what_was_put(store: StepStore) -> None:
    e = dataclasses.replace(
        entry("a"), created_at=1796018027.8444219
    )  # Chroma metadata: ~16 digits
    store.put(e, unit(0))
    assert store.get(e.key) == e
    assert [n.entry for n in store.nearest(unit(0), "ns", "", "", "t")] == [e]


def test_nearest_orders_by_similarity_and_filters_scope(store: StepStore) -> None:
    store.put(entry("a"), unit(0))
    store.put(entry("b"), mixed(0, 1, 0.8))
    store.put(entry("c"), unit(1))
    store.put(entry("other ns", ns="ns2"), unit(0))
    store.put(entry("other tenant", tenant="x"), unit(0))
    store.put(entry("other ctx", context="c2"), unit(0))
    store.put(entry("other task", task="u"), unit(0))
    store.put(entry("exact only", reusable=False), unit(0))
    got = store.nearest(unit(0), "ns", "", "", "t", k=5)
    assert [n.entry.prompt for n in got] == ["a", "b", "c"]
    assert got[0].similarity == pytest.approx(1.0, abs=1e-5)
    assert got[1].similarity == pytest.approx(0.8, abs=1e-4)
    any_task = store.nearest(unit(0), "ns", "", "", None, k=10)
    assert {n.entry.prompt for n in any_task} == {"a", "b", "c", "other task"}


def test_put_replaces_and_clear_by_scope(store: StepStore) -> None:
    store.put(entry("a"), unit(0))
    store.put(entry("a"), unit(0))
    assert store.count() == 1
    store.put(entry("b", ns="ns2"), unit(1))
    store.put(entry("c", tenant="acme"), unit(2))
    assert store.count("ns2") == 1
    assert store.clear(tenant="acme") == 1
    assert store.clear("ns2") == 1
    assert store.count() == 1
    assert store.clear() == 1 and store.count() == 0


def test_vectorless_entry_is_exact_only(store: StepStore) -> None:
    store.put(entry("seed"), unit(3))
    e = entry("plain", task=None, reusable=False)
    store.put(e, None)
    assert store.get(e.key) is not None
    assert all(n.entry.prompt != "plain" for n in store.nearest(unit(3), "ns", "", "", None, 10))


def test_chroma_refuses_unknown_schema_version(tmp_path: Path) -> None:
    import chromadb
    from chromadb.config import Settings

    client = chromadb.PersistentClient(str(tmp_path), Settings(anonymized_telemetry=False))
    client.create_collection(
        "stepcache-test-8d", embedding_function=None, metadata={"stepcache_schema": 99}
    )
    with pytest.raises(SchemaVersionError, match="version 99"):
        ChromaStore(tmp_path, embedder_name="test-8d", client=client)


def test_chroma_corrupt_row_reads_as_absent(tmp_path: Path) -> None:
    store = ChromaStore(tmp_path, embedder_name="test-8d")
    store.put(entry("a"), unit(0))
    key = entry("a").key
    emb = store._collection.get(ids=[key], include=["embeddings"])["embeddings"]  # main row's
    store._collection.update(ids=[key], documents=["{not json"], embeddings=emb)
    assert store.get(key) is None
    assert store.nearest(unit(0), "ns", "", "", "t") == []


def test_chroma_entries_survive_a_fresh_process(tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        from stepcache_core import ChromaStore, Entry
        s = ChromaStore({str(tmp_path)!r}, embedder_name="test-8d")
        s.put(Entry(key="k", namespace="ns", context="", prompt="p", answer="a",
                    steps=("a",), task="t", reusable=True), [1.0] + [0.0] * 7)
        """
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=120)
    store = ChromaStore(tmp_path, embedder_name="test-8d")
    got = store.nearest(unit(0), "ns", "", "", "t")
    assert [n.entry.answer for n in got] == ["a"]


def test_an_entry_keeps_its_backend_cost(store: StepStore) -> None:
    costly = dataclasses.replace(entry("Say hi."), cost_tokens=42, cost_seconds=1.5)
    store.put(costly, unit(0))
    got = store.get(costly.key)
    assert got is not None and (got.cost_tokens, got.cost_seconds) == (42, 1.5)


def test_counters_add_up_per_namespace_and_tenant(store: StepStore) -> None:
    assert store.counters() == {}
    store.add_counters("ns", "", {"requests": 2, "path.miss": 2, "seconds_saved": 0.5})
    store.add_counters("ns", "", {"requests": 1, "path.exact": 1, "seconds_saved": 0.25})
    store.add_counters("ns", "alice", {"requests": 4})
    store.add_counters("other", "", {"requests": 8, "path.miss": 8})
    assert store.counters("ns", "") == {
        "requests": 3,
        "path.miss": 2,
        "path.exact": 1,
        "seconds_saved": 0.75,
    }
    assert store.counters("ns")["requests"] == 7
    assert store.counters(tenant="")["requests"] == 11
    assert store.counters()["requests"] == 15
    assert store.counters("nowhere") == {}


def test_concurrent_counter_adds_are_all_kept(store: StepStore) -> None:
    def add() -> None:
        for _ in range(10):
            store.add_counters("ns", "", {"requests": 1})

    threads = [threading.Thread(target=add) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert store.counters("ns")["requests"] == 40


def test_clear_counters_resets_the_scope_asked_and_keeps_counting(store: StepStore) -> None:
    store.add_counters("ns", "", {"requests": 3, "backend_seconds": 0.1})
    store.add_counters("ns", "bob", {"requests": 2})
    store.add_counters("other", "", {"requests": 5})
    store.clear_counters("ns")
    assert store.counters("ns") == {}
    assert store.counters("other") == {"requests": 5}
    store.add_counters("ns", "", {"requests": 1, "backend_seconds": 0.2})  # the same writer
    assert store.counters("ns") == {"requests": 1, "backend_seconds": 0.2}
    store.clear_counters(tenant="bob")  # nothing of bob's since: still nothing
    store.clear_counters()
    assert store.counters() == {}
    store.add_counters("other", "", {"requests": 4})
    assert store.counters() == {"requests": 4}


def test_chroma_counter_reset_holds_against_writers_still_running(tmp_path: Path) -> None:
    """Another process's store object keeps its running total and writes it whole: a reset
    from elsewhere must not bring its earlier counts back on its next write."""
    running = ChromaStore(tmp_path / "chroma", embedder_name="test-8d")
    clearing = ChromaStore(tmp_path / "chroma", embedder_name="test-8d")
    for _ in range(3):
        running.add_counters("ns", "", {"requests": 1, "tokens_saved": 10})
    clearing.clear_counters()
    assert clearing.counters() == {}
    running.add_counters("ns", "", {"requests": 1})
    assert clearing.counters() == running.counters() == {"requests": 1}
    clearing.clear_counters("ns")  # a second reset replaces the first
    running.add_counters("ns", "", {"requests": 2})
    assert clearing.counters("ns") == {"requests": 2}


def test_chroma_keeps_one_counter_row_per_store_object_and_scope(tmp_path: Path) -> None:
    first = ChromaStore(tmp_path / "chroma", embedder_name="test-8d")
    second = ChromaStore(tmp_path / "chroma", embedder_name="test-8d")  # another process, say
    for _ in range(20):
        first.add_counters("ns", "", {"requests": 1, "tokens_saved": 3})
    for _ in range(5):
        second.add_counters("ns", "", {"requests": 1})
    second.add_counters("ns", "bob", {"requests": 1})
    assert first.counters("ns") == {"requests": 26, "tokens_saved": 60}
    assert second.counters("ns", "") == {"requests": 25, "tokens_saved": 60}
    rows = first._counter_rows(create=False)  # type: ignore[attr-defined]
    assert rows is not None and rows.count() == 3  # running totals, not one row per add

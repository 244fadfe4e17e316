"""Bounds (max_entries with eviction, TTL, clear by scope) and the store schema version."""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from stepcache_core import (
    ChromaStore,
    ConfigError,
    Entry,
    InMemoryStore,
    SchemaVersionError,
    StepCache,
    StepStore,
)
from stepcache_core import Path as CachePath
from stepcache_core.store import SCHEMA_VERSION, entry_key

from conftest import HashEmbedder, ScriptedBackend
from reliability_workers import multiples_backend_answer
from toy_tasks import MultiplesTask


class Clock:
    """A settable wall clock."""

    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def unit(i: int, dim: int = 8) -> list[float]:
    v = [0.0] * dim
    v[i % dim] = 1.0
    return v


def entry(i: int, created_at: float, ns: str = "ns", tenant: str = "") -> Entry:
    prompt = f"prompt {i}"
    return Entry(
        key=entry_key(ns, tenant, "", prompt),
        namespace=ns,
        context="",
        prompt=prompt,
        answer=f"answer {i}",
        steps=(f"answer {i}",),
        task="t",
        reusable=True,
        tenant=tenant,
        created_at=created_at,
    )


StoreMaker = Callable[..., StepStore]


@pytest.fixture(params=["memory", "chroma"])
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> StoreMaker:
    made = iter(range(100))

    def make(**bounds: Any) -> StepStore:
        if request.param == "memory":
            return InMemoryStore(**bounds)
        return ChromaStore(tmp_path / f"c{next(made)}", embedder_name="test-8d", **bounds)

    return make


def test_max_entries_evicts_the_least_recently_created(make_store: StoreMaker) -> None:
    store = make_store(max_entries=3)
    for i in range(5):
        store.put(entry(i, 100.0 + i), unit(i))
    assert store.count() == 3
    assert [store.get(entry(i, 0).key) is not None for i in range(5)] == [False, False] + [True] * 3
    # replacing an entry does not grow the store
    store.put(entry(4, 104.0), unit(4))
    assert store.count() == 3
    # an old entry written late is still the oldest: creation time, not write time, decides
    store.put(entry(9, 50.0), unit(1))
    assert store.count() == 3 and store.get(entry(9, 0).key) is None


def test_large_bounds_evict_down_to_a_low_water_mark(make_store: StoreMaker) -> None:
    store = make_store(max_entries=40)
    for i in range(41):
        store.put(entry(i, 100.0 + i), unit(i))
    assert store.count() == 38  # 95 % of 40: the scan runs once per two writes here
    assert store.get(entry(0, 0).key) is None and store.get(entry(40, 0).key) is not None


def test_ttl_hides_expired_entries_and_purges_them_on_write(make_store: StoreMaker) -> None:
    clock = Clock()
    store = make_store(ttl_seconds=60, clock=clock)
    store.put(entry(0, clock.now - 120), unit(0))  # already expired
    store.put(entry(1, clock.now - 30), unit(0))
    assert store.get(entry(0, 0).key) is None
    assert store.get(entry(1, 0).key) is not None
    both = [entry(0, 0).key, entry(1, 0).key]
    assert list(store.get_many(both)) == [entry(1, 0).key]
    assert [n.entry.prompt for n in store.nearest(unit(0), "ns", "", "", "t")] == ["prompt 1"]
    clock.now += 31  # entry 1 expires too
    assert store.get(entry(1, 0).key) is None and store.get_many(both) == {}
    assert store.nearest(unit(0), "ns", "", "", "t") == []
    store.put(entry(2, clock.now), unit(2))
    assert store.count() == 1  # expired rows were purged by the write


def test_expired_entries_are_neither_served_nor_templates() -> None:
    offset = [0.0]
    store = InMemoryStore(ttl_seconds=10, clock=lambda: time.time() + offset[0])
    cache = StepCache(store, embedder=HashEmbedder(), tasks=[MultiplesTask()])
    backend = ScriptedBackend(multiples_backend_answer)
    assert cache.generate("List the first 3 multiples of 4.", backend).path is CachePath.MISS
    assert cache.generate("List the first 3 multiples of 4.", backend).path is CachePath.EXACT
    assert cache.generate("list the first 3 multiples of 4", backend).path is CachePath.REUSE
    offset[0] = 11.0
    assert cache.generate("List the first 3 multiples of 4.", backend).path is CachePath.MISS
    offset[0] = 22.0
    assert cache.generate("LIST the first 3 multiples of 4", backend).path is CachePath.MISS


def test_clear_by_namespace_and_tenant_through_the_engine(tmp_path: Path) -> None:
    cache = StepCache(
        ChromaStore(tmp_path, embedder_name="hash-64"),
        embedder=HashEmbedder(),
        tasks=[MultiplesTask()],
    )
    backend = ScriptedBackend(multiples_backend_answer)
    for ns in ("m1", "m2"):
        for tenant in ("", "acme", "globex"):
            cache.generate("List the first 2 multiples of 3.", backend, namespace=ns, tenant=tenant)
    assert cache.clear(namespace="m1", tenant="acme") == 1
    assert cache.clear(tenant="globex") == 2
    assert cache.clear(namespace="m2") == 2
    assert cache.store.count() == 1
    hit = cache.generate("List the first 2 multiples of 3.", backend, namespace="m1")
    assert hit.path is CachePath.EXACT
    again = cache.generate("List the first 2 multiples of 3.", backend, namespace="m2")
    assert again.path is CachePath.MISS


@pytest.mark.parametrize(
    "bounds",
    [
        {"max_entries": 0},
        {"max_entries": -5},
        {"ttl_seconds": 0},
        {"ttl_seconds": -1.0},
        {"ttl_seconds": math.nan},
        {"ttl_seconds": math.inf},
    ],
)
def test_bad_bounds_are_refused(bounds: dict[str, Any], tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        InMemoryStore(**bounds)
    with pytest.raises(ConfigError):
        ChromaStore(tmp_path, embedder_name="test-8d", **bounds)


# ---------------------------------------------------------------------------- schema version


def _client(path: Path) -> Any:
    import chromadb
    from chromadb.config import Settings

    return chromadb.PersistentClient(str(path), Settings(anonymized_telemetry=False))


@pytest.mark.parametrize("found", [1, SCHEMA_VERSION - 1, 0, SCHEMA_VERSION + 1, "2", None])
def test_older_or_unknown_schema_version_is_refused(tmp_path: Path, found: Any) -> None:
    client = _client(tmp_path)
    meta = {"stepcache_schema": found} if found is not None else {"other": "app"}
    client.create_collection("stepcache-test-8d", embedding_function=None, metadata=meta)
    with pytest.raises(SchemaVersionError, match=f"schema version {found!r}") as err:
        ChromaStore(tmp_path, embedder_name="test-8d", client=client)
    assert "will not guess" in str(err.value)


def test_new_collection_records_the_schema_version(tmp_path: Path) -> None:
    store = ChromaStore(tmp_path, embedder_name="test-8d")
    store.put(entry(0, time.time()), unit(0))
    assert store._collection.metadata["stepcache_schema"] == SCHEMA_VERSION
    row = store._collection.get(include=["metadatas"])["metadatas"][0]
    assert row["stepcache_schema"] == SCHEMA_VERSION


def test_a_row_of_another_schema_version_reads_as_absent(tmp_path: Path) -> None:
    store = ChromaStore(tmp_path, embedder_name="test-8d")
    e = entry(0, time.time())
    store.put(e, unit(0))
    row = store._collection.get(ids=[e.key], include=["metadatas"])["metadatas"][0]
    store._collection.update(ids=[e.key], metadatas=[{**row, "stepcache_schema": 1}])
    assert store.get(e.key) is None
    assert store.nearest(unit(0), "ns", "", "", "t") == []


# ---------------------------------------------------------------------------- scope collections


def _vectors(store: ChromaStore, ns: str = "ns", task: str = "t") -> set[str]:
    """The keys in the vector collection of scope (ns, "", "", task)."""
    handle = store._scope(store._scope_name(ns, "", "", task))
    return set() if handle is None else set(handle.get(include=[])["ids"])


def test_each_scope_searches_its_own_vectors_only(tmp_path: Path) -> None:
    store = ChromaStore(tmp_path, embedder_name="test-8d")
    a, b = entry(0, time.time(), ns="a"), entry(1, time.time(), ns="b")
    store.put(a, unit(0))
    store.put(b, unit(0))
    assert _vectors(store, "a") == {a.key} and _vectors(store, "b") == {b.key}
    # a vector of another scope's entry planted in a's collection is never returned
    store._scope(store._scope_name("a", "", "", "t")).upsert(ids=[b.key], embeddings=[unit(0)])
    assert [n.entry.key for n in store.nearest(unit(0), "a", "", "", None, k=4)] == [a.key]
    # a vector whose row was never written (a crash between the two writes) is not an entry
    store._scope(store._scope_name("a", "", "", "t")).upsert(ids=["orphan"], embeddings=[unit(0)])
    assert [n.entry.key for n in store.nearest(unit(0), "a", "", "", "t", k=4)] == [a.key]
    assert store.clear(namespace="a") == 1 and _vectors(store, "a") == set()  # orphans too
    assert [n.entry.key for n in store.nearest(unit(0), "b", "", "", "t")] == [b.key]


def test_a_changed_task_or_exact_only_rewrite_moves_or_drops_the_vector(tmp_path: Path) -> None:
    store = ChromaStore(tmp_path, embedder_name="test-8d")
    e = entry(0, time.time())
    store.put(e, unit(0))
    moved = dataclasses.replace(e, task="u")
    store.put(moved, unit(0))
    assert _vectors(store, task="t") == set() and _vectors(store, task="u") == {e.key}
    assert store.nearest(unit(0), "ns", "", "", "t") == []
    assert [n.entry.task for n in store.nearest(unit(0), "ns", "", "", None)] == ["u"]
    store.put(moved, None)  # exact-only now
    assert _vectors(store, task="u") == set() and store.get(e.key) is not None


def test_eviction_ttl_and_clear_remove_vectors_too(tmp_path: Path) -> None:
    clock = Clock()
    store = ChromaStore(
        tmp_path, embedder_name="test-8d", max_entries=3, ttl_seconds=60, clock=clock
    )
    for i in range(5):
        store.put(entry(i, clock.now - 50 + 10 * i), unit(i))
    assert _vectors(store) == {entry(i, 0).key for i in (2, 3, 4)}
    clock.now += 45  # 2 and 3 expire; live entries are not hidden behind expired neighbours
    assert [n.entry.prompt for n in store.nearest(unit(2), "ns", "", "", "t", k=1)] == ["prompt 4"]
    store.put(entry(5, clock.now), unit(5))
    assert _vectors(store) == {entry(i, 0).key for i in (4, 5)} and store.count() == 2
    assert store.clear() == 2 and _vectors(store) == set()

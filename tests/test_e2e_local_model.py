"""End to end on the real local model (Qwen2.5-Coder-0.5B via llama.cpp), Chroma and MiniLM.

Proves in CI that the bundled model installs, loads and answers, and that StepCache serves
verified answers on top of it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from stepcache_core import ChromaStore, MiniLMEmbedder, StepCache
from stepcache_core import Path as P
from stepcache_core.backends import LlamaCppBackend, LlamaCppOptions
from stepcache_core.tasks.json.text import extract_object

pytestmark = pytest.mark.model


@pytest.fixture(scope="module")
def model() -> Iterator[LlamaCppBackend]:
    with LlamaCppBackend(options=LlamaCppOptions(max_tokens=256)) as backend:
        yield backend


def test_math_and_json_requests_on_the_real_model(model: LlamaCppBackend, tmp_path: Path) -> None:
    cache = StepCache(ChromaStore(tmp_path / "chroma"), embedder=MiniLMEmbedder())
    first = cache.generate("Solve 3x + 5 = 20 for x. Be concise and end with 'x = <value>'.", model)
    assert first.verified, first.reason
    assert first.prompt_tokens > 0 and first.completion_tokens > 0 and first.backend_calls >= 1
    assert first.path is P.MISS

    calls_before = cache.stats()["backend_calls"]
    renamed = cache.generate(
        "Solve 3y + 5 = 20 for y. Be concise and end with 'y = <value>'.", model
    )
    assert renamed.verified and renamed.path is P.REUSE, renamed.reason
    assert renamed.backend_calls == 0 and cache.stats()["backend_calls"] == calls_before
    assert "y" in renamed.text

    person = "Output only a JSON object for a fictional person with the fields name, age, city."
    base = cache.generate(person, model)
    assert base.verified, base.reason
    added = cache.generate(person.replace("city.", "city, email."), model)
    assert added.verified and added.path is P.PATCH, added.reason
    found = extract_object(added.text)
    assert found is not None and list(found.value) == ["name", "age", "city", "email"]
    base_found = extract_object(base.text)
    assert base_found is not None and found.value["name"] == base_found.value["name"]
    assert added.completion_tokens < base.completion_tokens

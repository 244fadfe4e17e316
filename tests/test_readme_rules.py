"""The README's table of what is reused and what is not holds, row by row, with a model that
answers every equation right."""

from __future__ import annotations

import re
from pathlib import Path as FsPath

import pytest

from stepcache_core import Backend, Completion, InMemoryStore, Path, StepCache
from stepcache_core.tasks.linear import detect_linear

from adversarial import derivation
from conftest import HashEmbedder

README = FsPath(__file__).resolve().parents[1] / "README.md"
SECTION = "## What is reused, and what is not"


def rows() -> tuple[str, list[tuple[str, set[str]]]]:
    """The cached request named in the table's header, and (request, allowed paths) per row."""
    text = README.read_text(encoding="utf-8")
    body = text[text.index(SECTION) :].split("\n## ", 1)[0]
    table = [line for line in body.splitlines() if line.startswith("|")]
    cached = re.search(r'after "([^"]+)" was answered', table[0])
    assert cached, "the table header names the cached request"
    out = []
    for line in table[2:]:
        request, path, _why = (cell.strip() for cell in line.strip("|").split("|"))
        out.append((request.strip('"'), set(re.findall(r"exact|reuse|patch|skip|miss", path))))
    return cached.group(1), out


class RightModel(Backend):
    """Answers every linear equation with a correct derivation; counts its calls."""

    name = "right"

    def __init__(self) -> None:
        self.calls = 0

    def complete(self, prompt: str, max_tokens: int | None = None) -> Completion:
        self.calls += 1
        spec = detect_linear(prompt)
        text = derivation(spec.lhs, spec.rhs, spec.variable) if spec else "x = ?"
        return Completion(text, 10, 10, "stop")


CACHED, ROWS = rows()


def test_the_table_has_every_kind_of_row() -> None:
    paths = set().union(*(allowed for _, allowed in ROWS))
    assert {"reuse", "patch", "skip", "miss"} <= paths


@pytest.mark.parametrize(("request_", "allowed"), ROWS, ids=[r for r, _ in ROWS])
def test_each_row_takes_the_path_it_states(request_: str, allowed: set[str]) -> None:
    cache = StepCache(InMemoryStore(), embedder=HashEmbedder())
    model = RightModel()
    cache.generate(CACHED, model)
    cache.flush()
    result = cache.generate(request_, model)
    assert result.path.value in allowed, (result.path, result.reason)
    if result.path in (Path.REUSE, Path.PATCH):
        spec = detect_linear(request_)
        assert spec is not None and cache.tasks.detect(request_) is not None
        assert result.verified

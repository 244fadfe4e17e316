"""Under a change of numbers, a reused step may say nothing about a number beyond its checked
equations: a claim in words ("which is odd", "five", "is prime", "12 tickets cost") would be
served about the new numbers while true only of the old ones."""

from __future__ import annotations

import pytest

from stepcache_core import InMemoryStore, Path, StepCache, TaskRegistry
from stepcache_core.tasks.linear import LinearEquationTask
from stepcache_core.tasks.linear.step_words import unread_step_words

from conftest import HashEmbedder, ScriptedBackend

CACHED = "Solve 2x + 3 = 13 for x. Show your steps."
NEW = "Solve 2x + 3 = 15 for x. Show your steps."
MODEL = "2x + 3 = 15\n2x = 12\nx = 6"


def served(answer: str, prompt: str = NEW) -> tuple[StepCache, object]:
    cache = StepCache(InMemoryStore(), embedder=HashEmbedder(), tasks=TaskRegistry.with_builtins())
    first = cache.generate(CACHED, ScriptedBackend(lambda p: answer))
    assert first.verified, first.reason
    cache.flush()
    return cache, cache.generate(prompt, ScriptedBackend(lambda p: MODEL))


@pytest.mark.parametrize(
    ("answer", "words"),
    [
        ("2x + 3 = 13\n2x = 10\nx = 5\nSo x is 5, which is odd.", "'odd'"),
        ("Subtract 3: 2x = 10.\nDivide by 2: x = 5.\nThe answer, five, is prime.", "'five'"),
        ("2x + 3 = 13\n2x = 10\nSo x = 5, a positive number.", "'positive'"),
        ("Subtract 3 from both sides: 2x = 10.\nSo 2 tickets cost 10 dollars.\nx = 5", "'tickets'"),
    ],
)
def test_a_claim_in_words_is_not_carried_to_other_numbers(answer: str, words: str) -> None:
    _, result = served(answer)
    assert result.path is not Path.REUSE  # type: ignore[attr-defined]
    assert "may be stale" in result.reason and words in result.reason  # type: ignore[attr-defined]
    assert result.text.split()[-3:] == ["x", "=", "6"]  # type: ignore[attr-defined]


def test_the_working_in_words_is_still_reused_with_other_numbers() -> None:
    answer = (
        "Subtract 3 from both sides to isolate the term with x: 2x = 10.\n"
        "Divide both sides by the coefficient: x = 5.\n"
        "Check: 2(5) + 3 = 13. Correct!"
    )
    _, result = served(answer)
    assert result.path is Path.REUSE, result.reason  # type: ignore[attr-defined]
    assert "x = 6" in result.text and "2(6) + 3 = 15" in result.text  # type: ignore[attr-defined]


def test_the_same_numbers_keep_the_cached_claims() -> None:
    answer = "2x + 3 = 13\n2x = 10\nx = 5\nSo x is 5, which is odd."
    reworded = "Find x if 2x + 3 = 13. Show your steps."
    _, result = served(answer, reworded)
    assert result.path is Path.REUSE and result.text == answer  # type: ignore[attr-defined]


def test_unread_step_words_keep_the_variable_and_phrases_out() -> None:
    words = ("isolate", "y", "on", "one", "side", "then", "one", "is", "odd")
    assert unread_step_words(words, "y") == ("one", "odd")
    # (a request without "show your steps": for one that asks, a bare "x = 6" shows no working)
    bare = _spec("Solve 2x + 3 = 15 for x.")
    assert LinearEquationTask().verify(["x = 6, an even number"], bare, bare)[0].ok
    asked = _spec(NEW)
    assert not LinearEquationTask().verify(["x = 6, an even number"], asked, asked)[0].ok


def _spec(prompt: str):  # type: ignore[no-untyped-def]
    spec = LinearEquationTask().detect(prompt)
    assert spec is not None
    return spec

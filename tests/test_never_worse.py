"""Safety rules 3 and 5 (DESIGN.md): the cache never makes an answer worse than the model's own,
and an exact hit is the identical request read the same way."""

from __future__ import annotations

from collections.abc import Callable

from stepcache_core import (
    Backend,
    CacheConfig,
    Completion,
    InMemoryStore,
    Path,
    StepCache,
    TaskRegistry,
)
from stepcache_core.tasks.linear import LinearEquationTask, detect_linear

from conftest import HashEmbedder

PROMPT = "Solve 3x + 5 = 20 for x."


class Model(Backend):
    """Answers every prompt with `answer(prompt)` and the given finish reason."""

    name = "model"

    def __init__(self, answer: Callable[[str], str], finish: str = "stop") -> None:
        self.answer, self.finish, self.prompts = answer, finish, []  # type: ignore[var-annotated]

    def complete(self, prompt: str, max_tokens: int | None = None) -> Completion:
        self.prompts.append(prompt)
        return Completion(self.answer(prompt), 10, 10, self.finish)


def cache(store: InMemoryStore | None = None, tasks: object = None) -> StepCache:
    return StepCache(
        store if store is not None else InMemoryStore(),
        embedder=HashEmbedder(),
        tasks=tasks if tasks is not None else TaskRegistry.with_builtins(),  # type: ignore[arg-type]
        config=CacheConfig(max_miss_repairs=0),
    )


def right(text: str) -> bool:
    spec = detect_linear(PROMPT)
    assert spec is not None
    return LinearEquationTask().integrity(text, spec).ok


def test_a_wrong_final_value_after_restating_the_equation_is_repaired() -> None:
    wrong = "3x + 5 = 20\n3x = 15\nx = 6\n"  # restates our equation, then errs
    result = cache().generate(PROMPT, Model(lambda p: wrong))
    assert result.verified and right(result.text) and result.text != wrong


def test_an_answer_that_restates_another_equation_is_served_as_written() -> None:
    # The model read the prompt otherwise than we did: we may have misread it, so we keep out.
    other = "3x + 6 = 20\n3x = 14\nx = 14/3\n"
    result = cache().generate(PROMPT, Model(lambda p: other))
    assert result.text == other and not result.verified and result.path is Path.MISS


def test_a_hint_is_not_wrong_for_lacking_the_value() -> None:
    hint = "Start by subtracting 5 from both sides, then divide by the coefficient of x."
    first = cache()
    result = first.generate(PROMPT, Model(lambda p: hint))
    assert result.text == hint and not result.verified
    first.flush()
    again = first.generate(PROMPT, Model(lambda p: "never asked"))
    assert again.path is Path.EXACT and again.text == hint and not again.verified


def test_an_answer_cut_at_the_token_limit_is_finished_only_when_it_restates_the_equation() -> None:
    cut = "3x + 5 = 20\n3x = 15\n"
    finished = cache().generate(PROMPT, Model(lambda p: cut, finish="length"))
    assert finished.verified and right(finished.text) and finished.text.startswith(cut)
    stopped = cache().generate(PROMPT, Model(lambda p: cut, finish="stop"))
    assert stopped.text == cut and not stopped.verified


def test_put_keeps_an_answer_it_cannot_prove_wrong_and_serves_it_on_repeat() -> None:
    c = cache()
    hint = "Subtract 5, then divide by 3."
    entry = c.put(PROMPT, hint)
    assert entry is not None and entry.answer == hint and not entry.reusable
    again = c.generate(PROMPT, Model(lambda p: "never asked"))
    assert again.path is Path.EXACT and again.text == hint


def test_an_entry_written_under_another_registry_is_not_an_exact_hit() -> None:
    store = InMemoryStore()
    untyped = cache(store, tasks=[])  # reads no task: stores the wrong answer as written
    untyped.put(PROMPT, "x = 7")
    untyped.flush()
    model = Model(lambda p: "3x + 5 = 20\n3x = 15\nx = 5\n")
    result = cache(store).generate(PROMPT, model)
    assert result.path is not Path.EXACT and right(result.text) and model.prompts


def test_a_prompt_that_differs_in_whitespace_is_not_an_exact_hit() -> None:
    store = InMemoryStore()
    split = "Solve 3x + 5 = 20\n7 for x."  # a newline: not the same request to every reader
    c = cache(store)
    c.put(split, "I cannot tell which equation you mean.")
    c.flush()
    model = Model(lambda p: "3x + 5 = 20\n3x = 15\nx = 5\n")
    result = c.generate("Solve 3x + 5 = 20 7 for x.", model)
    assert result.path is not Path.EXACT and model.prompts


def test_a_bare_wrong_value_for_a_request_understood_in_full_is_repaired() -> None:
    # Nothing in the prompt but the equation and lexicon phrasings: our reading is certain, and
    # "x = 15" states no other reading of it, so the answer is proven wrong.
    result = cache().generate(PROMPT, Model(lambda p: "x = 15"))
    assert result.verified and right(result.text)
    other_words = "Solve 3x + 5 = 20 for x, then add 10 to the result."
    kept = cache().generate(other_words, Model(lambda p: "x = 15"))
    assert kept.text == "x = 15" and not kept.verified  # right for what was asked


def test_a_repeating_rounded_or_grouped_final_value_is_never_proven_wrong() -> None:
    # 3x + 5 = 21: x = 16/3. Each answer is right; read as x = 5.333 or x = 5 it was "repaired".
    prompt = "Solve 3x + 5 = 21 for x."
    for final in (
        "x = 5.333...",
        "x = 5.333\u2026",
        "x = 5.(3)",
        "x = 5.3 recurring",
        "x = 5.3\u0305",
        "x = 5\u2153",
        "x = 5.\\overline{3}",
        "x = 5.33 (to 2 d.p.)",
        "\\(x = 5.33\\) (approximately)",
    ):
        answer = f"3x = 16\n{final}\n"
        result = cache().generate(prompt, Model(lambda p, a=answer: a))
        assert result.text == answer, (final, result.reason)
    for prompt, final in (
        ("Solve x/4 = 250 for x.", "x = 1,000"),
        ("Solve x/4 = 250 for x.", "x = 1\u202f000"),
        ("Solve x/4 = 250 for x.", "x = 1'000"),
        ("Solve 2x = 5 for x.", "x = 2,5"),
    ):
        answer = f"Solve it:\n{final}\n"  # grouped, or a decimal comma: x = 1 or 2 is a misreading
        result = cache().generate(prompt, Model(lambda p, a=answer: a))
        assert result.text == answer, (final, result.reason)
    prompt = "Solve 3x + 5 = 21 for x."
    wrong = "3x = 16\nx = 5.5\n"  # a plain wrong value is still proven wrong
    assert cache().generate(prompt, Model(lambda p: wrong)).text != wrong

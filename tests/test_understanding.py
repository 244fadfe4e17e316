"""Closed-world request understanding: residues, the lexicon rule, and the reasons it gives."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stepcache_core.tasks.understanding import (
    SHARED_LEXICON,
    Lexicon,
    Mask,
    residue,
    residue_change,
    tokens,
)

LEX = SHARED_LEXICON | Lexicon.of("solve", "for <v>", "show your steps", "<eq>", "<v>")


def _masks(prompt: str, equation: str, var: str) -> list[Mask]:
    start = prompt.index(equation)
    out = [Mask(start, start + len(equation), "eq")]
    after = start + len(equation)
    out += [Mask(i, i + 1, "v") for i, ch in enumerate(prompt) if ch == var and i >= after]
    return out


def _res(prompt: str, equation: str = "3x + 5 = 20", var: str = "x") -> tuple[str, ...]:
    return residue(prompt, _masks(prompt, equation, var), LEX)


def test_numbers_stay_whole_and_symbols_count() -> None:
    assert tokens("3x = 4,500") == ["3", "x", "=", "4,500"]
    assert tokens("x² + 1") == ["x²", "+", "1"]
    assert tokens("user.id and first_name") == ["user.id", "and", "first_name"]
    assert tokens("GRÖSSE größe") == ["grösse", "größe"]  # no folding of ß into ss


def test_lexicon_phrases_do_not_change_the_residue() -> None:
    base = _res("Solve 3x + 5 = 20 for x.")
    assert base == ()
    assert _res("Please solve 3x + 5 = 20 for x. Show your steps!") == base
    assert _res("SOLVE 3x + 5 = 20   for x") == base


@pytest.mark.parametrize(
    ("extra", "quoted"),
    [
        ("Then add 4 to the result.", "then add 4 to the result"),
        ("Give the answer modulo 7.", "give the answer modulo 7"),
        ("x must be positive.", "must be positive"),
        ("Antworte auf Deutsch.", "antworte auf Deutsch"),  # quoted in its case
        ("Do not show your steps.", "do not"),
        ("End with 'Thanks!'", "end with"),
    ],
)
def test_any_other_words_are_a_core_change_quoted(extra: str, quoted: str) -> None:
    base = _res("Solve 3x + 5 = 20 for x.")
    other = _res(f"Solve 3x + 5 = 20 for x. {extra}")
    reason = residue_change(base, other)
    assert reason.startswith("the request's other words differ")
    assert quoted in reason


def test_another_question_about_the_variable_is_kept() -> None:
    # "what is 3x": the 3 and the question words stay, though <v> itself is in the lexicon.
    assert residue_change(_res("Solve 3x + 5 = 20 for x."), _res("3x + 5 = 20. What is 3x?"))


def test_residue_change_is_empty_only_for_equal_residues() -> None:
    assert residue_change(("a", "b"), ("a", "b")) == ""
    assert "dropped 'b'" in residue_change(("a", "b"), ("a",))
    assert "'b' -> 'c'" in residue_change(("a", "b"), ("a", "c"))


def test_masks_inside_masks_add_nothing() -> None:
    prompt = "Solve 3x + 5 = 20"
    masks = [Mask(6, 17, "eq"), Mask(7, 8, "v")]
    assert residue(prompt, masks, Lexicon.of("solve")) == ("<eq>",)


def test_an_empty_phrase_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one token"):
        Lexicon.of(". , ; !")  # punctuation only: no token


_WORDS = st.sampled_from(["integers", "modulo", "7", "twice", "result", "squared", "%", "not"])


@settings(max_examples=60, derandomize=True, deadline=None)
@given(word=_WORDS, where=st.integers(min_value=0, max_value=3))
def test_inserting_a_word_outside_the_lexicon_always_changes_the_residue(
    word: str, where: int
) -> None:
    parts = ["Please", "solve", "3x + 5 = 20", "for x."]
    prompt = " ".join([*parts[:where], word, *parts[where:]])
    assert residue_change(_res("Please solve 3x + 5 = 20 for x."), _res(prompt))


@settings(max_examples=60, derandomize=True, deadline=None)
@given(
    case=st.sampled_from(["lower", "upper", "title"]),
    space=st.sampled_from([" ", "  ", "\n", "\t "]),
    stop=st.sampled_from([".", "!", "", "?"]),
)
def test_case_spacing_and_punctuation_of_lexicon_words_never_change_it(
    case: str, space: str, stop: str
) -> None:
    please, solve = (getattr(w, case)() for w in ("please", "solve"))
    prompt = f"{please}{space}{solve} 3x + 5 = 20{space}for x{stop}"
    assert _res(prompt) == ()


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("End with 'Thanks!'", "End with 'THANKS!'"),  # case inside quotes
        ("End with 'Thanks!'", "End with 'Thanks?'"),  # punctuation inside quotes
        ('Sign off with "Thanks".', 'Sign off with "Please".'),  # lexicon words inside quotes
        ("Its age is 30.", 'Its age is "30".'),  # quotes make a number a string
        ('Leave it "".', "Leave it."),  # an empty string is a value
    ],
)
def test_quoted_text_is_content(old: str, new: str) -> None:
    base = "Solve 3x + 5 = 20 for x. "
    assert residue_change(_res(base + old), _res(base + new))


def test_quotes_around_the_final_line_placeholder_are_wording() -> None:
    quoted = "Solve 3x + 5 = 20 for x and end with 'x = <value>'."
    plain = "Solve 3x + 5 = 20 for x and end with x = <value>."
    assert _res(quoted) == _res(plain)
    assert _res("Solve 3x + 5 = 20 for x. Sign off with 'Bob's pal'.")  # apostrophes read


def test_case_counts_outside_quotes_but_for_a_sentence_start() -> None:
    base = "Solve 3x + 5 = 20 for x. "
    assert residue_change(_res(base + "Sign off with Bob."), _res(base + "Sign off with BOB."))
    assert residue_change(_res(base + "Sign off with Bob."), _res(base + "Sign off with bob."))
    assert _res(base + "Then add 4.") == _res(base + "then add 4.")
    assert _res("PLEASE SOLVE 3x + 5 = 20 FOR x") == _res("please solve 3x + 5 = 20 for x") == ()
    # a sentence that opens with lexicon words: the first word left is its start
    assert _res("Please, Solve 3x + 5 = 20 for x. Hi, Then add 4.") == _res(
        "Please, solve 3x + 5 = 20 for x. Hi, then add 4."
    )


def test_a_negated_sign_and_brackets_count() -> None:
    base = "Solve 3x + 5 = 20 for x. "
    assert residue_change(_res(base + "Label it = 4."), _res(base + "Label it != 4."))
    assert residue_change(_res(base + 'Tag it "a".'), _res(base + 'Tag it ["a"].'))
    assert residue_change(_res(base + "Tag it [a]."), _res(base + "Tag it {a}."))
    assert _res(base + "Tag it (a).") == _res(base + "Tag it a.")  # parentheses are punctuation


def test_an_ellipsis_counts() -> None:
    base = "Solve 3x + 5 = 20 for x. Name the rules you use"
    assert residue_change(_res(base + "."), _res(base + ", ..."))
    assert _res(base + ", ...") == _res(base + ", \u2026")  # written either way

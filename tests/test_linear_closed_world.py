"""The linear task's closed world (issue 12): it refuses notation it does not read with certainty,
verifies a step only when it follows from the one before, renumbers only when each number has one
role, and proves a model's answer wrong only for a request it understands in full."""

from __future__ import annotations

from fractions import Fraction

import pytest

from stepcache_core import InMemoryStore, LinearEquationTask, StepCache
from stepcache_core.tasks.base import DeltaKind
from stepcache_core.tasks.linear.parse import detect_linear
from stepcache_core.tasks.linear.spec import LinearSpec
from stepcache_core.tasks.linear.transfer import renumbering_for
from stepcache_core.tasks.linear.verify import check_integrity, proven_wrong, verify_steps

from conftest import HashEmbedder, ScriptedBackend

# --------------------------------------------------------------------- refuse rather than guess

#: One prompt per class of notation the parser would misread; each was read as *some* equation
#: before (a wrong one, or one that drops a condition).
REFUSED = {
    "digit grouping: comma": "Solve 3x = 4,500 for x.",
    "digit grouping: apostrophe": "Solve 3x = 4'500 for x.",
    "digit grouping: thin space": "Solve 3x = 4\u2009500 for x.",
    "decimal comma": "Solve 2x + 1 = 3,5 for x.",
    "superscript": "Solve x² + 3x = x² + 6 for x.",
    "unicode minus": "Solve 3x − 5 = 20",
    "unicode times": "Solve 3 × x + 5 = 20 for x.",
    "unicode division": "Solve x ÷ 2 + 1 = 4 for x.",
    "unicode inequality": "Solve 3x + 5 = 20 given x ≥ 1.",
    "unicode not-equal": "Solve 3x + 5 = 20 where x ≠ 0.",
    "vulgar fraction": "Solve x/2 + 1 = 3 ½ for x.",
    "root sign": "Solve 3x + 5 = 20, then give √x.",
    "root in words": "Solve 3x + 5 = 20 and give the square root of x.",
    "percentage": "Solve 3x + 5 = 20%",
    "percentage in words": "Solve 3x + 5 = 20 and give x as a percentage.",
    "function": "Solve 3x + 5 = 20 and give sin(x).",
    "logarithm": "Solve 3x + 5 = 20 and report log x.",
    "absolute value bars": "Solve 3x + 5 = 20 and give |x - 9|.",
    "LaTeX power": "Solve 3x + 5 = 20 for x, then find x^2.",
    "LaTeX command outside math": "Solve x \\cdot 2 = 4x - 3 for x.",
    "LaTeX command not read": "Solve \\(3x + 5 = 20\\) \\(\\pmod 7\\) for x.",
    "number in words": "Solve 3x + 5 = 20 plus five for x.",
    "modular arithmetic": "Solve x + 5 = 20 mod 7.",
    "modulo in words": "Solve 3x + 5 = 20 modulo 7 for x.",
    "inequality sign": "Solve 3x + 5 = 20 if x > 0.",
    "inequality in words: at least": "Solve 3x + 5 = 20 where x is at least 2.",
    "inequality in words: greater than": "Solve 3x + 5 = 20 for x greater than 1.",
    "inequality in words: no more than": "Solve 3x + 5 = 20 with x no more than 9.",
    "system of equations": "Solve the system of 3x + 5 = 20 for x.",
    "unit: mass": "Solve 3x + 5 = 20 kg for x.",
    "unit: speed": "Solve 3x + 5 = 20 km/h for x.",
    "unit: money (dollar)": "It costs $5 and $3x + 5 = 20",
    "unit: money (euro)": "Solve 3x + 5 = 20 € for x.",
    "dash as minus": "Solve x — 5 = 2x",
    "a run cut out of more math": "Solve 2x = x:2 + 3 for x.",
    "digit grouping: dot (4.500)": "Solve 3x = 4.500 for x.",
    "digit grouping: dot, sentence end": "Solve 7y - 4 = 24.500.",
    "leading decimal point": "Solve .5x + 5 = 20 for x.",
    "leading decimal point after a sign": "Solve 3x = -.5 for x.",
    "fraction before a letter": "Solve 1/2x + 1 = 4 for x.",
    "fraction before a spaced letter": "Solve 1/2 x + 1 = 4 for x.",
    "fraction before a parenthesis": "Solve 2x = 6/2(1 + 2) for x.",
    "the letter as a times sign": "Solve 2 x 3 = x + 1 for x.",
    "the letter as a times sign, unspaced on one side": "Solve x = 4 x5 - x for x.",
    "a number after a parenthesis (a lost exponent?)": "Solve (n + 3)2 = 16 for n.",
    "a number after a parenthesis, spaced": "Solve 3(x) 2 = 12 for x.",
}


@pytest.mark.parametrize(
    ("prompt", "solution"),
    [
        ("Solve 3x = 4.5 for x.", Fraction(3, 2)),
        ("Solve 3x = 0.375 for x.", Fraction(1, 8)),
        ("Solve 3x = 1234.500 for x.", Fraction(823, 2)),
        ("Solve x/2 + 1 = 4 for x.", Fraction(6)),
        ("Solve (x + 1)/2 = 3 for x.", Fraction(5)),
        ("Solve 2(n + 3) = 16 for n.", Fraction(5)),
        ("Solve (x + 1)(2) = 8 for x.", Fraction(3)),
        ("Solve 0.5x + 5 = 20 for x.", Fraction(30)),
    ],
)
def test_decimals_and_divisions_one_reading_allows_are_still_read(
    prompt: str, solution: Fraction
) -> None:
    spec = detect_linear(prompt)
    assert spec is not None and spec.solution == solution


@pytest.mark.parametrize("prompt", list(REFUSED.values()), ids=list(REFUSED))
def test_notation_read_without_certainty_is_refused(prompt: str) -> None:
    assert detect_linear(prompt) is None


@pytest.mark.parametrize(
    "prompt",
    [
        "What value of x satisfies 3x + 5 = 20?",
        "WHAT VALUE OF x SATISFIES 3x + 5 = 20? SHOW YOUR STEPS.",
        "Find the value of x that satisfies 3x + 5 = 20.",
    ],
)
def test_asking_for_the_value_that_satisfies_is_a_solve_request(prompt: str) -> None:
    spec = detect_linear(prompt)
    assert spec is not None and spec.solution == 5


@pytest.mark.parametrize(
    "prompt",
    [
        "Does x = 2 satisfy 3x + 5 = 20?",
        "Is 5 a solution of 3x + 5 = 20?",
        "Check whether x = 5 satisfies 3x + 5 = 20.",
        "Which value satisfies 3x + 5 = 20: 4 or 5?",
    ],
)
def test_a_verdict_on_a_value_is_still_refused(prompt: str) -> None:
    assert detect_linear(prompt) is None


@pytest.mark.parametrize(
    "prompt",
    [
        "Solve $\\frac{x}{4} + 3 = 5$ for $x$.",
        "Solve \\(2 \\cdot (y - 3) = 4y + 1\\)",
        "Solve: 3x + 5 = 20",
        "Solve 3x + 5 = 20. Show your steps, one step per line.",
        "What is x in 7x + 17 = 10? Show the working, one step per line, and end with "
        "'x = <value>'.",
    ],
)
def test_plain_and_simple_latex_forms_are_still_read(prompt: str) -> None:
    assert detect_linear(prompt) is not None


# --------------------------------------------------------------------- steps that follow


def spec(prompt: str) -> LinearSpec:
    found = detect_linear(prompt)
    assert found is not None, prompt
    return found


def checks(problem: str, *steps: str) -> list[tuple[bool, str]]:
    s = spec(problem)
    return [(c.ok, c.reason) for c in verify_steps(list(steps), s, s)]


def test_an_unrelated_identity_is_not_a_verified_step() -> None:
    """2r + 6r + 13 = 8r + 13 holds for every r: it states nothing about 8r + 13 = 34."""
    (ok, reason), _ = checks(
        "Solve 8r + 13 = 34 for r.",
        "Note that 2r + 6r + 13 = 8r + 13.\n",
        "Subtract 13 from both sides: 8r = 21.\n",
    )
    assert not ok and "identity" in reason


def test_an_identity_that_rewrites_the_equation_before_is_a_step() -> None:
    """Expanding a side of the equation before (or a link of a chain) is a derivation step."""
    got = checks(
        "Solve 2(x + 3) + 4 = 20 for x.",
        "Expand: 2(x + 3) + 4 = 2x + 10\n",
        "So 2x + 10 = 20, and subtracting 10 from both sides gives 2x = 10\n",
        "Divide both sides by 2: \\(\\frac{2x}{2} = x = 5\\)\n",
    )
    assert all(ok for ok, _ in got), got


def test_a_step_must_do_the_subtraction_it_names() -> None:
    """The issue's renumbered step: 'Subtract 8' on 8r + 13 = 34 cannot give 8r = 21 (true at the
    solution, so the old check passed it)."""
    (ok, reason), *_ = checks("Solve 8r + 13 = 34 for r.", "Subtract 8 from both sides: 8r = 21\n")
    assert not ok and "'Subtract 8 from both sides'" in reason


def test_a_step_must_divide_by_the_number_it_names() -> None:
    """'Divide both sides by 9/2' where the coefficient is 8: r = -7/8 holds, the step does not
    follow (9 and 2 are numbers of the problem, so no other rule catches it)."""
    got = checks(
        "Solve 8r + 9 = 2 for r.",
        "Subtract 9 from both sides: 8r = -7\n",
        "Divide both sides by 9/2: r = -7/8\n",
    )
    assert got[0][0] and not got[1][0] and "'Divide both sides by 9/2'" in got[1][1]


@pytest.mark.parametrize(
    ("problem", "steps"),
    [
        (
            "Solve 8r + 13 = 34 for r.",
            (
                "Subtract \\(13\\) from both sides: \\(8r + 13 - 13 = 34 - 13\\), "
                "so \\(8r = 21\\).\n",
                "Divide by \\(8\\): \\(r = \\frac{21}{8}\\).\n",
            ),
        ),
        (
            "Solve 8r + 13 = 34 for r.",
            ("Subtracting 13 from each side of the equation gives 8r = 21.\n", "r = 21/8\n"),
        ),
        (
            "Solve r/3 + 1 = 5 for r.",
            ("Add -1 to both sides: r/3 = 4\n", "Multiply both sides by 3: r = 12\n"),
        ),
        (
            "Solve 8r + 13 = 34 for r.",
            (
                "Subtract 13 from 34 to get 21, so 8r = 21.\n",
                "Divide by the coefficient: r = 21/8\n",
            ),
        ),
        (
            "Solve 3x + 5 = 20 for x.",
            ("Subtract 5 from both sides and divide by 3: x = 5\n",),
        ),
    ],
    ids=[
        "latex operands",
        "each side",
        "add a negative, multiply",
        "not read: no verdict",
        "two operations, one result",
    ],
)
def test_steps_that_do_what_they_name_verify(problem: str, steps: tuple[str, ...]) -> None:
    got = checks(problem, *steps)
    assert all(ok for ok, _ in got), got


def test_a_cached_number_in_two_roles_is_not_renumbered() -> None:
    """3x + 3 = 12: a 3 of a step is the coefficient or the term; renumbering would guess."""
    cached = spec("Solve 3x + 3 = 12 for x.")
    assert renumbering_for(cached, spec("Solve 3x + 5 = 12 for x.")) is None
    assert renumbering_for(spec("Solve 3x + 4 = 13 for x."), spec("Solve 3x + 5 = 14 for x."))


# --------------------------------------------------------------------- never worse than the model

#: Right for what was asked (x + 4 after solving), wrong for the equation alone.
ADD_FOUR = "Solve 3x + 5 = 20 for x, then add 4 to the result."
ADD_FOUR_ANSWER = (
    "We solve 3x + 5 = 20.\n"
    "Subtract 5 from both sides: 3x = 15.\n"
    "Divide by 3: 5. Adding 4 gives the result: x = 9.\n"
)
HINT = "What is x in 3x + 5 = 20? I need a hint."
HINT_ANSWER = "Start from 3x + 5 = 20. Hint: try values; x = 4 gives 17, a little too small.\n"


@pytest.mark.parametrize(
    ("prompt", "answer"),
    [(ADD_FOUR, ADD_FOUR_ANSWER), (HINT, HINT_ANSWER)],
    ids=["right for words the spec does not hold", "a hint, not a solution"],
)
def test_an_answer_to_a_request_not_understood_in_full_is_never_proven_wrong(
    prompt: str, answer: str
) -> None:
    s = spec(prompt)
    failure = check_integrity(answer, s)
    assert not failure.ok and failure.wrong  # the check alone would call it wrong
    assert not s.understood and not proven_wrong(answer, s, failure)


def test_a_wrong_answer_to_a_plain_request_is_still_proven_wrong() -> None:
    s = spec("Solve 3x + 5 = 20 for x. Show your steps.")
    answer = "3x + 5 = 20\n3x = 15\nx = 6\n"
    failure = check_integrity(answer, s)
    assert s.understood and proven_wrong(answer, s, failure)


def test_a_hint_without_a_value_is_not_wrong() -> None:
    s = spec("Solve 3x + 5 = 20 for x. Show your steps.")
    failure = check_integrity("Start from 3x + 5 = 20 and subtract 5 from both sides.\n", s)
    assert not failure.ok and not failure.wrong and not proven_wrong("", s, failure)


@pytest.mark.parametrize(
    ("prompt", "answer"),
    [(ADD_FOUR, ADD_FOUR_ANSWER), (HINT, HINT_ANSWER)],
    ids=["right for words the spec does not hold", "a hint, not a solution"],
)
def test_the_model_answer_is_served_unchanged(prompt: str, answer: str) -> None:
    cache = StepCache(InMemoryStore(), embedder=HashEmbedder(), tasks=[LinearEquationTask()])
    backend = ScriptedBackend(lambda _: answer)
    result = cache.generate(prompt, backend)
    assert result.text == answer and not result.verified and not result.fallback_used
    assert backend.calls == 1


def test_asking_for_the_final_value_line_is_an_answer_format() -> None:
    """A cached answer to "Solve ... Show your steps." may end with a check line; a request that
    asks to end with 'x = <value>' (the lexicon's words) must not get it."""
    plain = "Solve 3x + 5 = 20 for x. Show your steps."
    asked = "Solve 3x + 5 = 20 for x. Show your steps and end with 'x = <value>'."
    other = "Find the value of x if 3x + 5 = 20. Make the last line 'x = <value>'."
    specs = [detect_linear(p) for p in (plain, asked, other)]
    assert all(s is not None and s.understood for s in specs)
    task = LinearEquationTask()
    a, b, c = specs
    assert a is not None and b is not None and c is not None
    assert "final_line" in b.output and "final_line" in c.output
    assert task.compare(plain, a, asked, b).kinds == frozenset({DeltaKind.CORE})
    assert DeltaKind.CORE not in task.compare(asked, b, other, c).kinds  # both ask for it


def test_a_bare_value_is_no_answer_to_a_request_for_the_steps() -> None:
    """ "x = 5" verifies for "Solve ... for x." but, reused for "... Show your steps.", it shows no
    working: the check fails (no proof: a model's own bare answer is still served as written)."""
    bare = detect_linear("Solve 3x + 5 = 20 for x.")
    steps = detect_linear("Solve 3x + 5 = 20 for x. Show your steps.")
    assert bare is not None and steps is not None and "steps" in steps.output
    assert check_integrity("x = 5", bare).ok
    failing = check_integrity("x = 5", steps)
    assert not failing.ok and not failing.wrong
    assert check_integrity("3x = 15\nx = 5", steps).ok
    assert not verify_steps(["x = 5\n", "So x = 5."], steps, steps)[0].ok
    assert LinearEquationTask().compare("a", bare, "b", steps).kinds != frozenset({DeltaKind.CORE})

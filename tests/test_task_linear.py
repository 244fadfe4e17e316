"""The linear-equation task: detection, transfer, step verification, integrity, patch, fallback."""

from __future__ import annotations

import json
import re
import time
from fractions import Fraction
from pathlib import Path

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from stepcache_core.tasks.base import Assemble, Check, DeltaKind, PatchRequest
from stepcache_core.tasks.linear import LinearEquationTask, LinearSpec, detect_linear
from stepcache_core.tasks.linear.fallback import fallback_lines
from stepcache_core.tasks.linear.mathtext import (
    final_value,
    read_math,
)
from stepcache_core.tasks.linear.patch import patched_steps
from stepcache_core.types import Completion, StepOrigin

_ROOT = Path(__file__).resolve().parents[1]
_NAME = "qwen2.5-coder-0.5b-answers.jsonl"
#: The recorded answers: shared/fixtures next to or inside the checkout, or tests/fixtures.
FIXTURE_FILE = next(
    (
        p
        for p in (
            _ROOT / "tests" / "fixtures" / _NAME,
            _ROOT / "shared" / "fixtures" / _NAME,
            _ROOT.parent / "shared" / "fixtures" / _NAME,
        )
        if p.exists()
    ),
    _ROOT / "tests" / "fixtures" / _NAME,
)

TASK = LinearEquationTask()


def spec_of(prompt: str) -> LinearSpec:
    spec = TASK.detect(prompt)
    assert spec is not None, prompt
    return spec


def math_rows() -> list[dict[str, str]]:
    if not FIXTURE_FILE.exists():
        pytest.skip("fixtures not available")
    rows = [json.loads(line) for line in FIXTURE_FILE.read_text().splitlines() if line.strip()]
    return [r for r in rows if r["family"] == "math"]


def reuse(cached_prompt: str, answer: str, prompt: str) -> tuple[list[str], list[Check]]:
    """What the engine does: transfer the cached steps to the new spec, then verify."""
    cached, spec = spec_of(cached_prompt), spec_of(prompt)
    steps = TASK.transfer_steps(TASK.segment(answer), cached, spec)
    return steps, TASK.verify(steps, cached, spec)


# ---------------------------------------------------------------------------- detection

F = Fraction


@pytest.mark.parametrize(
    ("prompt", "var", "solution", "equation"),
    [
        ("Solve 3x + 5 = 20 for x", "x", F(5), "3x + 5 = 20"),
        ("Solve 3x + 5 = 20 for x.", "x", F(5), "3x + 5 = 20"),
        ("What is x in 3x + 5 = 20?", "x", F(5), "3x + 5 = 20"),
        ("Solve 2(y - 3) = 4y + 1", "y", F(-7, 2), "2(y - 3) = 4y + 1"),
        ("Solve x/4 + 3 = 5 for x.", "x", F(8), "x/4 + 3 = 5"),
        ("Find the value of k if 7 - 2k = 11.", "k", F(-2), "7 - 2k = 11"),
        ("Solve the equation -2z - 14 = -28.", "z", F(7), "-2z - 14 = -28"),
        (
            "Find the value of y if y/5 + 7 = 43/5. Explain step by step.",
            "y",
            F(8),
            "y/5 + 7 = 43/5",
        ),
        ("Solve 10x + 12 = 6x + 4 for x. Show your steps.", "x", F(-2), "10x + 12 = 6x + 4"),
        ("Solve for n: n/2 + 8 = 9", "n", F(2), "n/2 + 8 = 9"),
        ("Solve for n:\n\n4n - 2 = 22", "n", F(6), "4n - 2 = 22"),
        ("Solve 20 = 3x + 5", "x", F(5), "20 = 3x + 5"),
        ("If 3x + 5 = 20, what is x?", "x", F(5), "3x + 5 = 20"),
        ("3x + 5 = 20", "x", F(5), "3x + 5 = 20"),
        ("Solve 3x+5=20.", "x", F(5), "3x+5=20"),
        ("solve: 3x - 5 = 20 (show all steps)", "x", F(25, 3), "3x - 5 = 20"),
        ("Solve \\(3x+5=20\\) for x.", "x", F(5), "3x+5=20"),
        ("Solve $\\frac{x}{4} + 3 = 5$.", "x", F(8), "\\frac{x}{4} + 3 = 5"),
        ("Solve \\(2 \\cdot (y - 3) = 4y + 1\\)", "y", F(-7, 2), "2 \\cdot (y - 3) = 4y + 1"),
        ("Solve 0.5x + 1.25 = 3", "x", F(7, 2), "0.5x + 1.25 = 3"),
        ("Solve 2a + 3 = 7 for a", "a", F(2), "2a + 3 = 7"),
        ("What is x in 3x + 5 = 20? I need a hint.", "x", F(5), "3x + 5 = 20"),
        (
            "What is x in 7x + 17 = 10? Show the working, one step per line, and end with "
            "'x = <value>'.",
            "x",
            F(-1),
            "7x + 17 = 10",
        ),
    ],
)
def test_detect_forms(prompt: str, var: str, solution: Fraction, equation: str) -> None:
    spec = spec_of(prompt)
    assert (spec.variable, spec.solution, spec.equation) == (var, solution, equation)


@pytest.mark.parametrize(
    "prompt",
    [
        "Is x = 4 a solution of 3x + 5 = 20?",
        "Check whether x = 5 satisfies 3x + 5 = 20.",
        "Verify that x = 5 solves 3x + 5 = 20",
        "Graph y = 2x + 3",
        "What is the slope of the line 2x + 3 = 7?",
        "Explain why 2x + 1 = 2x + 3 has no solution.",
        "Solve x^2 = 4",
        "Solve x**2 = 4",
        "Solve x*x = 4",
        "Solve 1/x = 4",
        "Solve 2x + 3 = 2x + 3",  # identity
        "Solve 2x + 3 = 2x + 5",  # contradiction
        "Solve x + y = 5",
        "Solve 3x + 5 = 20 for y",
        "What is 3x + 5 when x = 2?",
        "Solve 3x + 5 = 20 and 2x - 1 = 3",
        "Solve 3x + 5 = 2" + "0" * 40,
        "Solve " + " + ".join(["x"] * 120) + " = 5",
        "Tell me a joke",
        "What is 2 + 2?",
        "Solve 3x + 5 = 20 = 4x",
        "Solve 3x + 5 >= 20",
        "Solve \\(\\sqrt{x} = 4\\)",
        "Write a function that solves 3x + 5 = 20",
        "Solve 3x + 5 = 20; evaluate it at x = 2",
    ],
)
def test_detect_rejects(prompt: str) -> None:
    assert TASK.detect(prompt) is None


def test_spec_constants_skeleton_and_cache() -> None:
    spec = spec_of("Solve 3x - 5 = 20 for x")
    assert spec.constants == (3, -5, 20)
    assert spec.skeleton == "#v-#=#"
    assert spec.lhs_linear == (3, -5) and spec.rhs_linear == (0, 20)
    assert spec_of("Solve 2(y - 3) = 4y + 1").constants == (2, -3, 4, 1)
    assert spec_of("Solve -2z - 14 = -28").constants == (-2, -14, -28)
    hits = detect_linear.cache_info().hits
    assert TASK.detect("Solve 3x - 5 = 20 for x") is spec
    assert detect_linear.cache_info().hits == hits + 1


@pytest.mark.parametrize(
    "prompt",
    [
        "Solve 3x + 5 = 21 and round to 2 decimal places",
        "Solve 3x + 5 = 20. Just give the answer.",
        "Solve 3x + 5 = 20 for x. Only give the final answer, no explanation.",
        "Solve 3x + 5 = 21 and give x as a decimal.",
        "Solve 3x + 5 = 21 and write x as a fraction.",
        "Solve 3x + 5 = 20 in words, without equations",
    ],
)
def test_answer_formats_the_integrity_check_cannot_enforce_get_no_spec(prompt: str) -> None:
    # a rounded, bare, decimal, fractional or worded answer is not checked for its format, so
    # such requests are reused on an exact repeat only, never from another request's steps
    assert TASK.detect(prompt) is None


def test_output_demands_that_stay_verifiable_are_part_of_the_spec() -> None:
    assert "check" in spec_of("Solve 3x + 5 = 20 and check your answer.").output
    assert spec_of("Solve 3x + 5 = 20").output == frozenset()


# ---------------------------------------------------------------------------- compare


@pytest.mark.parametrize(
    ("cached", "new", "kinds"),
    [
        ("Solve 3x + 5 = 20 for x.", "What is x in 3x + 5 = 20?", {DeltaKind.REWORDING}),
        ("Solve 3x + 5 = 20 for x.", "Solve 3y + 5 = 20 for y.", {DeltaKind.RENAME}),
        ("Solve 3x + 5 = 20 for x.", "Solve 3x + 7 = 22 for x.", {DeltaKind.CONSTANTS}),
        ("Solve 3x + 5 = 20 for x.", "Solve 3x - 5 = 20 for x.", {DeltaKind.CONSTANTS}),
        (
            "Solve 3x + 5 = 20 for x.",
            "Find the value of k if 3k + 7 = 22.",
            {DeltaKind.CONSTANTS, DeltaKind.RENAME, DeltaKind.REWORDING},
        ),
        ("Solve 3x + 5 = 20 for x.", "Solve 3x + 5 = 20 for x.", set()),
        (
            "Solve 3x + 5 = 20 for x.",
            "Solve 3x + 5 = 20 for x and check your answer.",
            {DeltaKind.CORE},
        ),
    ],
)
def test_compare(cached: str, new: str, kinds: set[DeltaKind]) -> None:
    delta = TASK.compare(cached, spec_of(cached), new, spec_of(new))
    assert set(delta.kinds) == kinds, delta.reason
    assert delta.core == (DeltaKind.CORE in kinds)


# ---------------------------------------------------------------------------- fixtures

#: Fixture rows (by equation) whose answer is right and whose every equation holds.
ACCEPTED = {
    "-2z - 14 = -28", "6(y - 2) = -42", "10y + 12 = 4y + 60", "7k + 3 = 10", "4y - 19 = -7",
    "5(y - 9) = -10", "13n + 19 = 5n + 83", "5z + 5 = -20", "9y - 5 = -50", "z/5 + 7 = 8",
    "-2y + 16 = 16", "-2y - 16 = -2", "5(x - 9) = -45", "8x + 14 = 3x - 26", "3x - 20 = -20",
    "4y + 17 = -15", "3y - 2 = -26", "4(z - 8) = -24", "11z + 14 = 6z + 44", "-5x + 3 = 38",
    "4k - 2 = 22", "7y + 13 = 4y + 22", "9x + 16 = 70", "-2x - 16 = -32", "3(n - 4) = -36",
}  # fmt: skip
#: Right final value, rejected anyway: a wrong step (9x = 109), or truncated inside the last span.
RIGHT_BUT_REJECTED = {"9x + 19 = 118", "4(k - 9) = -20", "10x + 12 = 6x + 4"}


def test_fixture_prompts_detect_with_the_recorded_solution() -> None:
    rows = math_rows()
    assert len(rows) == 40
    for row in rows:
        spec = spec_of(row["prompt"])
        assert spec.variable == row["variable"]
        assert spec.solution == Fraction(row["solution"])
        assert spec.equation == row["equation"]


def test_fixture_final_answers() -> None:
    right = set()
    for row in math_rows():
        var = row["variable"]
        final = final_value(read_math(row["output"], var), var)
        if final is not None and final[0] == Fraction(row["solution"]):
            right.add(row["equation"])
    assert right == ACCEPTED | RIGHT_BUT_REJECTED  # 28 of 40 final answers are right
    assert len(right) == 28


def test_fixture_integrity() -> None:
    accepted = set()
    for row in math_rows():
        check = TASK.integrity(row["output"], spec_of(row["prompt"]))
        assert check.ok or check.reason
        if check.ok:
            accepted.add(row["equation"])
    assert accepted == ACCEPTED  # 25 of 40


@pytest.mark.parametrize(
    ("equation", "reason"),
    [
        ("7x + 17 = 10", "7x = -3 does not hold"),
        ("n/2 + 8 = 9", "code block"),
        ("8x + 1 = 2x + 73", "6 = 73 is false"),
        ("9x + 19 = 118", "9x = 109 does not hold"),
        ("4(k - 9) = -20", "unclosed"),
    ],
)
def test_fixture_integrity_reasons(equation: str, reason: str) -> None:
    row = next(r for r in math_rows() if r["equation"] == equation)
    check = TASK.integrity(row["output"], spec_of(row["prompt"]))
    assert not check.ok and reason in check.reason


def test_fixture_answers_verify_against_themselves_exactly_when_sound() -> None:
    """A sound fixture answer passes every step when reused for the same prompt."""
    for row in math_rows():
        if row["equation"] not in ACCEPTED:
            continue
        spec = spec_of(row["prompt"])
        checks = TASK.verify(TASK.segment(row["output"]), spec, spec)
        assert all(c.ok for c in checks), (row["equation"], [c.reason for c in checks])


def fixture(equation: str) -> dict[str, str]:
    return next(r for r in math_rows() if r["equation"] == equation)


def test_fixture_reuse_constants_change() -> None:
    """A changed constant re-instantiates the whole derivation (it used to skip reuse)."""
    row = fixture("7k + 3 = 10")
    prompt = "Find the value of k if 7k + 3 = 17."
    steps, checks = reuse(row["prompt"], row["output"], prompt)
    assert all(c.ok for c in checks), [c.reason for c in checks]
    assert checks[0].ok and "7k + 3 = 17" in steps[0]  # the restated intro
    text = TASK.stitch(steps)
    spec = spec_of(prompt)
    assert TASK.integrity(text, spec).ok
    assert final_value(read_math(text, "k"), "k") is not None
    assert final_value(read_math(text, "k"), "k")[0] == 2  # type: ignore[index]
    for step in steps:
        assert not re.search(r"(?<!\d)10(?!\d)", step), step  # 10 is stale
        assert "boxed{1}" not in step
    assert TASK.worth_patching(checks)
    # step by step, without re-instantiation, nothing derived survives: reuse would be skipped
    cached = spec_of(row["prompt"])
    plain = [TASK.transfer(s, cached, spec) for s in TASK.segment(row["output"])]
    old = TASK.verify(plain, cached, spec)
    assert not all(c.ok for c in old) and not TASK.worth_patching(old)


def test_fixture_reuse_rename_and_rewording() -> None:
    row = fixture("7k + 3 = 10")
    for prompt in (
        "Find the value of m if 7m + 3 = 10. Explain step by step.",
        "Solve 7k + 3 = 10 for k.",
        "What is k in 7k + 3 = 10?",
        "Solve for p: 7p + 3 = 10",
    ):
        steps, checks = reuse(row["prompt"], row["output"], prompt)
        assert all(c.ok for c in checks), (prompt, [c.reason for c in checks])
        spec = spec_of(prompt)
        assert TASK.integrity(TASK.stitch(steps), spec).ok
        if spec.variable != "k":
            assert not re.search(r"(?<![A-Za-z\\])k(?![A-Za-z])", "".join(steps))


@pytest.mark.parametrize("equation", sorted(ACCEPTED))
def test_fixture_rename_keeps_every_step(equation: str) -> None:
    row = fixture(equation)
    new_var = "q" if row["variable"] != "q" else "w"
    prompt = f"Solve {equation.replace(row['variable'], new_var)} for {new_var}."
    _, checks = reuse(row["prompt"], row["output"], prompt)
    assert all(c.ok for c in checks), [c.reason for c in checks]


@pytest.mark.parametrize("equation", sorted(ACCEPTED))
def test_fixture_constant_change_never_serves_old_numbers(equation: str) -> None:
    """Bump the last constant: no step that states the old result may pass, and an answer that
    passes entirely has the new solution."""
    row = fixture(equation)
    cached = spec_of(row["prompt"])
    new_eq = re.sub(r"(\d+)(?!.*\d)", lambda m: str(int(m.group(1)) + 3), equation)
    prompt = f"Solve {new_eq} for {row['variable']}."
    spec = spec_of(prompt)
    steps, checks = reuse(row["prompt"], row["output"], prompt)
    stale = {abs(c) for c in cached.constants} - {abs(c) for c in spec.constants}
    # the new solution may be written with an old number (7k + 3 = 13: k = 10/7, 10/-7 ...)
    stale -= {Fraction(abs(spec.solution.numerator)), Fraction(spec.solution.denominator)}
    for step, check in zip(steps, checks, strict=True):
        if check.ok:
            numbers = {Fraction(n) for n in re.findall(r"\d+", step)}
            assert not (numbers & stale), (step, check)
    text = TASK.stitch(steps)
    if all(c.ok for c in checks) and TASK.integrity(text, spec).ok:
        final = final_value(read_math(text, spec.variable), spec.variable)
        assert final is not None and final[0] == spec.solution != cached.solution
    # transferred step by step (no re-instantiation) the answer never passes whole
    plain = [TASK.transfer(s, cached, spec) for s in TASK.segment(row["output"])]
    assert not all(c.ok for c in TASK.verify(plain, cached, spec))


def test_fixture_constant_change_is_mostly_reused() -> None:
    """Over the sound fixture answers, bumping the last constant is served from cache for most."""
    reused = 0
    for equation in sorted(ACCEPTED):
        row = fixture(equation)
        new_eq = re.sub(r"(\d+)(?!.*\d)", lambda m: str(int(m.group(1)) + 3), equation)
        prompt = f"Solve {new_eq} for {row['variable']}."
        steps, checks = reuse(row["prompt"], row["output"], prompt)
        reused += (
            all(c.ok for c in checks) and TASK.integrity(TASK.stitch(steps), spec_of(prompt)).ok
        )
    # 19 of 25; the rest reuse a number the verifier calls stale, or have a number in two roles
    # (5z + 5 = -20) that is not renumbered
    assert reused >= 19, reused


# ---------------------------------------------------------------------------- hand-written answers

CLEAN = (
    "To solve \\(3x + 5 = 20\\), we isolate x.\n\n"
    "1. Subtract 5 from both sides: \\(3x + 5 - 5 = 20 - 5\\), so \\(3x = 15\\).\n"
    "2. Divide both sides by 3: \\(x = \\frac{15}{3} = 5\\).\n\n"
    "Therefore, \\(\\boxed{5}\\).\n"
)


def test_clean_answer_against_new_constants() -> None:
    """3x + 5 = 20 -> 3x + 7 = 22: every step is re-instantiated and verifies (it used to fail
    from the first derived step on)."""
    steps, checks = reuse("Solve 3x + 5 = 20 for x", CLEAN, "Solve 3x + 7 = 22 for x")
    assert len(steps) == 4
    assert "3x + 7 = 22" in steps[0] and checks[0].ok
    assert all(c.ok for c in checks), [c.reason for c in checks]
    for step in steps:
        assert "Subtract 5" not in step and "= 20" not in step and "20 - 5" not in step
    assert "Subtract 7 from both sides: \\(3x + 7 - 7 = 22 - 7\\), so \\(3x = 15\\)" in steps[1]
    assert TASK.integrity(TASK.stitch(steps), spec_of("Solve 3x + 7 = 22 for x")).ok
    # `transfer` alone (one step at a time, no re-instantiation) keeps the old verdicts
    cached, spec = spec_of("Solve 3x + 5 = 20 for x"), spec_of("Solve 3x + 7 = 22 for x")
    plain = [TASK.transfer(s, cached, spec) for s in TASK.segment(CLEAN)]
    old = TASK.verify(plain, cached, spec)
    assert not old[1].ok and "'Subtract 5 from both sides'" in old[1].reason
    # 3x = 15 and x = 5 still hold for 3x + 7 = 22, but "divide by 3" does not follow from the
    # last verified equation (the problem: step 1 failed); the closing line only restates
    assert not old[2].ok and "'Divide both sides by 3'" in old[2].reason and old[3].ok


def test_clean_answer_never_states_a_wrong_value() -> None:
    steps, checks = reuse("Solve 3x + 5 = 20 for x", CLEAN, "Solve 3x - 5 = 20 for x")
    spec = spec_of("Solve 3x - 5 = 20 for x")
    assert spec.solution == F(25, 3)
    for step, check in zip(steps, checks, strict=True):
        if check.ok:
            assert not re.search(r"x = 5\b", step) and "boxed{5}" not in step, step
            final = final_value(read_math(step, "x"), "x")
            assert final is None or final[0] == F(25, 3)
    # "Add 5 to both sides: 3x - 5 + 5 = 20 + 5" is right, but 5 (once +5) counts as stale
    assert not checks[1].ok and "stale number 5" in checks[1].reason
    assert not TASK.worth_patching(checks)


def test_stale_constant_in_prose_fails() -> None:
    cached = spec_of("Solve 3x - 5 = 20 for x")
    spec = spec_of("Solve 3x + 5 = 20 for x")
    steps = ["Add 5 to both sides.\n", "We now divide by 3.\n", "x = 5\n"]
    checks = TASK.verify(steps, cached, spec)
    assert [c.ok for c in checks] == [False, True, True]
    assert "stale number 5" in checks[0].reason


def test_prose_numbers_need_backing() -> None:
    spec = spec_of("Solve 3x + 5 = 20 for x")
    assert not TASK.verify(["Multiply both sides by 17.\n"], spec, spec)[0].ok
    ok = TASK.verify(
        ["Step 1: subtract 5 from both sides.\n", "So 3x = 15; halve 15.\n"], spec, spec
    )
    assert [c.ok for c in ok] == [True, True]
    assert TASK.verify(["Now isolate the variable.\n"], spec, spec)[0].reason == "prose"


@pytest.mark.parametrize(
    "step",
    [
        "Let y = 3x, then y = 15.\n",  # another variable
        "Then \\(x^2 = 25\\).\n",  # non-linear
        "So 7 = 8.\n",  # false numeric identity
        "```python\nprint(20 - 5)\n```\n",  # code with numbers
        "We get \\(x = \\)\n",  # incomplete
        "Thus \\(\\sqrt{x} = 4\\)\n",  # unsupported LaTeX
        "Hence \\(\\boxed{6}\\).\n",  # wrong boxed value
        "\\(x = 4\\)\n",  # wrong value
    ],
)
def test_bad_steps_fail(step: str) -> None:
    spec = spec_of("Solve 3x + 5 = 20 for x")
    assert not TASK.verify([step], spec, spec)[0].ok


@pytest.mark.parametrize(
    ("text", "ok", "reason"),
    [
        ("3x = 15\nx = 5\n", True, ""),
        ("3x = 15\nThe answer is \\(\\boxed{5}\\).", True, ""),
        ("Subtract 5 from both sides: 3x = 15\nDivide by", False, "no final"),
        ("3x = 15\nx = 6\n", False, "does not hold"),
        ("Let y = 3x. Then y = 15 and x = 5.\n", False, "another variable"),
        ("3x = 15 so x = 5\n\\(\\boxed{6}\\)", False, "boxed"),
        ("2 + 2 = 5, x = 5", False, "false"),
    ],
)
def test_integrity(text: str, ok: bool, reason: str) -> None:
    check = TASK.integrity(text, spec_of("Solve 3x + 5 = 20 for x"))
    assert check.ok == ok and reason in check.reason


# ---------------------------------------------------------------------------- transfer


def test_rename_respects_words_and_latex_commands() -> None:
    cached, spec = spec_of("Solve 3x + 5 = 20 for x"), spec_of("Solve 3t + 5 = 20 for t")
    step = "Next, the value of x: \\(3 \\times x = 15\\), \\(\\text{so } x = 5\\); 3x = 15.\n"
    out = TASK.transfer(step, cached, spec)
    assert (
        out == "Next, the value of t: \\(3 \\times t = 15\\), \\(\\text{so } t = 5\\); 3t = 15.\n"
    )


def test_rename_of_an_english_letter_only_in_math() -> None:
    cached, spec = spec_of("Solve 2a + 3 = 7 for a"), spec_of("Solve 2b + 3 = 7 for b")
    out = TASK.transfer("Take a look: \\(2a = 4\\), so \\(a = 2\\).\n", cached, spec)
    assert out == "Take a look: \\(2b = 4\\), so \\(b = 2\\).\n"


def test_restate_tolerates_spacing_and_latex() -> None:
    cached = spec_of("Solve x/2 + 5 = 17/2 for x")
    spec = spec_of("Solve x/2 + 6 = 19/2 for x")
    assert (
        TASK.transfer("Solve \\( \\frac{x}{2} + 5 = \\frac{17}{2} \\) now.", cached, spec)
        == "Solve \\( x/2 + 6 = 19/2 \\) now."
    )
    assert TASK.transfer("Solve x/2+5 = 17/2 now.", cached, spec) == "Solve x/2 + 6 = 19/2 now."
    # not a restatement: part of a larger expression, or other numbers
    assert TASK.transfer("x/2 + 5 = 17/2 - 5", cached, spec) == "x/2 + 5 = 17/2 - 5"
    assert TASK.transfer("x/2 + 5 = 17/21", cached, spec) == "x/2 + 5 = 17/21"


# ---------------------------------------------------------------------------- worth_patching


def test_worth_patching_rule() -> None:
    intro, derived = Check(True, "restated problem"), Check(True, "derived: 2 equation(s) hold")
    bad = Check(False, "x")
    assert not TASK.worth_patching([intro, intro, bad, bad])
    assert not TASK.worth_patching([bad, derived, derived])
    assert not TASK.worth_patching([Check(True, "prose"), bad, derived])
    assert TASK.worth_patching([intro, derived, bad, bad, bad])
    assert TASK.worth_patching([intro, derived, derived])


# ---------------------------------------------------------------------------- patch and fallback


class Recorder:
    """A fake backend: records prompts, answers with canned text."""

    def __init__(self, *answers: str) -> None:
        self.answers = list(answers)
        self.prompts: list[str] = []

    def __call__(
        self, prompt: str, max_tokens: int | None, assemble: Assemble | None = None
    ) -> Completion:
        self.prompts.append(prompt)
        return Completion(self.answers[min(len(self.prompts), len(self.answers)) - 1], 10, 5)


TWO_STEP = (
    "To solve \\(10x + 12 = 6x + 4\\):\n\n"
    "1. Subtract \\(6x\\) from both sides: \\(4x + 12 = 4\\).\n"
    "2. Subtract 12 from both sides: \\(4x = -8\\).\n"
    "3. Divide by 4: \\(x = -3\\).\n"  # wrong: x = -2
    "4. So \\(\\boxed{-3}\\).\n"
)


def patch_request(attempt: int = 0, last_failure: str = "") -> PatchRequest[LinearSpec]:
    """A model's answer whose last steps are wrong, for a reworded prompt (or its own)."""
    cached_prompt, prompt = "Solve 10x + 12 = 6x + 4 for x.", "What is x if 10x + 12 = 6x + 4?"
    cached, spec = spec_of(cached_prompt), spec_of(prompt)
    steps = TASK.transfer_steps(TASK.segment(TWO_STEP), cached, spec)
    checks = TASK.verify(steps, cached, spec)
    return PatchRequest(prompt, spec, steps, checks, attempt, last_failure, 200)


def test_patch_prompt_and_stitching() -> None:
    request = patch_request()
    assert [c.ok for c in request.checks] == [True, True, True, False, False]
    assert TASK.worth_patching(request.checks)
    fake = Recorder("3. Divide both sides by 4: x = -2\nx = -2\n")
    outcomes = TASK.patch(request, fake)
    assert outcomes is not None
    prompt = fake.prompts[0]
    assert "What is x if 10x + 12 = 6x + 4?" in prompt
    assert request.steps[0] in prompt and request.steps[1] in prompt
    assert "verified" in prompt and "x = <value>" in prompt
    assert "x = -3" not in prompt  # the failing steps are not sent
    assert [o.origin for o in outcomes[:3]] == [StepOrigin.REUSED] * 3
    assert {o.origin for o in outcomes[3:]} == {StepOrigin.PATCHED}
    text = TASK.stitch([o.text for o in outcomes])
    assert text.startswith("".join(request.steps[:3]))
    assert TASK.integrity(text, request.spec).ok


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(
        [
            "3. Divide both sides by 4: x = -2\nx = -2\n",
            "  \n\n3. Divide by 4:\n   x = -2\n\\[ x = -2 \\]\nx = -2",
            "{echo}3. Divide both sides by 4: x = -2\nx = -2\n",
            "{echo_start}x = -2\n",
            "\n{echo}\n\nx = -2\n",
        ]
    ),
    st.data(),
)
def test_patched_steps_settle_once_and_drop_a_repeated_prefix(
    template: str, data: st.DataObject
) -> None:
    """What the engine streams while the backend writes a patch is never taken back."""
    prefix = list(patch_request().steps[:3])
    echo = "".join(prefix)
    raw = template.format(echo=echo, echo_start=echo[: len(echo) // 2])
    final = patched_steps(prefix, raw)
    assert [o.text for o in final[:3]] == prefix
    if "{echo}" in template:  # the repeat is removed, the continuation kept
        assert "".join(o.text for o in final[3:]).count("Subtract") == 0
    cut = data.draw(st.integers(0, len(raw)))
    settled = patched_steps(prefix, raw[:cut])[:-1]
    assert final[: len(settled)] == settled


def test_patch_repair_tells_what_was_wrong() -> None:
    fake = Recorder("x = -2\n")
    TASK.patch(patch_request(attempt=1, last_failure="final answer x = 3, expected -2"), fake)
    assert "final answer x = 3, expected -2" in fake.prompts[0]
    TASK.patch(patch_request(attempt=0, last_failure=""), fake)
    assert "rejected" not in fake.prompts[1]
    assert TASK.patch(patch_request(), Recorder("   \n")) is None


def test_wrong_patch_then_fallback_is_right() -> None:
    request = patch_request()
    outcomes = TASK.patch(request, Recorder("So x = 4 / 4 = 1.\n"))
    assert outcomes is not None
    check = TASK.integrity(TASK.stitch([o.text for o in outcomes]), request.spec)
    assert not check.ok and "does not hold" in check.reason
    fallback = TASK.fallback(PatchRequest(**{**_fields(request), "last_failure": check.reason}))
    assert fallback is not None
    text = TASK.stitch([o.text for o in fallback])
    assert TASK.integrity(text, request.spec).ok, text
    assert [o.origin for o in fallback[:3]] == [StepOrigin.REUSED] * 3
    assert {o.origin for o in fallback[3:]} == {StepOrigin.FALLBACK}
    assert text.rstrip().endswith("x = -2")


def _fields(request: PatchRequest[LinearSpec]) -> dict[str, object]:
    return {k: getattr(request, k) for k in PatchRequest.__dataclass_fields__}


def test_fallback_from_scratch_text() -> None:
    spec = spec_of("Solve 2(y - 3) = 4y + 1 for y")
    assert fallback_lines(spec) == [
        "Start with the equation: 2(y - 3) = 4y + 1\n",
        "Simplify both sides: 2y - 6 = 4y + 1\n",
        "Subtract 4y from both sides: -2y - 6 = 1\n",
        "Add 6 to both sides: -2y = 7\n",
        "Divide both sides by -2: y = -7/2\n",
        "y = -7/2\n",
    ]
    assert fallback_lines(spec_of("Solve 3x - 5 = 20"))[-1] == "x = 25/3\n"
    assert fallback_lines(spec_of("Solve 7 = x + 2"))[1].startswith("Swap the sides")


def test_fallback_on_a_model_answer_keeps_its_verified_prefix() -> None:
    row = fixture("9x + 19 = 118")  # the model wrote 9x = 109, then x = 11
    spec = spec_of(row["prompt"])
    steps = TASK.segment(row["output"])
    checks = TASK.verify(steps, spec, spec)
    first_bad = next(i for i, c in enumerate(checks) if not c.ok)
    outcomes = TASK.fallback(PatchRequest(row["prompt"], spec, steps, checks))
    assert outcomes is not None
    assert [o.text for o in outcomes[:first_bad]] == steps[:first_bad]
    assert TASK.integrity(TASK.stitch([o.text for o in outcomes]), spec).ok


coef = st.integers(-12, 12)


@settings(max_examples=150, deadline=None)
@given(coef, coef, coef, coef)
def test_fallback_always_passes_integrity(a: int, b: int, c: int, d: int) -> None:
    assume(a != c)
    lhs = f"{a}x + {b}" if b >= 0 else f"{a}x - {-b}"
    rhs = f"{c}x + {d}" if d >= 0 else f"{c}x - {-d}"
    spec = detect_linear(f"Solve {lhs} = {rhs} for x.")
    assert spec is not None
    steps = [o.text for o in TASK.fallback(PatchRequest("p", spec, [], [])) or []]
    assert TASK.integrity("".join(steps), spec).ok
    assert all(ch.ok for ch in TASK.verify(steps, spec, spec))


forms = st.sampled_from(["{a}x + {b} = {c}", "{a}(x - {b}) = {c}", "x/{a} + {b} = {c}"])


@settings(max_examples=150, deadline=None)
@given(forms, st.integers(1, 12), st.integers(1, 30), st.integers(-40, 40), st.data())
def test_verifier_invariants(form: str, a: int, b: int, c: int, data: st.DataObject) -> None:
    """A generated correct derivation verifies; changing one number in an equation breaks it."""
    prompt = "Solve " + form.format(a=a, b=b, c=c)
    spec = detect_linear(prompt)
    assume(spec is not None and spec.solution != 0)
    assert spec is not None
    steps = fallback_lines(spec)
    assert all(ch.ok for ch in TASK.verify(steps, spec, spec))
    i = data.draw(st.integers(0, len(steps) - 1))
    m = list(re.finditer(r"\d+", steps[i]))[-1]  # the last number sits on the right-hand side
    bumped = steps[i][: m.start()] + str(int(m.group()) + 1) + steps[i][m.end() :]
    assert not TASK.verify([*steps[:i], bumped], spec, spec)[i].ok
    assert not TASK.integrity("".join([*steps[:i], bumped, *steps[i + 1 :]]), spec).ok


def test_verify_is_fast_on_a_real_answer() -> None:
    row = fixture("13n + 19 = 5n + 83")
    cached = spec_of(row["prompt"])
    steps = TASK.segment(row["output"])
    prompts = [f"Solve 13n + 19 = 5n + {k} for n." for k in range(100, 140)]
    start = time.perf_counter()
    for prompt in prompts:
        spec = spec_of(prompt)
        moved = TASK.transfer_steps(steps, cached, spec)
        TASK.verify(moved, cached, spec)
    per_request = (time.perf_counter() - start) / len(prompts)
    assert per_request < 0.05  # typically ~5 ms including a cold sympy detect and re-instantiation


def test_an_identity_shaped_like_the_problem_is_not_a_misstatement() -> None:
    """An expansion such as 2(x + 3) + 4 = 2x + 10 holds for every x: it says nothing about the
    problem 2(x + 3) + 4 = 3x + 4, unlike 2(x + 2) + 6 = 4x - 2 (true only at its solution 6);
    it rewrites the problem's left side, so it is a step of the derivation."""
    spec = spec_of("Solve 2(x + 3) + 4 = 3x + 4 for x.")
    expansion, misstated = task_checks(spec, "2(x + 3) + 4 = 2x + 10\n", "2(x + 2) + 6 = 4x - 2\n")
    assert expansion.ok and not misstated.ok and "misstates" in misstated.reason


def task_checks(spec: LinearSpec, *steps: str) -> list[Check]:
    return [TASK.verify([step], spec, spec)[0] for step in steps]


@pytest.mark.parametrize(
    ("lhs", "rhs", "expected"),
    [
        ("3x + 5", "20", Fraction(5)),
        ("2(x + 3) + 4", "x + 16", Fraction(6)),
        ("x/3 - 1/2", "x/4", Fraction(6)),
        ("0.5x", "1.25", Fraction(5, 2)),
        ("1/(x - 1)", "2", None),  # the variable in a denominator
        ("x(x + 1)", "2", None),  # degree 2
        ("3x + 5", "3x + 7", None),  # no solution
        ("3x + y", "2", None),  # another symbol
        ("3x +", "2", None),  # not an expression
    ],
)
def test_the_sympy_cross_check_solves_linear_equations_only(
    lhs: str, rhs: str, expected: Fraction | None
) -> None:
    from stepcache_core.tasks.linear.parse import _sympy_solution

    assert _sympy_solution(lhs, rhs, "x") == expected

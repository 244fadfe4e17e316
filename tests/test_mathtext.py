"""Reading equations out of model text: LaTeX/plain to exact polynomials."""

from __future__ import annotations

import time
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stepcache_core.tasks.linear.expr import (
    MathTextError,
    NonLinearError,
    OtherVariableError,
    format_fraction,
    format_linear,
    linear,
    poly,
    signed_numbers,
)
from stepcache_core.tasks.linear.mathtext import (
    MAX_LATEX_DEPTH,
    constant_value,
    final_value,
    latex_to_plain,
    read_math,
)
from stepcache_core.tasks.linear.parse import detect_linear
from stepcache_core.tasks.linear.verify import check_integrity

F = Fraction


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("3x + 5", (F(3), F(5))),
        ("2(x - 3)", (F(2), F(-6))),
        ("x/4 + 3", (F(1, 4), F(3))),
        ("-2x - 14", (F(-2), F(-14))),
        ("7 - 2x", (F(-2), F(7))),
        ("0.5x + 1.25", (F(1, 2), F(5, 4))),
        ("((x)/(2)) + 5", (F(1, 2), F(5))),
        ("(1/2)x", (F(1, 2), F(0))),
        ("x ((1)/(5)) + 5", (F(1, 5), F(5))),
        ("3 * (x + 1) / 3", (F(1), F(1))),
        ("--x", (F(1), F(0))),
        ("43/5", (F(0), F(43, 5))),
        ("x*x/x", None),  # division by the variable: conservatively non-linear
    ],
)
def test_linear_forms(expr: str, expected: tuple[Fraction, Fraction] | None) -> None:
    if expected is None:
        with pytest.raises(NonLinearError):
            linear(expr, "x")
    else:
        assert linear(expr, "x") == expected


@pytest.mark.parametrize(
    ("expr", "error"),
    [
        ("x*x", NonLinearError),
        ("x^2", NonLinearError),
        ("1/x", NonLinearError),
        ("3x + 2y", OtherVariableError),
        ("x ** 2", MathTextError),
        ("x // 2", MathTextError),
        ("5/0", MathTextError),
        ("3 4", MathTextError),
        ("(x + 1", MathTextError),
        ("x +", MathTextError),
        ("", MathTextError),
        ("1" * 31, MathTextError),
        ("1+" * 200, MathTextError),
        ("__import__('os')", MathTextError),
        ("x; 2", MathTextError),
    ],
)
def test_rejects(expr: str, error: type[Exception]) -> None:
    with pytest.raises(error):
        linear(expr, "x")


@pytest.mark.parametrize(
    ("expr", "outcome"),
    [
        ("3 5", (MathTextError, "two numbers side by side")),
        (".5 3", (MathTextError, "two numbers side by side")),
        ("1 2/3", (MathTextError, "two numbers side by side")),
        ("1.5.5", (MathTextError, "two numbers side by side")),
        ("x .5", (F(0), F(1, 2))),
        ("(x).5", (F(0), F(1, 2))),
        ("2(x)3", (F(0), F(6))),
        ("x2", (F(0), F(2))),
        ("3 ( 4 )", (F(12),)),
        ("+-+x", (F(0), F(-1))),
        ("(x+1)(x-1)", (F(-1), F(0), F(1))),
        ("x*x*x*x", (F(0), F(0), F(0), F(0), F(1))),
        ("x*x*x*x*x", (NonLinearError, "degree too high")),
        ("2**x", (MathTextError, "a doubled operator (** or //)")),
        ("x*/2", (MathTextError, "a doubled operator (** or //)")),
        ("(x", (MathTextError, "unbalanced parentheses")),
        ("x)", (MathTextError, "unexpected ')'")),
        ("()", (MathTextError, "unexpected ')'")),
        ("*3", (MathTextError, "unexpected '*'")),
        ("x=1", (MathTextError, "unexpected '='")),
        ("   ", (MathTextError, "empty expression")),
        ("3x+", (MathTextError, "expression ends early")),
        ("2y", (OtherVariableError, "another variable 'y'")),
        ("1/(2x)", (NonLinearError, "division by the variable")),
        ("x/(x-x)", (MathTextError, "division by zero")),
        ("x^2", (NonLinearError, "a power (^)")),
        ("1" * 31, (MathTextError, "number too long")),
    ],
)
def test_poly_values_and_errors_exactly(
    expr: str, outcome: tuple[Fraction, ...] | tuple[type[MathTextError], str]
) -> None:
    """The parser's edge cases, pinned: which juxtapositions multiply, and each error's message."""
    if outcome and isinstance(outcome[0], type):
        with pytest.raises(MathTextError) as info:
            poly(expr, "x")
        assert (type(info.value), str(info.value)) == outcome
    else:
        assert poly(expr, "x") == outcome


def test_poly_is_memoized_and_exact() -> None:
    assert poly("x/3 + x/6", "x") == (F(0), F(1, 2))
    assert poly("x/3 + x/6", "x") is poly("x/3 + x/6", "x")


def test_signed_numbers() -> None:
    assert signed_numbers("3x - 5") == [3, -5]
    assert signed_numbers("-2z - 14") == [-2, -14]
    assert signed_numbers("2(y - 3)") == [2, -3]
    assert signed_numbers("y/5 + 7") == [5, 7]


@pytest.mark.parametrize(
    ("latex", "plain_value"),
    [
        (r"\frac{3}{2}", F(3, 2)),
        (r"\dfrac{-10}{5}", F(-2)),
        (r"-\frac{3}{7}", F(-3, 7)),
        (r"3 \cdot 4", F(12)),
        (r"3 \times 4", F(12)),
        (r"12 \div 4", F(3)),
        (r"\left( 2 + 1 \right) \cdot 2", F(6)),
        (r"\boxed{5}", F(5)),
        (r"\frac12", F(1, 2)),
        (r"\frac{\frac{1}{2}}{2}", F(1, 4)),
        ("6 − 1", F(5)),
        (r"{3} \, \cdot \, 2", F(6)),
    ],
)
def test_latex_to_plain(latex: str, plain_value: Fraction) -> None:
    assert constant_value(latex_to_plain(latex), "x") == plain_value


def test_latex_separators_and_text() -> None:
    plain = latex_to_plain(r"5(y - 9) = -10 \implies y - 9 = \frac{-10}{5}")
    assert plain.split(";")[0].strip() == "5(y - 9) = -10"
    assert ";" in latex_to_plain(r"x = 5 \text{ so } x > 0")
    assert latex_to_plain(r"x \\ y") == "x ; y"


@pytest.mark.parametrize("bad", [r"\sqrt{2}", r"x \pm 1", r"\frac{1}{2", r"\left| x \right|"])
def test_latex_unsupported(bad: str) -> None:
    with pytest.raises(MathTextError):
        latex_to_plain(bad)


def test_read_math_finds_spans_plain_lines_and_chains() -> None:
    text = (
        "1. **Subtract 5**: \\(3x + 5 - 5 = 20 - 5\\)\n"
        "   \\[\n   3x = 15\n   \\]\n"
        "2. Divide by 3: x = 15/3 = 5\n"
        "**x = 5**\n"
        "Therefore, the value of \\( x \\) is \\(\\boxed{5}\\).\n"
    )
    r = read_math(text, "x")
    sides = [(rel.lhs, rel.rhs) for rel in r.relations]
    assert sides == [
        ("3x + 5 - 5", "20 - 5"),
        ("3x", "15"),
        ("x", "15/3"),
        ("15/3", "5"),
        ("x", "5"),
    ]
    assert [(e.text, e.boxed) for e in r.expressions] == [("x", False), ("(5)", True)]
    assert sorted(r.prose_numbers) == [3, 5]  # "1." and "2." are enumeration markers
    assert r.problems == ()
    assert final_value(r, "x") == (F(5), r.expressions[-1].pos)


def test_read_math_problems() -> None:
    assert read_math("```python\nx = 4\n```\n", "x").problems
    assert not read_math("```\nprint('hello')\n```\n", "x").problems
    assert read_math("Therefore \\(\\boxed{4", "x").problems
    assert read_math("we get \\(x = \\)", "x").problems
    assert read_math("\\(x \\approx 8.33\\)", "x").problems
    assert read_math("\\(\\sqrt{x} = 2\\)", "x").problems


def test_prose_letters_skip_words_commands_and_english() -> None:
    r = read_math("Let's isolate x; a step, I think, e.g. next \\times. Then y.", "x")
    assert r.prose_letters == {"x", "y"}


def test_final_value_is_last_statement() -> None:
    r = read_math("x = 3 + 4\nso x = 7\n", "x")
    assert final_value(r, "x") is not None
    assert final_value(r, "x")[0] == 7  # type: ignore[index]
    assert final_value(read_math("no answer here", "x"), "x") is None
    boxed = read_math(r"Thus \[\boxed{-\frac{3}{7}}\]", "x")
    assert final_value(boxed, "x")[0] == F(-3, 7)  # type: ignore[index]


@given(
    st.fractions(max_denominator=50).filter(lambda f: abs(f) < 1000),
    st.fractions(max_denominator=50).filter(lambda f: abs(f) < 1000),
)
def test_format_linear_round_trips(a: Fraction, b: Fraction) -> None:
    assert linear(format_linear(a, b, "x"), "x") == (a, b)
    assert constant_value(format_fraction(b), "x") == b


@pytest.mark.parametrize("depth", [MAX_LATEX_DEPTH + 1, 1_000, 20_000])
def test_latex_nested_too_deeply_is_unreadable_math_not_a_recursion_error(depth: int) -> None:
    """Issue 14: a thousand nested \\frac used to raise RecursionError out of the reader (and
    take time quadratic in the depth); now it is an unreadable span, read in bounded time."""
    body = "\\frac{" * depth + "x" + "}{1}" * depth
    spec = detect_linear("Solve 3x + 5 = 20 for x.")
    assert spec is not None
    started = time.perf_counter()
    with pytest.raises(MathTextError, match="nested deeper"):
        latex_to_plain(f"{body} = 5")
    reading = read_math(f"So \\({body} = 5\\).", "x")
    assert any("nested deeper" in p for p in reading.problems)
    check = check_integrity(f"\\({body} = 5\\)\n\nx = 5", spec)
    assert not check.ok and not check.wrong
    assert detect_linear(f"Solve \\({body} = 5\\) for x.") is None
    assert time.perf_counter() - started < 5.0


def test_latex_nested_up_to_the_limit_is_still_read() -> None:
    depth = MAX_LATEX_DEPTH - 1
    plain = latex_to_plain("\\frac{" * depth + "x" + "}{1}" * depth + " = 5")
    assert plain.count("(") == plain.count(")") and "x" in plain

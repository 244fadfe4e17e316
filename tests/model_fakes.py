"""Deterministic stand-ins for a chat model that answer math and JSON requests like the real one.

They write LaTeX-flavoured derivations and fenced JSON (the local model's habits), and can be told
to answer wrongly, so repair and fallback paths are exercised without a real model.
"""

from __future__ import annotations

import json
import re
from fractions import Fraction

import sympy

from conftest import ScriptedBackend

_EQ = re.compile(r"Solve (.+?) for ([a-z])\b")
_KEYS = re.compile(r"(?:fields|keys|Keys:)\s*:?\s*([a-z_]+(?:\s*(?:,|and)\s*[a-z_]+)*)")


def _fmt(value: Fraction) -> str:
    return (
        str(value.numerator)
        if value.denominator == 1
        else f"\\frac{{{value.numerator}}}{{{value.denominator}}}"
    )


def solve_text(prompt: str) -> tuple[str, str, Fraction] | None:
    """Read "Solve <equation> for <v>" from a prompt; return (equation, variable, solution)."""
    match = _EQ.search(prompt)
    if match is None:
        return None
    eq, var = match.group(1).strip(), match.group(2)
    sym = sympy.Symbol(var)

    def expr(side: str) -> sympy.Expr:
        side = re.sub(r"(\d)\s*" + var, r"\1*" + var, side).replace(")(", ")*(")
        side = re.sub(r"(\d)\s*\(", r"\1*(", side)
        return sympy.sympify(side, locals={var: sym})

    lhs, rhs = eq.split("=")
    solutions = sympy.solve(sympy.Eq(expr(lhs), expr(rhs)), sym)
    return (eq, var, Fraction(str(solutions[0]))) if len(solutions) == 1 else None


def math_answer(prompt: str, wrong: bool = False) -> str:
    found = solve_text(prompt)
    if found is None:
        return "I can only solve linear equations."
    eq, var, sol = found
    value = sol + 1 if wrong else sol
    return (
        f"To solve the equation \\({eq}\\), we isolate \\({var}\\).\n\n"
        f"1. Collect the terms and simplify:\n   \\[\n   {var} = {_fmt(value)}\n   \\]\n\n"
        f"Therefore, the value of \\({var}\\) is \\(\\boxed{{{_fmt(value)}}}\\).\n"
    )


_VALUES = {
    "name": "Alice",
    "age": 30,
    "city": "Paris",
    "email": "alice@example.com",
    "town": "Lyon",
    "founded": 1990,
    "owner": "Bob",
    "genre": "Fiction",
}


def json_answer(prompt: str) -> str:
    match = _KEYS.search(re.sub(r"\s*\((?:string|integer|number|boolean)\)", "", prompt))
    keys = re.split(r"\s*(?:,|and)\s*", match.group(1)) if match else []
    wanted = re.search(r"exactly these keys: ([a-z_, \"]+)", prompt)
    if wanted:  # a patch prompt asking for specific keys
        keys = re.findall(r"[a-z_]+", wanted.group(1))
    obj = {k: _VALUES.get(k, f"value of {k}") for k in keys if k}
    return "```json\n" + json.dumps(obj, indent=2) + "\n```"


def fake_model(wrong_math: bool = False) -> ScriptedBackend:
    """A backend answering JSON requests with fenced objects and equations with derivations."""

    def answer(prompt: str) -> str:
        if "json" in prompt.lower():
            return json_answer(prompt)
        if "solution of" in prompt.lower() or "is x" in prompt.lower():
            return "No: substituting gives a different value, so it is not a solution."
        return math_answer(prompt, wrong=wrong_math)

    return ScriptedBackend(answer)

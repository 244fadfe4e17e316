"""Operations a step's prose names on both sides of an equation ("subtract 13 from both sides",
"divide both sides by 8"), read only where the wording and the operand are certain.

`named_operations` finds them; `apply_operation` applies one to an equation's exact linear forms.
A phrase that names an operation without a readable operand ("divide by the coefficient"), or
one on something other than both sides ("subtract 13 from 34", "divide both terms by 4"), is not
read: the verifier cannot check it and does not fail a step for it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction
from typing import Literal

from stepcache_core.tasks.linear.expr import MathTextError, linear
from stepcache_core.tasks.linear.mathtext import latex_to_plain

__all__ = ["LinearPair", "Operation", "apply_operation", "named_operations"]

#: ``(a, b)`` per side: the equation ``a1 v + b1 = a2 v + b2``.
LinearPair = tuple[tuple[Fraction, Fraction], tuple[Fraction, Fraction]]
Kind = Literal["add", "subtract", "multiply", "divide"]


@dataclass(frozen=True, slots=True)
class Operation:
    """One operation on both sides: its kind, its operand (a linear form) and where it is named."""

    kind: Kind
    operand: tuple[Fraction, Fraction]
    pos: int
    text: str


_SIDES = r"(?:both\s+sides|each\s+side)(?:\s+of\s+(?:the|this|our)\s+equation)?"
#: An operand: a LaTeX span, or a plain signed number or term (``13``, ``-2``, ``9/2``, ``5n``).
_OPERAND = (
    r"(?:\\\((?P<latex_a>[^\n]*?)\\\)|\$(?P<latex_b>[^$\n]+)\$"
    r"|(?P<plain>[-+]?\d+(?:\.\d+)?(?:\s*/\s*\d+(?:\.\d+)?)?(?:\s*[A-Za-z](?![A-Za-z]))?"
    r"|(?<![A-Za-z])[A-Za-z](?![A-Za-z'’])))"
)
_PATTERNS: tuple[tuple[Kind, re.Pattern[str]], ...] = (
    # "subtract 13 (from both sides)"; not "subtract 13 from 34"
    (
        "subtract",
        re.compile(
            rf"\bsubtract(?:ing|s)?\s+{_OPERAND}(?:\s+from\s+{_SIDES})?(?!\s*from\b)",
            re.IGNORECASE,
        ),
    ),
    # "add 4 (to both sides)"; not "add 4 to 17"
    (
        "add",
        re.compile(rf"\badd(?:ing|s)?\s+{_OPERAND}(?:\s+to\s+{_SIDES})?(?!\s*to\b)", re.IGNORECASE),
    ),
    # "divide (both sides) by 8"; not "divide 64 by 8", "divide both terms by 4"
    (
        "divide",
        re.compile(rf"\bdivid(?:e|es|ing)\s+(?:{_SIDES}\s+)?by\s+{_OPERAND}", re.IGNORECASE),
    ),
    (
        "multiply",
        re.compile(rf"\bmultipl(?:y|ies|ying)\s+(?:{_SIDES}\s+)?by\s+{_OPERAND}", re.IGNORECASE),
    ),
)
#: What may follow an operand for the reading to be certain: the end of a clause, not more math
#: ("divide by 2x + 1", "subtract 3 times").
_CLAUSE_END = re.compile(
    r"\s*(?:[.,:;!?)\n]|$|\s(?:from|to|on|in|and|so|then|we|this|which|"
    r"gives|yields|for|the|both|each)\b)",
    re.IGNORECASE,
)


def _operand(m: re.Match[str], var: str) -> tuple[Fraction, Fraction] | None:
    latex = m.group("latex_a") or m.group("latex_b")
    try:
        plain = latex_to_plain(latex) if latex is not None else m.group("plain")
        if plain is None or ";" in plain:
            return None
        return linear(plain, var)
    except MathTextError:
        return None


def named_operations(text: str, var: str) -> list[Operation]:
    """The operations on both sides that `text` names with an operand it can read exactly, in
    order of appearance."""
    found: list[Operation] = []
    for kind, pattern in _PATTERNS:
        for m in pattern.finditer(text):
            if not _CLAUSE_END.match(text, m.end()):
                continue  # the operand goes on: not read with certainty
            operand = _operand(m, var)
            if operand is None:
                continue
            if kind in ("multiply", "divide") and (operand[0] != 0 or operand[1] == 0):
                continue  # by a term in the variable or by zero: not an equivalence we check
            found.append(Operation(kind, operand, m.start(), m.group(0)))
    return sorted(found, key=lambda op: op.pos)


def _side(side: tuple[Fraction, Fraction], op: Operation) -> tuple[Fraction, Fraction]:
    a, b = side
    p, q = op.operand
    if op.kind == "add":
        return a + p, b + q
    if op.kind == "subtract":
        return a - p, b - q
    if op.kind == "multiply":
        return a * q, b * q
    return a / q, b / q


def apply_operation(pair: LinearPair, op: Operation) -> LinearPair:
    """`pair` with `op` applied to each side."""
    return _side(pair[0], op), _side(pair[1], op)

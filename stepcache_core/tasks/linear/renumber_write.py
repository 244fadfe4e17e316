"""Writing a re-instantiated step back (`renumber`): the new numbers in the step's own style
(``\\frac{p}{q}`` in LaTeX, ``p/q`` in plain text, signs merged) and verbs that follow a sign
("subtract 5 from" -> "add 7 to")."""

from __future__ import annotations

import re
from decimal import Decimal
from fractions import Fraction

from stepcache_core.tasks.linear.expr import (
    MathTextError,
    degree,
    evaluate,
    poly,
)
from stepcache_core.tasks.linear.mathtext import (
    read_math,
)
from stepcache_core.tasks.linear.renumber_read import _Analysis, _Occ


def _holds(text: str, var: str, solution: Fraction) -> bool:
    """Every equation of the rewritten text holds at the new solution (a guard on formatting)."""
    reading = read_math(text, var)
    if reading.problems:
        return False
    for rel in reading.relations:
        try:
            if _value(rel.lhs, var, solution) != _value(rel.rhs, var, solution):
                return False
        except MathTextError:
            return False
    return True


def _value(expr: str, var: str, x: Fraction) -> Fraction:
    p = poly(expr, var)
    if degree(p) > 1:
        raise MathTextError("not linear")
    return evaluate(p, x)


def _magnitude(value: Fraction, occ: _Occ) -> str:
    """|value| in the occurrence's style: a decimal where it was one, ``\\frac{p}{q}`` in LaTeX."""
    value = abs(value)
    if value.denominator == 1:
        return str(value.numerator)
    if occ.decimal and _terminates(value):
        return _decimal(value)
    if occ.latex:
        return f"\\frac{{{value.numerator}}}{{{value.denominator}}}"
    return f"{value.numerator}/{value.denominator}"


def _terminates(value: Fraction) -> bool:
    d = value.denominator
    for p in (2, 5):
        while d % p == 0:
            d //= p
    return d == 1


def _decimal(value: Fraction) -> str:
    text = format(Decimal(value.numerator) / Decimal(value.denominator), "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


_VERBS = {
    "subtract": "add",
    "subtracting": "adding",
    "subtracted": "added",
    "subtracts": "adds",
    "minus": "plus",
}
_VERBS.update({v: k for k, v in list(_VERBS.items())})
_VERB_BEFORE = re.compile(
    r"\b(" + "|".join(sorted(_VERBS, key=len, reverse=True)) + r")\s*(?:\\\(|\\\[|\$)?\s*$",
    re.IGNORECASE,
)
_BY_BEFORE = re.compile(r"\b(?:by|divide|multiply)\s*(?:\\\(|\\\[|\$)?\s*$", re.IGNORECASE)
_PREP_AFTER = re.compile(r"\s*(?:[A-Za-z](?![A-Za-z]))?\s*(?:\\\)|\$)?\s*\b(from|to)\b", re.I)
_LATEX_CMD = re.compile(r"\\[A-Za-z]+$")


def _cased(word: str, like: str) -> str:
    return word.capitalize() if like[:1].isupper() else word


def _prev(text: str, pos: int) -> int:
    """Index of the last non-space character before `pos`, or -1."""
    k = pos - 1
    while k >= 0 and text[k] in " \t":
        k -= 1
    return k


def _render(text: str, an: _Analysis, chosen: dict[int, Fraction], var: str) -> str:
    """Write the chosen values into `text`, merging signs and flipping add/subtract words; a
    coefficient that becomes 1 is dropped (``3x`` -> ``x``, not ``1x``)."""
    loose = set(an.loose)
    edits: list[tuple[int, int, str]] = []
    for i, occ in enumerate(an.occs):
        value = chosen[i]
        if value == occ.key:
            continue
        start, end = occ.start, occ.end
        body = _magnitude(value, occ)
        k = _prev(text, start)
        c = text[k] if k >= 0 else ""
        after = text[end : end + 1]
        if not occ.latex and "/" in body and (after.isalnum() or after == "(" or c in "*/"):
            body = f"({body})"
        if body == "1" and after == var and occ.parts is None:
            body = ""
        if value >= 0:
            edits.append((start, end, body))
            continue
        verb = _VERB_BEFORE.search(text, 0, start)
        if c in "+-−":
            j = _prev(text, k)
            d = text[j] if j >= 0 else ""
            if occ.latex or i not in loose:  # math: a minus after an operand is binary
                binary = (d.isalnum() or d in ")}]") and not _LATEX_CMD.search(text, 0, j + 1)
            else:  # prose: "-5" is a negative number unless it follows a number
                binary = d.isdigit() or d == ")"
            if c == "+":
                edits.append((k, end, "-" + text[k + 1 : start] + body))
            elif binary:
                edits.append((k, end, "+" + text[k + 1 : start] + body))
            else:
                edits.append((k, end, body))
        elif verb is not None:  # "subtract 5 from" -> "add 7 to"
            word = verb.group(1)
            edits.append((verb.start(1), verb.end(1), _cased(_VERBS[word.lower()], word)))
            edits.append((start, end, body))
            prep = _PREP_AFTER.match(text, end)
            wanted = {"sub": "from", "add": "to"}.get(word[:3].lower())
            if prep is not None and wanted is not None and prep.group(1).lower() == wanted:
                other = "to" if wanted == "from" else "from"
                edits.append((prep.start(1), prep.end(1), _cased(other, prep.group(1))))
        elif (
            c in "*/×÷·"
            or _TIMES_CMD.search(text, 0, k + 1)
            or ((occ.latex or i not in loose) and (c.isdigit() or c in ")}"))
        ):
            edits.append((start, end, f"(-{body or '1'})"))
        else:
            edits.append((start, end, "-" + body))
    out = text
    for s, e, r in sorted(edits, reverse=True):
        out = out[:s] + r + out[e:]
    return out


_TIMES_CMD = re.compile(r"\\(?:cdot|times|div|ast)$")

"""Transfer: a cached step rewritten for the new equation (variable renamed, problem restated), and
the number map that re-instantiates a derivation whose equation kept its signed skeleton
(`renumber` does the rewriting)."""

from __future__ import annotations

import re
from functools import lru_cache

from stepcache_core.tasks.linear.expr import (
    MathTextError,
    linear,
    signed_numbers,
    tokenize,
)
from stepcache_core.tasks.linear.mathtext import (
    ENGLISH_LETTERS,
    MATH_SPAN,
    Relation,
    read_math,
)
from stepcache_core.tasks.linear.renumber import Renumbering, signed_skeleton
from stepcache_core.tasks.linear.spec import LinearSpec

__all__ = ["letter_pattern", "rename_variable", "renumbering_for", "restate", "transfer_step"]


@lru_cache(maxsize=64)
def letter_pattern(letter: str) -> re.Pattern[str]:
    return re.compile(r"(?<![A-Za-z'’\\])" + re.escape(letter) + r"(?![A-Za-z'’])")


def rename_variable(text: str, old: str, new: str) -> str:
    """Rename the standalone letter `old` to `new`: in math spans always, in prose unless `old`
    is an English word ("a", "I"); never inside words or LaTeX commands."""
    pattern = letter_pattern(old)
    out: list[str] = []
    last = 0
    for m in MATH_SPAN.finditer(text):
        prose = text[last : m.start()]
        out.append(prose if old in ENGLISH_LETTERS else pattern.sub(new, prose))
        out.append(pattern.sub(new, m.group(0)))
        last = m.end()
    tail = text[last:]
    out.append(tail if old in ENGLISH_LETTERS else pattern.sub(new, tail))
    return "".join(out)


def _same_equation(rel: Relation, var: str, cached: LinearSpec) -> bool:
    """`rel` is the cached equation: same linear sides and the same signed constants in order."""
    try:
        return (
            linear(rel.lhs, var) == cached.lhs_linear
            and linear(rel.rhs, var) == cached.rhs_linear
            and tuple(signed_numbers(rel.lhs) + signed_numbers(rel.rhs)) == cached.constants
        )
    except MathTextError:
        return False


def _token_regex(lhs: str, rhs: str, old: str, new: str) -> re.Pattern[str] | None:
    """`lhs = rhs` token by token, any spacing between tokens, the variable as `old` or `new`."""
    try:
        sides = [tokenize(lhs), tokenize(rhs)]
    except MathTextError:
        return None
    letter = f"[{re.escape(old)}{re.escape(new)}]"
    parts = [[letter if t.isalpha() else re.escape(t) for t in side] for side in sides]
    return re.compile(r"\s*".join([*parts[0], "=", *parts[1]]))


def restate(text: str, cached: LinearSpec, spec: LinearSpec) -> str:
    """Replace the cached equation as written (spacing/LaTeX tolerant) with the new one."""
    new_plain = spec.equation if "\\" not in spec.equation else spec.plain
    regex = _token_regex(cached.lhs, cached.rhs, cached.variable, spec.variable)

    def in_prose(chunk: str) -> str:
        if regex is None:
            return chunk
        out: list[str] = []
        last = 0
        for m in regex.finditer(chunk):
            before = chunk[: m.start()].rstrip()
            after = chunk[m.end() :].lstrip()
            if m.start() and (chunk[m.start() - 1].isalnum() or chunk[m.start() - 1] == "."):
                continue
            if m.end() < len(chunk) and (chunk[m.end()].isalnum() or chunk[m.end()] == "."):
                continue
            if (before and before[-1] in "+-*/=^") or (after and after[0] in "+-*/=^"):
                continue
            out.append(chunk[last : m.start()])
            out.append(new_plain)
            last = m.end()
        out.append(chunk[last:])
        return "".join(out)

    out: list[str] = []
    last = 0
    for m in MATH_SPAN.finditer(text):
        out.append(in_prose(text[last : m.start()]))
        group = next(k for k in ("a", "b", "c", "d") if m.group(k) is not None)
        body = m.group(group)
        reading = read_math(f"\\({body}\\)" if group != "d" else f"${body}$", spec.variable)
        whole = (
            not reading.problems
            and not reading.expressions
            and len(reading.relations) == 1
            and _same_equation(reading.relations[0], spec.variable, cached)
        )
        if whole:
            lead = body[: len(body) - len(body.lstrip())]
            trail = body[len(body.rstrip()) :]
            new_body = lead + spec.equation + trail
        else:
            new_body = in_prose(body)
        start, end = m.span(group)
        out.append(text[m.start() : start] + new_body + text[end : m.end()])
        last = m.end()
    out.append(in_prose(text[last:]))
    return "".join(out)


def _one_role_each(cached: LinearSpec) -> bool:
    """True when the cached equation's constants are distinct, signs aside. In ``3x + 3 = 12`` a
    3 of a step may be the coefficient or the term: rewriting it would be a guess. (A constant
    equal to the solution, ``3x + 5 = 20``, is told apart by place, and every place a mix-up
    could land is checked: equations hold at the new solution, a final value is the solution, a
    named operation is applied to the equation before.)"""
    values = [abs(c) for c in cached.constants]
    return len(set(values)) == len(values)


def renumbering_for(cached: LinearSpec, spec: LinearSpec) -> Renumbering | None:
    """The number map from `cached` to `spec` when they share their signed skeleton, differ in
    their numbers and each cached number has one role; None otherwise (nothing to
    re-instantiate, no one-to-one alignment, or a number in two roles: refused, not guessed)."""
    if (cached.constants, cached.solution) == (spec.constants, spec.solution):
        return None
    if len(cached.constants) != len(spec.constants):
        return None
    try:
        same = signed_skeleton(cached.lhs, cached.rhs, cached.variable) == signed_skeleton(
            spec.lhs, spec.rhs, spec.variable
        )
    except MathTextError:
        return None
    if not same or not _one_role_each(cached):
        return None
    return Renumbering.start(
        spec.variable,
        zip(cached.constants, spec.constants, strict=True),
        (cached.solution, spec.solution),
    )


def transfer_step(step: str, cached: LinearSpec, spec: LinearSpec) -> str:
    """Rename the variable, then restate the problem: the cached equation becomes the new."""
    if cached.variable != spec.variable:
        step = rename_variable(step, cached.variable, spec.variable)
    if (cached.lhs, cached.rhs, cached.variable) != (spec.lhs, spec.rhs, spec.variable):
        step = restate(step, cached, spec)
    return step

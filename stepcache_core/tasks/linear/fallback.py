"""Fallback: finish an answer deterministically with exact arithmetic, from the last equation of its
verified prefix (or from the problem itself)."""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction

from stepcache_core.tasks.base import PatchRequest
from stepcache_core.tasks.linear.expr import (
    MathTextError,
    format_fraction,
    format_linear,
    linear,
)
from stepcache_core.tasks.linear.mathtext import (
    read_math,
)
from stepcache_core.tasks.linear.patch import verified_prefix
from stepcache_core.tasks.linear.spec import LinearSpec
from stepcache_core.tasks.linear.verify import relation_problem
from stepcache_core.types import StepOrigin, StepOutcome

__all__ = ["fallback_answer", "fallback_lines"]


def fallback_answer(request: PatchRequest[LinearSpec]) -> list[StepOutcome] | None:
    """Keep the verified prefix and finish with exact arithmetic from its last equation."""
    prefix = verified_prefix(request)
    spec = request.spec
    start = _last_unique_equation(prefix, spec)
    lines = fallback_lines(spec, start)
    if prefix and not prefix[-1].endswith("\n"):
        lines[0] = "\n" + lines[0]
    outcomes = [StepOutcome(s, StepOrigin.REUSED) for s in prefix]
    outcomes += [StepOutcome(line, StepOrigin.FALLBACK) for line in lines]
    return outcomes


def _last_unique_equation(
    steps: Sequence[str], spec: LinearSpec
) -> tuple[tuple[Fraction, Fraction], tuple[Fraction, Fraction]] | None:
    """The last equation of `steps` with a unique solution, as linear forms; it must hold."""
    best = None
    for step in steps:
        for rel in read_math(step, spec.variable).relations:
            try:
                left, right = linear(rel.lhs, spec.variable), linear(rel.rhs, spec.variable)
            except MathTextError:
                continue
            if left[0] != right[0] and relation_problem(rel, spec) is None:
                best = (left, right)
    return best


def fallback_lines(
    spec: LinearSpec,
    start: tuple[tuple[Fraction, Fraction], tuple[Fraction, Fraction]] | None = None,
) -> list[str]:
    """Plain-text steps that solve `spec` exactly from `start` (default: the equation itself)."""
    v = spec.variable
    lines: list[str] = []
    if start is None:
        lines.append(f"Start with the equation: {spec.plain}\n")
        (p1, p0), (q1, q0) = spec.lhs_linear, spec.rhs_linear
        simple = f"{format_linear(p1, p0, v)} = {format_linear(q1, q0, v)}"
        if simple.replace(" ", "") != spec.plain.replace(" ", ""):
            lines.append(f"Simplify both sides: {simple}\n")
    else:
        (p1, p0), (q1, q0) = start
    if p1 == q1:
        raise ValueError("the equation has no unique solution")
    if p1 == 0:  # the variable is only on the right: swap sides
        (p1, p0), (q1, q0) = (q1, q0), (p1, p0)
        lines.append(f"Swap the sides: {format_linear(p1, p0, v)} = {format_linear(q1, q0, v)}\n")
    if q1 != 0:
        verb, prep = ("Subtract", "from") if q1 > 0 else ("Add", "to")
        term = format_linear(abs(q1), Fraction(0), v)
        p1 -= q1
        q1 = Fraction(0)
        lines.append(
            f"{verb} {term} {prep} both sides: {format_linear(p1, p0, v)} = {format_fraction(q0)}\n"
        )
    if p0 != 0:
        verb, prep = ("Subtract", "from") if p0 > 0 else ("Add", "to")
        moved = abs(p0)
        q0 -= p0
        lines.append(
            f"{verb} {format_fraction(moved)} {prep} both sides: "
            f"{format_linear(p1, Fraction(0), v)} = {format_fraction(q0)}\n"
        )
    if p1 != 1:
        lines.append(f"Divide both sides by {format_fraction(p1)}: {v} = {spec.solution_text}\n")
    lines.append(f"{v} = {spec.solution_text}\n")
    return lines

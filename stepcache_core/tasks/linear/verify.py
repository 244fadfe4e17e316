"""Verify: each transferred step checked against the new equation, the integrity of a whole answer,
and whether a verified prefix is worth a patch."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

from stepcache_core.tasks.base import PASS, Check
from stepcache_core.tasks.linear.expr import (
    MathTextError,
    format_fraction,
    linear,
)
from stepcache_core.tasks.linear.mathtext import (
    Reading,
    Relation,
    constant_value,
    final_value,
    is_variable,
    literal_numbers,
    read_math,
)
from stepcache_core.tasks.linear.operations import (
    LinearPair,
    apply_operation,
    named_operations,
)
from stepcache_core.tasks.linear.renumber import signed_skeleton
from stepcache_core.tasks.linear.spec import LinearSpec
from stepcache_core.tasks.linear.step_words import unread_step_words

__all__ = [
    "REASON_DERIVED",
    "REASON_PROSE",
    "REASON_RESTATED",
    "check_integrity",
    "relation_problem",
    "verify_steps",
    "worth_patching",
]

#: Reasons on passing checks; `worth_patching` reads them.
REASON_PROSE = "prose"
REASON_RESTATED = "restated problem"
REASON_DERIVED = "derived"


def _solution_numbers(spec: LinearSpec) -> set[Fraction]:
    s = abs(spec.solution)
    return {s, Fraction(s.numerator), Fraction(s.denominator)}


def relation_problem(rel: Relation, spec: LinearSpec) -> str | None:
    """None when `rel` is linear and true at the solution, else why not."""
    var = spec.variable
    try:
        (a1, b1), (a2, b2) = linear(rel.lhs, var), linear(rel.rhs, var)
    except MathTextError as exc:
        return f"{rel.lhs} = {rel.rhs}: {exc}"
    left, right = a1 * spec.solution + b1, a2 * spec.solution + b2
    if left == right:
        return None
    if a1 == 0 and a2 == 0:
        return f"{rel.lhs} = {rel.rhs} is false"
    return f"{rel.lhs} = {rel.rhs} does not hold for {var} = {spec.solution_text}"


def _is_restated(rel: Relation, spec: LinearSpec) -> bool:
    try:
        pair = (linear(rel.lhs, spec.variable), linear(rel.rhs, spec.variable))
    except MathTextError:
        return False
    return pair in ((spec.lhs_linear, spec.rhs_linear), (spec.rhs_linear, spec.lhs_linear))


def _is_solution_literal(side: str, spec: LinearSpec) -> bool:
    """True for a side that is the solution itself (``5``, ``-25/3``): a final value statement."""
    value = constant_value(side, spec.variable)
    return value == spec.solution and set(literal_numbers(side)) <= _solution_numbers(spec)


def _problem_shape(spec: LinearSpec) -> str | None:
    try:
        return signed_skeleton(spec.lhs, spec.rhs, spec.variable)
    except MathTextError:
        return None


def _misstates(rel: Relation, spec: LinearSpec, shape: str | None) -> bool:
    """An equation shaped like the problem (same terms, signs aside) that is not the problem:
    true at the solution, hence equivalent, yet a misstatement (``9k + 9 = 45`` for
    ``9k - 4 = 32``). An identity (``2(x + 3) + 4 = 2x + 10``, an expansion) states nothing
    about the problem, so it never misstates it."""
    if shape is None:
        return False
    try:
        if signed_skeleton(rel.lhs, rel.rhs, spec.variable) != shape:
            return False
        return linear(rel.lhs, spec.variable) != linear(rel.rhs, spec.variable)
    except MathTextError:
        return False


def _pair(rel: Relation, var: str) -> LinearPair | None:
    try:
        return linear(rel.lhs, var), linear(rel.rhs, var)
    except MathTextError:
        return None


def _text(side: str) -> str:
    return "".join(side.split())


@dataclass(slots=True)
class _Previous:
    """The previous verified equation in the variable (the problem before the first step): its
    exact linear forms and its sides as written."""

    pair: LinearPair
    sides: tuple[str, str]


def _unrelated_identity(rel: Relation, reading: Reading, var: str, prev: _Previous) -> bool:
    """True for an equation whose sides are the same linear form in the variable
    (``2x + 3x + 6 = 5x + 6``): true whatever the variable is, it states nothing about the
    problem. It is a step of the derivation only when it rewrites a side of the equation
    before, as written (``Expand: 2(x + 3) + 4 = 2x + 10`` after ``2(x + 3) + 4 = 20``), or
    is one link of a chain that also says something (``7x/7 = x = -1``)."""
    pair = _pair(rel, var)
    if pair is None or pair[0] != pair[1] or pair[0][0] == 0:
        return False
    chain = [r for r in reading.relations if r.source == rel.source and r.pos // 1 == rel.pos // 1]
    if any((p := _pair(r, var)) is not None and p[0] != p[1] for r in chain):
        return False
    earlier = [prev.sides, *((r.lhs, r.rhs) for r in reading.relations if r.pos < rel.pos)]
    return _text(rel.lhs) not in {_text(side) for sides in earlier for side in sides}


def _operations_problem(text: str, reading: Reading, var: str, prev: _Previous) -> str | None:
    """None when every operation the step's prose names ("subtract 13 from both sides",
    "divide by 8") turns the previous verified equation, or an equation of this step, into an
    equation of this step (sides in either order); else why not. A step without equations
    cannot be compared (its operation may be shown in the next step) and is not failed for it,
    nor is an operation whose operand cannot be read (`named_operations` skips those)."""
    pairs = [p for p in (_pair(r, var) for r in reading.relations) if p is not None]
    if not pairs:
        return None
    shown = set(pairs) | {(rhs, lhs) for lhs, rhs in pairs}
    ops = named_operations(text, var)
    combined = prev.pair  # "subtract 5 and divide by 3: x = 5" shows only both done
    for op in ops:
        combined = apply_operation(combined, op)
    if len(ops) > 1 and combined in shown:
        return None
    for op in ops:
        if not any(apply_operation(base, op) in shown for base in (prev.pair, *pairs)):
            return (
                f"the step says {op.text.strip()!r}, but none of its equations is the one before "
                "with that done to both sides"
            )
    return None


def _check_step(
    reading: Reading,
    spec: LinearSpec,
    stale: set[Fraction],
    allowed: set[Fraction],
    shape: str | None = None,
    text: str = "",
    prev: _Previous | None = None,
) -> Check:
    """One step's verdict; adds the numbers of its verified equations to `allowed`. With `prev`
    (the previous verified equation) the step must also follow from it; a verified step's last
    equation in the variable (not an identity) replaces it."""
    var = spec.variable
    if reading.problems:
        return Check(False, reading.problems[0])
    others = sorted(reading.prose_letters - {var})
    if others:
        return Check(False, f"another variable {others[0]!r}")
    derived = restated = 0
    guarded: list[Fraction] = []  # numbers that must not be stale
    for rel in reading.relations:
        problem = relation_problem(rel, spec)
        if problem is not None:
            return Check(False, problem)
        if prev is not None and _unrelated_identity(rel, reading, var, prev):
            return Check(
                False, f"{rel.lhs} = {rel.rhs} is an identity: it states nothing about the problem"
            )
        numbers = literal_numbers(rel.lhs) + literal_numbers(rel.rhs)
        allowed.update(numbers)
        if _is_restated(rel, spec):
            restated += 1  # the new problem itself: its numbers are never stale
        elif _misstates(rel, spec, shape):
            return Check(False, f"{rel.lhs} = {rel.rhs} misstates the problem {spec.equation}")
        else:
            derived += 1
            for side in (rel.lhs, rel.rhs):
                if not _is_solution_literal(side, spec):
                    guarded.extend(literal_numbers(side))
    if prev is not None:
        unfollowed = _operations_problem(text, reading, var, prev)
        if unfollowed is not None:
            return Check(False, unfollowed)
    loose: list[Fraction] = list(reading.prose_numbers)  # numbers outside equations
    for e in reading.expressions:
        try:
            linear(e.text, var)
        except MathTextError as exc:
            return Check(False, f"{e.text}: {exc}")
        if e.boxed:
            value = constant_value(e.text, var)
            if value != spec.solution:
                return Check(False, f"boxed {e.text} is not the solution {spec.solution_text}")
            continue
        loose.extend(literal_numbers(e.text))
    for n in guarded + loose:
        if n in stale:
            return Check(False, f"stale number {format_fraction(n)} from the cached equation")
    known = allowed | {abs(c) for c in spec.constants} | _solution_numbers(spec)
    for n in loose:
        if n not in known:
            return Check(False, f"number {format_fraction(n)} is not backed by a verified equation")
    if prev is not None:
        for rel in reading.relations:
            pair = _pair(rel, var)
            if pair is not None and (pair[0][0] or pair[1][0]) and pair[0] != pair[1]:
                prev.pair, prev.sides = pair, (rel.lhs, rel.rhs)
    if derived:
        return Check(True, f"{REASON_DERIVED}: {derived} equation(s) hold")
    return Check(True, REASON_RESTATED if restated else REASON_PROSE)


def _stale(cached: LinearSpec, spec: LinearSpec) -> set[Fraction]:
    """Numbers of the cached equation that the new one lacks (signed multiset difference), unsigned:
    ``3x - 5 = 20`` -> ``3x + 5 = 20`` makes 5 stale."""
    gone = Counter(cached.constants) - Counter(spec.constants)
    return {abs(n) for n in gone}


def verify_steps(steps: Sequence[str], cached: LinearSpec, spec: LinearSpec) -> list[Check]:
    """Per step, in order: it follows from the previous verified equation (every operation its
    prose names, "subtract 13 from both sides", applied to it; no identity that does not rewrite
    it), equations linear and true at the new solution, numeric identities true, no other
    variable, nothing unreadable, no stale number of the cached equation (except in a
    final ``v = solution`` / boxed solution), prose numbers backed by the new equation, its
    solution or an equation verified so far, no code block with numbers; when the numbers
    change, no word in its prose beyond the step lexicon (`step_words`); when the request asks
    for the steps, some working in one of them (else the first step fails)."""
    stale = _stale(cached, spec)
    allowed: set[Fraction] = set()
    shape = _problem_shape(spec)
    prev = _Previous((spec.lhs_linear, spec.rhs_linear), (spec.lhs, spec.rhs))
    renumbered = (cached.lhs_linear, cached.rhs_linear) != (spec.lhs_linear, spec.rhs_linear)
    checks = []
    working = False
    for step in steps:
        reading = read_math(step, spec.variable)
        working = working or any(_is_working(r, spec.variable) for r in reading.relations)
        check = _check_step(reading, spec, stale, allowed, shape, step, prev)
        unread = unread_step_words(reading.prose_words, spec.variable) if renumbered else ()
        if check.ok and unread:
            shown = ", ".join(repr(w) for w in dict.fromkeys(unread))
            check = Check(False, f"with other numbers, the step's words {shown} may be stale")
        checks.append(check)
    if "steps" in spec.output and not working and checks:
        # A bare "x = 5" for a request that asks for the steps: nothing of it is worth a patch.
        checks[0] = Check(False, "no working shown, and the request asks for the steps")
    return checks


def check_integrity(text: str, spec: LinearSpec) -> Check:
    """The whole answer: readable, every equation linear and true at the solution, a final
    ``v = value`` / ``\\boxed{value}`` equal to the solution (rounded when the prompt asks), and
    some working before it when the prompt asks for the steps. A false equation or a wrong final
    or boxed value is a proof (`Check.wrong`); an unreadable, unfinished or bare answer is not."""
    var = spec.variable
    reading = read_math(text, var)
    if reading.problems:
        return Check(False, reading.problems[0])
    for rel in reading.relations:
        problem = relation_problem(rel, spec)
        if problem is not None:
            return Check(False, problem, wrong=_is_false(rel, spec))
    for e in reading.expressions:
        value = constant_value(e.text, var) if e.boxed else spec.solution
        if value != spec.solution:
            reason = f"boxed {e.text} is not the solution {spec.solution_text}"
            return Check(False, reason, wrong=value is not None)
    final = final_value(reading, var)
    if final is None:
        return Check(False, f"no final '{var} = value' statement (truncated answer?)")
    if final[0] != spec.solution:
        return Check(
            False,
            f"final answer {var} = {format_fraction(final[0])}, expected {spec.solution_text}",
            wrong=True,
        )
    if "steps" in spec.output and not any(_is_working(rel, var) for rel in reading.relations):
        return Check(False, "no working shown, and the request asks for the steps")
    return PASS


def _is_working(rel: Relation, var: str) -> bool:
    """A relation that is a step of the working: anything but a ``v = value`` statement."""
    for side, other in ((rel.lhs, rel.rhs), (rel.rhs, rel.lhs)):
        if is_variable(side, var) and constant_value(other, var) is not None:
            return False
    return True


def _is_false(rel: Relation, spec: LinearSpec) -> bool:
    """True when `rel` reads as a linear relation that is false at the solution (not merely
    unreadable or non-linear)."""
    try:
        linear(rel.lhs, spec.variable), linear(rel.rhs, spec.variable)
    except MathTextError:
        return False
    return True


def proven_wrong(text: str, spec: LinearSpec, failure: Check) -> bool:
    """True when `failure` proves the answer wrong and the request is understood in full
    (nothing in the prompt but the equation and the lexicon's phrasings), unless the answer
    starts by stating *another* equation of the problem's shape ("3x + 6 = 20" for 3x + 5 = 20):
    then the model read other numbers than we did, and either reading may be the right one. An
    answer to a prompt with other words ("then add 4 to the result") may be right for what was
    asked, so it is never proven wrong; nor is an unfinished one (a hint, a truncated answer:
    `failure.wrong` unset)."""
    if not failure.wrong or not spec.understood:
        return False
    relations = read_math(text, spec.variable).relations
    return not relations or not _restates_otherwise(relations[0], spec)


def _restates_otherwise(rel: Relation, spec: LinearSpec) -> bool:
    """True for an equation shaped like the problem (same signed skeleton) that is not it."""
    shape = _problem_shape(spec)
    try:
        same_shape = shape is not None and signed_skeleton(rel.lhs, rel.rhs, spec.variable) == shape
    except MathTextError:
        return False
    return same_shape and not _is_restated(rel, spec)


def worth_patching(checks: Sequence[Check]) -> bool:
    """Patch only when the verified prefix (the steps before the first failure) holds at least
    one derived equation; a prefix of intro/restated steps alone saves nothing worth a patch.
    Re-instantiated steps count like any other: a changed constant whose derivation replays
    up to a late failure (a number the stale rule rejects, a step that could not be rewritten)
    is patched from there, one whose first derived step fails is generated afresh."""
    for c in checks:
        if not c.ok:
            return False
        if c.reason.startswith(REASON_DERIVED):
            return True
    return True

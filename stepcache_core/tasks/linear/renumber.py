"""Constant re-instantiation: replay a cached derivation with the numbers of a new equation.

When a cached equation and a new one have the same structure and other numbers (``3x + 5 = 20``
cached, ``3x + 7 = 22`` asked), every number of every cached step is rewritten to the new problem:

1. the equation's constants, aligned position by position (signed: ``+ 5`` -> ``- 7`` reads -7);
2. the cached solution -> the new solution (only where a value stands alone, never beside the
   variable: a coefficient is never the solution);
3. numbers derived on the way: in an equation whose numbers are known but one, that one is solved
   exactly (`fractions.Fraction`) so that the equation holds at the new solution, and the value
   learned is reused for its later occurrences, prose included ("divide 15 by 3");
4. a number with several new values (a constant that is also the solution, two equal constants, a
   derived value equal to a constant) is tried with each, and an equation keeps the first choice
   under which it holds: an expression carried over from the equation before keeps the values it
   had there (``x - 9 = -8``, then ``x - 9 + 9 = -8 + 9``), then all occurrences of a number alike,
   then alike per role (coefficient or term), then one occurrence apart.

A step that cannot be rewritten consistently is left as it was (it then fails verification and is
patched). Nothing here decides what is served: the task's verifier checks every rewritten step, and
a rewrite is only a proposal. Numbers are written back in the step's own style (``\\frac{p}{q}`` in
LaTeX, ``p/q`` in plain text, signs merged so ``+ 5`` becomes ``- 7`` and never ``+ -7``) and
"subtract 5 from" becomes "add 7 to" when the number turns negative.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Hashable, Iterable, Iterator, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from functools import lru_cache

from stepcache_core.tasks.linear.expr import (
    ExprParser,
    MathTextError,
    Poly,
    degree,
    evaluate,
    is_number_token,
    poly,
    poly_add,
    poly_mul,
    tokenize,
)
from stepcache_core.tasks.linear.mathtext import (
    _FENCE,
    _MARKERS,
    MATH_SPAN,
    read_math,
)

__all__ = ["Renumbering", "signed_skeleton"]

#: Where a candidate value comes from; a SOLUTION value never replaces a number beside the variable.
CONST, SOLUTION, DERIVED = "const", "solution", "derived"

#: At most this many value combinations are tried for one equation.
MAX_COMBINATIONS = 256
#: Values with more digits than this (numerator or denominator) are not written into a step.
MAX_VALUE_DIGITS = 12

_MARK_BASE = 7_310_000_000_000  # occurrence i is read as the number _MARK_BASE + i


def signed_skeleton(lhs: str, rhs: str, var: str) -> str:
    """The equation's shape with each number and the sign before it as ``±#`` (``3x - 5 = 20`` and
    ``3x + 7 = 22`` are both ``±#v±#=±#``): equal skeletons align their constants one to one."""

    def side(expr: str) -> str:
        out: list[str] = []
        for tok in tokenize(expr):
            if is_number_token(tok):
                if out and out[-1] in "+-":
                    out.pop()
                out.append("±#")
            else:
                out.append("v" if tok == var else tok)
        return "".join(out)

    return side(lhs) + "=" + side(rhs)


# ---------------------------------------------------------------------------- reading a step


@dataclass(frozen=True, slots=True)
class _Occ:
    """One number as written: an integer or decimal literal, or a fraction ``\\frac{p}{q}`` /
    ``p/q`` whose value is not an integer (kept as one unit)."""

    start: int
    end: int
    key: Fraction  # the unsigned value as written
    latex: bool  # inside a LaTeX math span
    decimal: bool
    parts: tuple[Fraction, Fraction] | None  # numerator and denominator of a fraction unit


_Shape = tuple[str, ...]


@dataclass(frozen=True, slots=True)
class _Rel:
    """An equation of the step: tokens of both sides, occurrences as their index."""

    sides: tuple[tuple[str | int, ...], tuple[str | int, ...]]
    with_var: tuple[bool, bool]  # whether each side holds the variable
    program: tuple[_Eval, _Eval]  # both sides compiled
    shapes: tuple[_Shape, _Shape]  # both sides with each occurrence as "#<cached value>"

    def ids(self) -> list[int]:
        seen: list[int] = []
        for side in self.sides:
            for tok in side:
                if isinstance(tok, int) and tok not in seen:
                    seen.append(tok)
        return seen

    def beside_var(self, i: int) -> bool:
        return any(i in side and var for side, var in zip(self.sides, self.with_var, strict=True))


@dataclass(frozen=True, slots=True)
class _Analysis:
    occs: tuple[_Occ, ...]
    relations: tuple[_Rel, ...]  # equations, then ``\\boxed{}`` values as ``value = var``
    loose: tuple[int, ...]  # occurrences outside equations: prose, plain expressions
    coefficients: frozenset[int]  # occurrences written right before the variable (``3x``)


_LATEX_FRAC = re.compile(r"\\[dt]?frac\s*\{\s*(\d+)\s*\}\s*\{\s*(\d+)\s*\}")
_PLAIN_FRAC = re.compile(r"(?<![\d./])(\d+)\s*/\s*(\d+)(?!\d|\.\d|\s*/)")
_NUMBER = re.compile(r"(?<![\d.])\d+(?:\.\d+)?")


def _blanked(text: str, spans: Iterable[tuple[int, int]]) -> str:
    chars = list(text)
    for start, end in spans:
        for k in range(start, end):
            if chars[k] != "\n":
                chars[k] = " "
    return "".join(chars)


def _find_occurrences(text: str) -> list[_Occ] | None:
    """Every rewritable number of `text` in order; None when one cannot be rewritten safely."""
    fences = [m.span() for m in _FENCE.finditer(text)]
    if any(re.search(r"\d", text[s:e]) for s, e in fences):
        return None  # code is never verified: leave the step as it is
    spans = [m.span() for m in MATH_SPAN.finditer(text)]
    work = _blanked(_blanked(text, fences), spans)
    skip = [m.span() for m in _MARKERS.finditer(work)]  # "1.", "Step 2": enumeration, not math

    def in_math(pos: int) -> bool:
        return any(s <= pos < e for s, e in spans)

    def taken(start: int, end: int, used: list[tuple[int, int]]) -> bool:
        return any(start < e and s < end for s, e in used)

    occs: list[_Occ] = []
    used: list[tuple[int, int]] = list(skip)
    for pattern in (_LATEX_FRAC, _PLAIN_FRAC):
        for m in pattern.finditer(text):
            p, q = Fraction(m.group(1)), Fraction(m.group(2))
            if q == 0 or (p / q).denominator == 1 or taken(*m.span(), used):
                continue  # an integer value: its numbers are rewritten one by one
            occs.append(_Occ(m.start(), m.end(), p / q, in_math(m.start()), False, (p, q)))
            used.append(m.span())
    for m in _NUMBER.finditer(text):
        if taken(*m.span(), used):
            continue
        if m.start() and text[m.start() - 1].isalpha():
            return None  # "x2", "\frac12": not a number we can rewrite in place
        key = Fraction(m.group())
        occs.append(_Occ(m.start(), m.end(), key, in_math(m.start()), "." in m.group(), None))
    occs.sort(key=lambda o: o.start)
    return occs


def _marked(text: str, occs: Sequence[_Occ]) -> str:
    out: list[str] = []
    last = 0
    for i, occ in enumerate(occs):
        out.append(text[last : occ.start])
        out.append(str(_MARK_BASE + i))
        last = occ.end
    out.append(text[last:])
    return "".join(out)


def _side_tokens(expr: str, count: int, var: str) -> tuple[tuple[str | int, ...], bool] | None:
    try:
        tokens = tokenize(expr)
    except MathTextError:
        return None
    out: list[str | int] = []
    for tok in tokens:
        if tok[0].isdigit() and "." not in tok and 0 <= int(tok) - _MARK_BASE < count:
            out.append(int(tok) - _MARK_BASE)
        elif tok.isalpha() and tok != var:
            return None  # another letter: nothing to solve
        else:
            out.append(tok)
    return tuple(out), var in out


@lru_cache(maxsize=4096)
def _analyze(text: str, var: str) -> _Analysis | None:
    """Where the numbers of `text` are: in equations (as tokens) or loose; memoized per step."""
    occs = _find_occurrences(text)
    if occs is None:
        return None
    if not occs:
        return _Analysis((), (), (), frozenset())
    count = len(occs)
    reading = read_math(_marked(text, occs), var)
    if reading.problems:
        return None
    relations: list[_Rel] = []
    items: list[tuple[float, str, str]] = [(r.pos, r.lhs, r.rhs) for r in reading.relations]
    items += [(e.pos, e.text, var) for e in reading.expressions if e.boxed]
    for _, lhs, rhs in sorted(items, key=lambda item: item[0]):
        left, right = _side_tokens(lhs, count, var), _side_tokens(rhs, count, var)
        if left is None or right is None:
            return None
        programs = _compile(left[0]), _compile(right[0])
        if programs[0] is None or programs[1] is None:
            return None
        shapes = tuple(
            tuple(f"#{occs[t].key}" if isinstance(t, int) else t for t in side[0])
            for side in (left, right)
        )
        relations.append(
            _Rel(
                (left[0], right[0]),
                (left[1], right[1]),
                (programs[0], programs[1]),
                (shapes[0], shapes[1]),
            )
        )
    in_relation = {i for rel in relations for i in rel.ids()}
    loose = [i for i in range(count) if i not in in_relation]
    coefficients = frozenset(
        tok
        for rel in relations
        for side in rel.sides
        for tok, nxt in itertools.pairwise(side)
        if isinstance(tok, int) and nxt == var
    )
    return _Analysis(tuple(occs), tuple(relations), tuple(loose), coefficients)


# ---------------------------------------------------------------------------- solving


#: A compiled side of an equation: (values of the occurrences, free ones, variable) -> polynomial
#: in the free occurrences' common value.
_Eval = Callable[[dict[int, Fraction], AbstractSet[int], Fraction], Poly]


#: A side's products may reach this degree in the free occurrences' value; above it, no solving.
_MAX_SOLVE_DEGREE = 2


def _pmul(p: Poly, q: Poly) -> Poly:
    return poly_mul(p, q, _MAX_SOLVE_DEGREE)


def _pdiv(p: Poly, q: Poly) -> Poly:
    if len(q) != 1:
        raise MathTextError("division by zero or by the unknown")
    return tuple(c / q[0] for c in p)


class _Compiler(ExprParser[str | int, _Eval]):
    """A side's tokens (occurrences as their index) compiled into closures."""

    def leaf(self, tok: str | int) -> _Eval:
        if isinstance(tok, int):
            return _occurrence(tok)
        if is_number_token(tok):
            number = _const(Fraction(tok))
            return lambda v, f, x: number
        if tok.isalpha():
            return lambda v, f, x: _const(x)
        raise MathTextError(f"unexpected {tok!r}")

    def juxtaposes(self, tok: str | int) -> bool:
        return isinstance(tok, int) or tok == "(" or tok[0].isalnum()

    def add(self, a: _Eval, b: _Eval) -> _Eval:
        return _binary(a, b, poly_add)

    def sub(self, a: _Eval, b: _Eval) -> _Eval:
        return _binary(a, b, _psub)

    def mul(self, a: _Eval, b: _Eval) -> _Eval:
        return _binary(a, b, _pmul)

    def div(self, a: _Eval, b: _Eval) -> _Eval:
        return _binary(a, b, _pdiv)

    def neg(self, a: _Eval) -> _Eval:
        return lambda v, f, x: tuple(-c for c in a(v, f, x))


def _psub(p: Poly, q: Poly) -> Poly:
    return poly_add(p, q, -1)


_UNKNOWN: Poly = (Fraction(0), Fraction(1))


def _occurrence(i: int) -> _Eval:
    def value(v: dict[int, Fraction], f: AbstractSet[int], x: Fraction) -> Poly:
        return _UNKNOWN if i in f else _const(v[i])

    return value


def _const(value: Fraction) -> Poly:
    return (value,) if value else ()


def _binary(a: _Eval, b: _Eval, op: Callable[[Poly, Poly], Poly]) -> _Eval:
    return lambda v, f, x: op(a(v, f, x), b(v, f, x))


def _compile(tokens: Sequence[str | int]) -> _Eval | None:
    """The side's program, or None when its tokens do not parse (the grammar of `ExprParser`)."""
    try:
        return _Compiler(tokens).parse()
    except MathTextError:
        return None


def _difference(
    rel: _Rel, values: dict[int, Fraction], free: AbstractSet[int], x: Fraction
) -> Poly:
    """lhs - rhs as a polynomial in the free occurrences' common value, at variable = x."""
    lhs, rhs = rel.program
    return poly_add(lhs(values, free, x), rhs(values, free, x), -1)


def _small(value: Fraction) -> bool:
    return max(len(str(abs(value.numerator))), len(str(value.denominator))) <= MAX_VALUE_DIGITS


def _solve(
    rel: _Rel, values: dict[int, Fraction], free: AbstractSet[int], x: Fraction
) -> Fraction | None:
    """The unique value of the free occurrences under which `rel` holds (any value when none is
    free: then the relation must simply hold); None when it does not hold or is not unique."""
    try:
        diff = _difference(rel, values, free, x)
    except MathTextError:
        return None
    if not free:
        return Fraction(0) if not diff else None
    if degree(diff) != 1:
        return None  # no unique solution: degenerate (0 * t) or not affine
    value = -diff[0] / diff[1]
    return value if _small(value) else None


Candidates = dict[Fraction, list[tuple[Fraction, str]]]


class Renumbering:
    """The value map of one cached answer against one new equation; `rewrite` its steps in order
    (what it learns from one step's equations is used in the next)."""

    def __init__(self, var: str, solution: Fraction, values: Candidates) -> None:
        self.var = var
        self.solution = solution
        self.values: Candidates = {k: list(v) for k, v in values.items()}
        self.recent: list[_Carried] = []  # sides of the latest equations, with their new values

    @classmethod
    def start(
        cls,
        var: str,
        constants: Iterable[tuple[Fraction, Fraction]],
        solution: tuple[Fraction, Fraction],
    ) -> Renumbering:
        """From the aligned (cached, new) signed constants and the (cached, new) solutions."""
        values: Candidates = {}

        def add(old: Fraction, new: Fraction, source: str) -> None:
            entry = values.setdefault(abs(old), [])
            value = new if old >= 0 else -new
            if all(v != value for v, _ in entry):
                entry.append((value, source))

        for old, new in constants:
            add(old, new, CONST)
        add(*solution, SOLUTION)
        return cls(var, solution[1], values)

    # -------------------------------------------------------------- candidates

    def _candidates(self, occ: _Occ, values: Candidates, beside_var: bool) -> list[Fraction]:
        found = [v for v, src in values.get(occ.key, []) if not (beside_var and src == SOLUTION)]
        if occ.parts is not None:  # a fraction unit: also its numerator and denominator mapped
            p, q = occ.parts
            tops = [v for v, src in values.get(p, []) if src != SOLUTION]
            bottoms = [v for v, src in values.get(q, []) if src != SOLUTION]
            found += [a / b for a in tops for b in bottoms if b != 0]
        unique: list[Fraction] = []
        for v in found:
            if v not in unique:
                unique.append(v)
        return unique

    # -------------------------------------------------------------- one equation

    def _relation(
        self,
        rel: _Rel,
        an: _Analysis,
        fixed: dict[int, Fraction],
        values: Candidates,
        recent: Sequence[_Carried],
    ) -> dict[int, Fraction] | None:
        """Values for the open occurrences of `rel` under which it holds; learns into `values`.
        None when it cannot be satisfied now (perhaps later, once other equations taught more)."""
        open_ids = [i for i in rel.ids() if i not in fixed]
        cands = {i: self._candidates(an.occs[i], values, rel.beside_var(i)) for i in open_ids}
        free_keys = {an.occs[i].key for i in open_ids if not cands[i]}
        if len(free_keys) > 1:
            return None
        free = {i for i in open_ids if not cands[i]}
        bound = [i for i in open_ids if cands[i]]

        def attempt(choice: dict[int, Fraction], free_ids: set[int]) -> dict[int, Fraction] | None:
            known = {**fixed, **choice}
            t = _solve(rel, known, free_ids, self.solution)
            if t is None:
                return None
            return {**choice, **dict.fromkeys(free_ids, t)}

        def learn(result: dict[int, Fraction], free_ids: set[int]) -> dict[int, Fraction]:
            for i in free_ids:
                entry = values.setdefault(an.occs[i].key, [])
                if all(v != result[i] for v, _ in entry):
                    entry.append((result[i], DERIVED))
            return result

        by_key = [o.key for o in an.occs]
        by_role = [(o.key, j in an.coefficients) for j, o in enumerate(an.occs)]
        # 0. an expression carried over from an earlier equation keeps its values there
        # (``x - 9 = -8`` then ``x - 9 + 9 = -9 + 9`` -> ``x - 9 + 9 = -8 + 9``)
        pinned = {i: v for i, v in _carried(rel, recent).items() if i in cands}
        if pinned:
            rest_bound = [i for i in bound if i not in pinned]
            rest_free = free - set(pinned)
            # the other occurrences of a carried number (the "- 5" of "3x + 5 - 5") prefer the
            # value it carries in the same role, then in any role
            ranked = {}
            for i in rest_bound:
                same = [
                    v
                    for j, v in pinned.items()
                    if by_key[j] == by_key[i]
                    for _ in range(2 if by_role[j] == by_role[i] else 1)
                ]
                unique = list(dict.fromkeys(same))  # ties: the first carried (left side) first
                first = sorted(unique, key=same.count, reverse=True)
                ranked[i] = [v for v in first if v in cands[i]]
                ranked[i] += [v for v in cands[i] if v not in ranked[i]]
            for groups in (by_key, by_role):
                for choice in _consistent(rest_bound, ranked, groups):
                    result = attempt({**pinned, **choice}, rest_free)
                    if result is not None:
                        return learn(result, rest_free)
        # 1. one value per number (all its occurrences alike), in priority order; then one per
        # number and role, so ``3x + 3 - 3`` may become ``3x + 5 - 5`` (3 -> 3 and 3 -> 5)
        for groups in (by_key, by_role):
            for choice in _consistent(bound, cands, groups):
                result = attempt(choice, free)
                if result is not None:
                    return learn(result, free)
        # 2. one occurrence takes another known value of its number: a derived value equal to a
        # constant (``x - 9 = -9`` -> ``x - 9 = -8``, then ``x - 9 + 9 = -8 + 9``)
        for i in bound:
            rest = [j for j in bound if j != i]
            for choice in _consistent(rest, cands, by_key):
                for v in cands[i]:
                    result = attempt({**choice, i: v}, free)
                    if result is not None:
                        return learn(result, free)
        # 3. one occurrence is a new derived number that happens to equal a known one
        if not free:
            for i in reversed(bound):
                rest = [j for j in bound if j != i]
                for choice in _consistent(rest, cands, by_key):
                    result = attempt(choice, {i})
                    if result is not None:
                        return learn(result, {i})
        return None

    # -------------------------------------------------------------- one step

    def rewrite(self, text: str) -> str | None:
        """`text` with every number rewritten to the new problem, or None when no consistent
        rewrite exists (the caller then keeps the step as it was)."""
        an = _analyze(text, self.var)
        if an is None:
            return None
        if not an.occs:
            return text
        values: Candidates = {k: list(v) for k, v in self.values.items()}
        recent = list(self.recent)
        chosen: dict[int, Fraction] = {}
        pending = list(an.relations)
        while pending:
            rest: list[_Rel] = []
            for rel in pending:
                found = self._relation(rel, an, chosen, values, recent)
                if found is None:
                    rest.append(rel)
                else:
                    chosen.update(found)
                    recent += _record(rel, chosen)
            if len(rest) == len(pending):
                return None
            pending = rest
        for i in an.loose:
            value = self._loose_value(text, an, i, chosen, values)
            if value is None:
                return None
            chosen[i] = value
        out = _render(text, an, chosen, self.var)
        if out != text and not _holds(out, self.var, self.solution):
            return None
        self.values = values
        self.recent = recent[-MAX_CARRIED:]
        return out

    def _loose_value(
        self, text: str, an: _Analysis, i: int, chosen: dict[int, Fraction], values: Candidates
    ) -> Fraction | None:
        """A number outside equations (prose, "\\(5n\\)"): after "is"/"=" the solution if it may be
        one, else a constant or derived value; among those, preferably the value its number took
        in this step's equations ("subtract 5: 3x + 5 - 5 = ..." keeps the two alike)."""
        occ = an.occs[i]
        cands = self._candidates(occ, values, beside_var=False)
        if not cands:
            return None
        stated = {v for v, src in values.get(occ.key, []) if src == SOLUTION}
        first, then = [v for v in cands if v not in stated], [v for v in cands if v in stated]
        if _STATES_VALUE.search(text, 0, occ.start):
            first, then = then, first
        order = first + then
        alike = [j for j in chosen if an.occs[j].key == occ.key]
        if _VERB_BEFORE.search(text, 0, occ.start):  # "subtract 5": a term, not a coefficient
            alike = [j for j in alike if j not in an.coefficients] or alike
        elif _BY_BEFORE.search(text, 0, occ.start):  # "divide by 3": a coefficient
            alike = [j for j in alike if j in an.coefficients] or alike
        here = {chosen[j] for j in alike}
        return next((v for v in order if v in here), order[0])


_STATES_VALUE = re.compile(
    r"(?:\bis|\bequals?|\bbe|\bget|=)\s*(?:\\\(|\\\[|\$)?\s*-?\s*$", re.IGNORECASE
)


#: A side of an equation already rewritten: its shape and the new value of each occurrence.
_Carried = tuple[_Shape, tuple[Fraction | None, ...]]
#: How many rewritten sides are remembered for `_carried`.
MAX_CARRIED = 8


def _record(rel: _Rel, chosen: dict[int, Fraction]) -> list[_Carried]:
    return [
        (shape, tuple(chosen.get(t) if isinstance(t, int) else None for t in side))
        for shape, side in zip(rel.shapes, rel.sides, strict=True)
        if any(isinstance(t, int) for t in side)
    ]


def _carried(rel: _Rel, recent: Sequence[_Carried]) -> dict[int, Fraction]:
    """Occurrences of `rel` inside an expression that starts a side of it and was a whole side of
    a recent equation (the longest such), with the values they had there."""
    pinned: dict[int, Fraction] = {}
    for side, shape in zip(rel.sides, rel.shapes, strict=True):
        best: _Carried | None = None
        for old_shape, old_values in recent:
            n = len(old_shape)
            if n > len(shape) or shape[:n] != old_shape:
                continue
            if n < len(shape) and shape[n] not in ("+", "-"):
                continue  # "3x + 5" is not carried into "3x + 5 * 2"
            if best is None or n > len(best[0]):
                best = (old_shape, old_values)
        if best is not None:
            for tok, value in zip(side, best[1], strict=False):
                if isinstance(tok, int) and value is not None:
                    pinned[tok] = value
    return pinned


def _product(sizes: Sequence[int]) -> int:
    total = 1
    for s in sizes:
        total *= s
    return total


def _consistent(
    ids: Sequence[int], cands: dict[int, list[Fraction]], groups: Sequence[Hashable]
) -> Iterator[dict[int, Fraction]]:
    """Assignments giving all occurrences of one group (`groups[i]`: a number, or a number and its
    role) the same value, best candidates first."""
    members: dict[Hashable, list[int]] = {}
    for i in ids:
        members.setdefault(groups[i], []).append(i)
    keys = list(members)
    options: list[list[Fraction]] = []
    for key in keys:
        same = members[key]
        options.append([v for v in cands[same[0]] if all(v in cands[j] for j in same)])
    if _product([len(o) for o in options]) > MAX_COMBINATIONS:
        options = [o[:1] for o in options]
    for combo in itertools.product(*options):
        yield {i: v for key, v in zip(keys, combo, strict=True) for i in members[key]}


# ---------------------------------------------------------------------------- writing back


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

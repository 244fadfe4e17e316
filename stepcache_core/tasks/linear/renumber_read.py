"""Reading a step for re-instantiation (`renumber`): the number occurrences of a step, the
equations over them, and an equation solved exactly for the one occurrence it does not know."""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Iterable, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from fractions import Fraction

from stepcache_core.memo import byte_bounded_memo
from stepcache_core.tasks.linear.expr import (
    ExprParser,
    MathTextError,
    Poly,
    degree,
    is_number_token,
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

#: Values with more digits than this (numerator or denominator) are not written into a step.
MAX_VALUE_DIGITS = 12

_MARK_BASE = 7_310_000_000_000  # occurrence i is read as the number _MARK_BASE + i


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


@byte_bounded_memo(max_bytes=16 << 20)
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

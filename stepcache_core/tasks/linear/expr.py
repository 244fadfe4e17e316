"""Exact plain math in one variable: a small parser (`ExprParser`) and the polynomials,
linear forms and formatting built on it; no ``eval``, memoized, microseconds per new string.

Plain ("whitelisted") math is digits, ``.``, one-letter variables, ``+ - * / ( )`` and spaces;
juxtaposition multiplies (``3x``, ``2(y - 3)``). `renumber` compiles sides with `ExprParser`.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Sequence
from fractions import Fraction
from typing import Generic, TypeVar

from stepcache_core.memo import byte_bounded_memo

MAX_EXPR_CHARS = 300
MAX_DIGITS = 30
_MAX_DEGREE = 4

#: Coefficients of a polynomial, index = degree; no trailing zeros (zero is the empty tuple).
Poly = tuple[Fraction, ...]


class MathTextError(ValueError):
    """A piece of math that cannot be read: unknown LaTeX, bad syntax, too long."""


class NonLinearError(MathTextError):
    """An expression that is not a polynomial of degree <= 1 in the variable."""


class OtherVariableError(MathTextError):
    """An expression that uses a letter other than the variable."""


# ---------------------------------------------------------------------------- exact polynomials


def _trim(p: list[Fraction]) -> Poly:
    while p and p[-1] == 0:
        p.pop()
    return tuple(p)


def poly_add(p: Poly, q: Poly, sign: int = 1) -> Poly:
    """`p + sign * q`."""
    n = max(len(p), len(q))
    return _trim(
        [
            (p[i] if i < len(p) else Fraction(0)) + sign * (q[i] if i < len(q) else Fraction(0))
            for i in range(n)
        ]
    )


def poly_mul(p: Poly, q: Poly, max_degree: int = _MAX_DEGREE) -> Poly:
    """`p * q`; raise `NonLinearError` when its degree would exceed `max_degree`."""
    if not p or not q:
        return ()
    if len(p) + len(q) - 2 > max_degree:
        raise NonLinearError("degree too high")
    out = [Fraction(0)] * (len(p) + len(q) - 1)
    for i, a in enumerate(p):
        for j, b in enumerate(q):
            out[i + j] += a * b
    return _trim(out)


def degree(p: Poly) -> int:
    """Degree of `p`; -1 for the zero polynomial."""
    return len(p) - 1


def evaluate(p: Poly, value: Fraction) -> Fraction:
    """`p` at `value`, exactly."""
    total = Fraction(0)
    for c in reversed(p):
        total = total * value + c
    return total


_TOKEN = re.compile(r"\s*(?:(\d+(?:\.\d+)?|\.\d+)|([A-Za-z])|([-+*/()]))")


def tokenize(expr: str) -> list[str]:
    """Split plain math into numbers, letters and operators; raise on anything else."""
    tokens: list[str] = []
    pos = 0
    while pos < len(expr):
        m = _TOKEN.match(expr, pos)
        if m is None:
            if not expr[pos:].strip():
                break
            ch = expr[pos:].lstrip()[0]
            if ch == "^":
                raise NonLinearError("a power (^)")
            raise MathTextError(f"unexpected {ch!r}")
        tok = m.group(m.lastindex or 0)
        if m.group(1) is not None and len(tok.replace(".", "")) > MAX_DIGITS:
            raise MathTextError("number too long")
        tokens.append(tok)
        pos = m.end()
    return tokens


def is_number_token(tok: str) -> bool:
    """True for a number token of `tokenize` (``3``, ``2.5``, ``.5``)."""
    return tok[0].isdigit() or tok[0] == "."


TokenT = TypeVar("TokenT")
ValueT = TypeVar("ValueT")


class ExprParser(ABC, Generic[TokenT, ValueT]):
    """Recursive descent for plain math, over any value type; raises `MathTextError`.

    ``expr = term (("+" | "-") term)*``, ``term = unary (("*" | "/") unary | atom)*`` where an
    atom written right after an operand multiplies it (``3x``, ``2(y - 3)``),
    ``unary = ("+" | "-") unary | atom``, ``atom = "(" expr ")" | leaf``. A subclass says what a
    leaf (number, letter) is worth, how values combine, and which tokens may start such an atom.
    """

    def __init__(self, tokens: Sequence[TokenT]) -> None:
        self.tokens = tokens
        self.i = 0

    @abstractmethod
    def leaf(self, tok: TokenT) -> ValueT:
        """The value of a token other than an operator or parenthesis; raise if it has none."""

    @abstractmethod
    def juxtaposes(self, tok: TokenT) -> bool:
        """Whether `tok`, right after an operand, starts an atom that multiplies it."""

    @abstractmethod
    def add(self, a: ValueT, b: ValueT) -> ValueT: ...

    @abstractmethod
    def sub(self, a: ValueT, b: ValueT) -> ValueT: ...

    @abstractmethod
    def mul(self, a: ValueT, b: ValueT) -> ValueT: ...

    @abstractmethod
    def div(self, a: ValueT, b: ValueT) -> ValueT: ...

    @abstractmethod
    def neg(self, a: ValueT) -> ValueT: ...

    def parse(self) -> ValueT:
        """The value of the whole token sequence."""
        value = self.expr()
        if self.i != len(self.tokens):
            raise MathTextError(f"unexpected {self.tokens[self.i]!r}")
        return value

    def peek(self) -> TokenT | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def take(self) -> TokenT:
        tok = self.tokens[self.i]
        self.i += 1
        return tok

    def expr(self) -> ValueT:
        value = self.term()
        while self.peek() in ("+", "-"):
            op = self.take()
            right = self.term()
            value = self.add(value, right) if op == "+" else self.sub(value, right)
        return value

    def term(self) -> ValueT:
        value = self.unary()
        while True:
            tok = self.peek()
            if tok in ("*", "/"):
                self.take()
                if self.peek() in ("*", "/"):
                    raise MathTextError("a doubled operator (** or //)")
                right = self.unary()
                value = self.mul(value, right) if tok == "*" else self.div(value, right)
            elif tok is not None and self.juxtaposes(tok):
                value = self.mul(value, self.atom())
            else:
                return value

    def unary(self) -> ValueT:
        tok = self.peek()
        if tok in ("+", "-"):
            self.take()
            value = self.unary()
            return value if tok == "+" else self.neg(value)
        return self.atom()

    def atom(self) -> ValueT:
        tok = self.peek()
        if tok is None:
            raise MathTextError("expression ends early")
        self.take()
        if tok == "(":
            value = self.expr()
            if self.peek() != ")":
                raise MathTextError("unbalanced parentheses")
            self.take()
            return value
        return self.leaf(tok)


class _PolyParser(ExprParser[str, Poly]):
    """`tokenize` output to an exact polynomial in `var`."""

    def __init__(self, tokens: Sequence[str], var: str) -> None:
        super().__init__(tokens)
        self.var = var

    def leaf(self, tok: str) -> Poly:
        if is_number_token(tok):
            return _trim([Fraction(tok)])
        if tok.isalpha():
            if tok != self.var:
                raise OtherVariableError(f"another variable {tok!r}")
            return (Fraction(0), Fraction(1))
        raise MathTextError(f"unexpected {tok!r}")

    def juxtaposes(self, tok: str) -> bool:
        if not (tok == "(" or tok[0].isalnum() or tok[0] == "."):
            return False
        if is_number_token(self.tokens[self.i - 1]) and is_number_token(tok):
            raise MathTextError("two numbers side by side")
        return True

    def add(self, a: Poly, b: Poly) -> Poly:
        return poly_add(a, b)

    def sub(self, a: Poly, b: Poly) -> Poly:
        return poly_add(a, b, -1)

    def mul(self, a: Poly, b: Poly) -> Poly:
        return poly_mul(a, b)

    def div(self, a: Poly, b: Poly) -> Poly:
        if not b:
            raise MathTextError("division by zero")
        if len(b) > 1:
            raise NonLinearError("division by the variable")
        return tuple(c / b[0] for c in a)

    def neg(self, a: Poly) -> Poly:
        return tuple(-c for c in a)


@byte_bounded_memo(max_bytes=16 << 20, max_entries=16384)
def _poly_or_error(expr: str, var: str) -> Poly | MathTextError:
    if len(expr) > MAX_EXPR_CHARS:
        return MathTextError("expression too long")
    try:
        tokens = tokenize(expr)
        if not tokens:
            return MathTextError("empty expression")
        return _PolyParser(tokens, var).parse()
    except MathTextError as exc:
        return exc


def poly(expr: str, var: str) -> Poly:
    """Exact polynomial of plain `expr` in `var` (memoized); raise `MathTextError` subclasses."""
    out = _poly_or_error(expr, var)
    if isinstance(out, MathTextError):
        raise out
    return out


def linear(expr: str, var: str) -> tuple[Fraction, Fraction]:
    """`(a, b)` with `expr == a*var + b`; raise `NonLinearError` when the degree exceeds 1."""
    p = poly(expr, var)
    if degree(p) > 1:
        raise NonLinearError(f"{expr.strip()!r} is not linear in {var}")
    return (p[1] if len(p) > 1 else Fraction(0), p[0] if p else Fraction(0))


def signed_numbers(expr: str) -> list[Fraction]:
    """The number literals of plain `expr` in order, negative when written after a minus."""
    out: list[Fraction] = []
    prev = ""
    for tok in tokenize(expr):
        if is_number_token(tok):
            value = Fraction(tok)
            out.append(-value if prev == "-" else value)
        prev = tok
    return out


def format_fraction(value: Fraction) -> str:
    """``5``, ``-25/3``."""
    return (
        str(value.numerator) if value.denominator == 1 else f"{value.numerator}/{value.denominator}"
    )


def format_linear(a: Fraction, b: Fraction, var: str) -> str:
    """``3x - 5``, ``-x``, ``(1/2)x + 7/2``, ``0``."""
    parts: list[str] = []
    if a:
        mag = abs(a)
        coef = "" if mag == 1 else (format_fraction(mag) if mag.denominator == 1 else f"({mag})")
        parts.append(("-" if a < 0 else "") + coef + var)
    if b or not parts:
        if parts:
            parts.append(("- " if b < 0 else "+ ") + format_fraction(abs(b)))
        else:
            parts.append(format_fraction(b))
    return " ".join(parts)

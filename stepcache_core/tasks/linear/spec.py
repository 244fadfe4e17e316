"""`LinearSpec`: the linear equation a prompt asks to solve, as detection reads it."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

from stepcache_core.tasks.linear.expr import (
    format_fraction,
)

__all__ = ["LinearSpec"]


@dataclass(frozen=True, slots=True)
class LinearSpec:
    """A linear equation in one variable, as asked in a prompt.

    `lhs`/`rhs` are plain math (digits, the variable, ``+ - * / ( ) .``); `lhs_linear` and
    `rhs_linear` are their exact ``(coefficient, constant)``; `constants` are the number
    literals with their sign (``3x - 5 = 20`` -> 3, -5, 20); `skeleton` is the equation with
    numbers as ``#`` and the variable as ``v`` (``#v-#=#``); `output` names extra answer-format
    demands the answer still satisfies when verified ("check"; formats it cannot verify, such as
    a rounded or bare answer, make `detect` return None). `understood` is True when the prompt
    holds nothing but the equation, its variable and the reviewed lexicon's phrasings (an empty
    residue): only then can a failing answer be proven wrong for the request, since an answer to
    any other words ("then add 4 to the result") may be right for them.
    """

    variable: str
    equation: str
    lhs: str
    rhs: str
    lhs_linear: tuple[Fraction, Fraction]
    rhs_linear: tuple[Fraction, Fraction]
    solution: Fraction
    constants: tuple[Fraction, ...]
    skeleton: str
    output: frozenset[str] = frozenset()
    understood: bool = False

    @property
    def plain(self) -> str:
        """``lhs = rhs`` in plain math."""
        return f"{self.lhs} = {self.rhs}"

    @property
    def solution_text(self) -> str:
        return format_fraction(self.solution)

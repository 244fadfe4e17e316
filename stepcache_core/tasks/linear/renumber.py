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
from collections.abc import Hashable, Iterable, Iterator, Sequence
from fractions import Fraction

from stepcache_core.tasks.linear.expr import (
    is_number_token,
    tokenize,
)
from stepcache_core.tasks.linear.renumber_read import (
    _Analysis,
    _analyze,
    _Occ,
    _Rel,
    _Shape,
    _solve,
)
from stepcache_core.tasks.linear.renumber_write import _BY_BEFORE, _VERB_BEFORE, _holds, _render

__all__ = ["MAX_RENUMBER_CHARS", "Renumbering", "signed_skeleton"]

#: Longer steps are not renumbered (only restated; `verify` judges them either way): matching a
#: step's numbers to the new problem costs time quadratic in the step (per equation and per
#: number), 5 s at 32 KB; real steps are under 1 KB.
MAX_RENUMBER_CHARS = 4_000

#: Where a candidate value comes from; a SOLUTION value never replaces a number beside the variable.
CONST, SOLUTION, DERIVED = "const", "solution", "derived"

#: At most this many value combinations are tried for one equation.
MAX_COMBINATIONS = 256


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
        rewrite exists or the step is over `MAX_RENUMBER_CHARS` (the caller then keeps the step
        as it was)."""
        if len(text) > MAX_RENUMBER_CHARS:
            return None
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

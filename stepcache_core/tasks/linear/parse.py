"""The built-in task: solve a linear equation in one variable (``3x + 5 = 20``, ``2(y - 3) = y``).

Detection reads the equation out of the prompt (plain or LaTeX), checks it with sympy and keeps the
exact solution. A cached answer is checked step by step against the *new* equation: every equation
in a step must hold at the new solution, no number of the cached equation that the new one lacks may
survive, and prose numbers must come from the new problem or from equations already verified.
Failing answers are patched from the first failing step (backend continuation), or finished by a
deterministic exact-arithmetic fallback.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache

from stepcache_core.segment import segment_text
from stepcache_core.tasks.base import (
    PASS,
    Check,
    Delta,
    DeltaKind,
    Generate,
    PatchRequest,
    Task,
)
from stepcache_core.tasks.linear.mathtext import (
    ENGLISH_LETTERS,
    MATH_SPAN,
    MathTextError,
    Reading,
    Relation,
    ascii_ops,
    constant_value,
    final_value,
    find_plain_equations,
    format_fraction,
    format_linear,
    is_variable,
    latex_to_plain,
    linear,
    literal_numbers,
    read_math,
    signed_numbers,
    tokenize,
)
from stepcache_core.tasks.linear.renumber import Renumbering, signed_skeleton
from stepcache_core.types import StepOrigin, StepOutcome

__all__ = ["LinearEquationTask", "LinearSpec", "detect_linear"]

MAX_PROMPT_CHARS = 4000
MAX_EQUATION_CHARS = 300

#: Reasons on passing checks; `worth_patching` reads them.
REASON_PROSE = "prose"
REASON_RESTATED = "restated problem"
REASON_DERIVED = "derived"


@dataclass(frozen=True, slots=True)
class LinearSpec:
    """A linear equation in one variable, as asked in a prompt.

    `lhs`/`rhs` are plain math (digits, the variable, ``+ - * / ( ) .``); `lhs_linear` and
    `rhs_linear` are their exact ``(coefficient, constant)``; `constants` are the number
    literals with their sign (``3x - 5 = 20`` -> 3, -5, 20); `skeleton` is the equation with
    numbers as ``#`` and the variable as ``v`` (``#v-#=#``); `output` names extra answer-format
    demands the answer still satisfies when verified ("check"; formats it cannot verify, such as
    a rounded or bare answer, make `detect` return None).
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

    @property
    def plain(self) -> str:
        """``lhs = rhs`` in plain math."""
        return f"{self.lhs} = {self.rhs}"

    @property
    def solution_text(self) -> str:
        return format_fraction(self.solution)


# ---------------------------------------------------------------------------- detection

_NOT_SOLVE = re.compile(
    r"\bis\b[^?.]*\b(?:a|the)\s+(?:solution|root)\b|\b(?:check|verify|confirm|determine)\s+"
    r"(?:whether|if|that)\b|\bsatisf(?:y|ies)\b|\b(?:graph|plot|sketch|slope|intercepts?|gradient)"
    r"\b|\bexplain why\b|\bno solutions?\b|\binfinitely many\b|\bhow many solutions\b|\bprove\b|"
    r"\bshow that\b|\btrue or false\b|\bwhich of\b|\bfactori[sz]e\b|\bexpand\b|\bdifferentiate\b|"
    r"\bderivative\b|\bintegra(?:l|te)\b|\bevaluate\b|\bsubstitut\w*|\bplug\b|\binequalit\w*|"
    r"\bwhat kind\b|\bwhat type\b|\bclassify\b|\btranslate\b|\bwrite a (?:program|function|code)\b",
    re.IGNORECASE,
)
_NAMED_VAR = re.compile(
    r"\b(?:for|value of|what is|find|solve for|determine|compute)\s+\\?\(?\s*([A-Za-z])\s*\\?\)?"
    r"(?![A-Za-z'’])",
    re.IGNORECASE,
)
#: Answer formats this task's integrity check does not enforce (words only, the bare value, a
#: decimal or rounded value, a fraction): such prompts get no spec, so only exact repeats reuse.
_UNVERIFIABLE_OUTPUT = frozenset({"no_equations", "answer_only", "decimal", "fraction"})
_OUTPUT_TAGS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("decimal", re.compile(r"\bdecimal\b", re.IGNORECASE)),
    ("fraction", re.compile(r"\b(?:as|in)\s+(?:a|an)?\s*(?:\w+\s+)?fraction\b", re.IGNORECASE)),
    (
        "answer_only",
        re.compile(
            r"\b(?:only|just)\s+(?:give\s+|state\s+|write\s+|return\s+)?(?:the\s+)?(?:final\s+)?"
            r"(?:answer|value|number|result)\b|\banswer only\b|\bno explanation\b|"
            r"\bwithout (?:any )?(?:explanation|working|steps)\b",
            re.IGNORECASE,
        ),
    ),
    (
        "no_equations",
        re.compile(
            r"\bwithout (?:using )?(?:any )?(?:equations|symbols|math|algebra)\b|\bin (?:plain )?"
            r"words\b|\bno equations\b|\bin plain english\b",
            re.IGNORECASE,
        ),
    ),
    (
        "check",
        re.compile(r"\b(?:check|verify)\s+(?:your|the)\s+(?:answer|solution|result)", re.I),
    ),
)
_WORD_DIGITS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6}
_ROUND = re.compile(
    r"\bround\w*\b[^.?!]*?\b(?:to\s+)?(\d|one|two|three|four|five|six)\s+decimal"
    r"|\bnearest\s+(whole number|integer|tenth|hundredth|thousandth)\b",
    re.IGNORECASE,
)
_NEAREST = {"whole number": 0, "integer": 0, "tenth": 1, "hundredth": 2, "thousandth": 3}


def _rounding(prompt: str) -> int | None:
    m = _ROUND.search(prompt)
    if m is None:
        return None
    if m.group(1):
        word = m.group(1).lower()
        return int(word) if word.isdigit() else _WORD_DIGITS[word]
    return _NEAREST[m.group(2).lower()]


def _candidates(prompt: str) -> list[tuple[str, str]]:
    """Equations in a prompt: (as written, plain); LaTeX spans first, then plain runs of math."""
    found: list[tuple[str, str]] = []
    chars = list(prompt)
    for m in MATH_SPAN.finditer(prompt):
        body = next(g for g in m.groups() if g is not None)
        if "=" in body:
            try:
                found.append((body.strip(), latex_to_plain(body).strip()))
            except MathTextError:
                found.append((body.strip(), "\\"))  # unreadable: detection fails below
        for k in range(m.start(), m.end()):
            chars[k] = " "
    rest = "".join(chars)
    # "a", "A", "I" are words in prose; one is a variable only where it touches math ("2a + 3").
    used = re.search(
        r"(?:\d|[-+*/(=]\s*)([aAI])(?![A-Za-z'’])|(?<![A-Za-z'’])([aAI])\s*[-+*/)=]", rest
    )
    letter = (used.group(1) or used.group(2)) if used else ""
    for run, _, _ in find_plain_equations(rest, letter):
        sides = run.split("=")
        if all(s.strip() for s in sides):  # "end with 'x = <value>'" leaves an empty side
            found.append((run.strip(), ascii_ops(run.strip())))
    return found


def _skeleton(plain: str, var: str, *, numbers: bool = True) -> str:
    """`plain` token by token with the variable as ``v`` and, unless `numbers` is False, every
    number as ``#``."""
    return "".join(
        "#" if numbers and (tok[0].isdigit() or tok[0] == ".") else "v" if tok == var else tok
        for tok in tokenize(plain)
    )


@lru_cache(maxsize=4096)
def _sympy_solution(lhs: str, rhs: str, var: str) -> Fraction | None:
    """Solve with sympy on whitelisted plain math (nothing else ever reaches `parse_expr`)."""
    import sympy
    from sympy.parsing.sympy_parser import (
        implicit_multiplication,
        parse_expr,
        rationalize,
        standard_transformations,
    )

    symbol = sympy.Symbol(var)
    transformations = (*standard_transformations, implicit_multiplication, rationalize)
    local = {var: symbol}
    names = {"Integer": sympy.Integer, "Rational": sympy.Rational, "Float": sympy.Float}
    try:
        left = parse_expr(lhs, local_dict=local, global_dict=names, transformations=transformations)
        right = parse_expr(
            rhs, local_dict=local, global_dict=names, transformations=transformations
        )
        diff = left - right
        if diff.free_symbols - {symbol}:
            return None
        # A polynomial in the variable (one in a denominator raises): exact rational coefficients,
        # solved from them directly (sympy.solve would cost ~1 ms more per prompt).
        poly = sympy.Poly(diff, symbol)
    except Exception:  # sympy raises many types on odd input
        return None
    if poly.degree() != 1:
        return None
    slope, intercept = poly.all_coeffs()
    root = -intercept / slope
    if not root.is_Rational:
        return None
    return Fraction(int(root.p), int(root.q))


_WHITELIST = re.compile(r"^[0-9A-Za-z+\-*/(). ]+$")


@lru_cache(maxsize=4096)
def detect_linear(prompt: str) -> LinearSpec | None:
    """The linear equation a prompt asks to solve, or None (memoized on the prompt string)."""
    if len(prompt) > MAX_PROMPT_CHARS or _NOT_SOLVE.search(prompt):
        return None
    found = _candidates(prompt)
    if len(found) != 1:
        return None
    written, plain = found[0]
    if plain.count("=") != 1 or not _WHITELIST.match(plain.replace("=", " ")):
        return None  # chains, LaTeX left over, powers (^), other symbols
    if "**" in plain or "//" in plain or len(plain) > MAX_EQUATION_CHARS:
        return None
    letters = set(re.findall(r"[A-Za-z]", plain))
    if len(letters) != 1:
        return None
    var = letters.pop()
    named = {m.group(1) for m in _NAMED_VAR.finditer(prompt)} - (ENGLISH_LETTERS - {var})
    if named - {var}:
        return None  # "Solve 3x + 5 = 20 for y"
    lhs, rhs = (s.strip() for s in plain.split("="))
    try:
        lhs_linear, rhs_linear = linear(lhs, var), linear(rhs, var)
        constants = tuple(signed_numbers(lhs) + signed_numbers(rhs))
        skeleton = _skeleton(lhs, var) + "=" + _skeleton(rhs, var)
    except MathTextError:
        return None
    a = lhs_linear[0] - rhs_linear[0]
    if a == 0:
        return None  # identity or contradiction
    solution = (rhs_linear[1] - lhs_linear[1]) / a
    if is_variable(lhs, var) and constant_value(rhs, var) is not None:
        return None  # "when x = 2": nothing to solve
    # The cross-check is memoized on the equation with its variable renamed to x (the only
    # letter in it): a reworded or renamed problem is checked once.
    if _sympy_solution(lhs.replace(var, "x"), rhs.replace(var, "x"), "x") != solution:
        return None
    output = frozenset(tag for tag, pattern in _OUTPUT_TAGS if pattern.search(prompt))
    if _UNVERIFIABLE_OUTPUT & output or _rounding(prompt) is not None:
        return None  # an answer format the integrity check does not enforce
    return LinearSpec(
        variable=var,
        equation=written,
        lhs=lhs,
        rhs=rhs,
        lhs_linear=lhs_linear,
        rhs_linear=rhs_linear,
        solution=solution,
        constants=constants,
        skeleton=skeleton,
        output=output,
    )


# ---------------------------------------------------------------------------- transfer


@lru_cache(maxsize=64)
def _letter_pattern(letter: str) -> re.Pattern[str]:
    return re.compile(r"(?<![A-Za-z'’\\])" + re.escape(letter) + r"(?![A-Za-z'’])")


def rename_variable(text: str, old: str, new: str) -> str:
    """Rename the standalone letter `old` to `new`: in math spans always, in prose unless `old`
    is an English word ("a", "I"); never inside words or LaTeX commands."""
    pattern = _letter_pattern(old)
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


def _renumbering(cached: LinearSpec, spec: LinearSpec) -> Renumbering | None:
    """The number map from `cached` to `spec` when they share their signed skeleton and differ in
    their numbers; None otherwise (nothing to re-instantiate, or no one-to-one alignment)."""
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
    if not same:
        return None
    return Renumbering.start(
        spec.variable,
        zip(cached.constants, spec.constants, strict=True),
        (cached.solution, spec.solution),
    )


# ---------------------------------------------------------------------------- verification


def _solution_numbers(spec: LinearSpec) -> set[Fraction]:
    s = abs(spec.solution)
    return {s, Fraction(s.numerator), Fraction(s.denominator)}


def _relation_problem(rel: Relation, spec: LinearSpec) -> str | None:
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


def _check_step(
    reading: Reading,
    spec: LinearSpec,
    stale: set[Fraction],
    allowed: set[Fraction],
    shape: str | None = None,
) -> Check:
    """One step's verdict; adds the numbers of its verified equations to `allowed`."""
    var = spec.variable
    if reading.problems:
        return Check(False, reading.problems[0])
    others = sorted(reading.prose_letters - {var})
    if others:
        return Check(False, f"another variable {others[0]!r}")
    derived = restated = 0
    guarded: list[Fraction] = []  # numbers that must not be stale
    for rel in reading.relations:
        problem = _relation_problem(rel, spec)
        if problem is not None:
            return Check(False, problem)
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
    if derived:
        return Check(True, f"{REASON_DERIVED}: {derived} equation(s) hold")
    return Check(True, REASON_RESTATED if restated else REASON_PROSE)


def _stale(cached: LinearSpec, spec: LinearSpec) -> set[Fraction]:
    """Numbers of the cached equation that the new one lacks (signed multiset difference), unsigned:
    ``3x - 5 = 20`` -> ``3x + 5 = 20`` makes 5 stale."""
    gone = Counter(cached.constants) - Counter(spec.constants)
    return {abs(n) for n in gone}


# ---------------------------------------------------------------------------- the task


class LinearEquationTask(Task[LinearSpec]):
    """Solve a linear equation in one variable; exact verification, patching and fallback."""

    name = "linear_equation"

    def detect(self, prompt: str) -> LinearSpec | None:
        return detect_linear(prompt)

    def segment(self, text: str) -> list[str]:
        return segment_text(text)

    def compare(
        self, cached_prompt: str, cached: LinearSpec, prompt: str, spec: LinearSpec
    ) -> Delta:
        """CORE when the answer format asked for differs; else RENAME (other variable), CONSTANTS
        (other equation: same skeleton, other numbers, or other structure) and REWORDING (other
        words around the equation), as they apply."""
        if cached.output != spec.output:
            return Delta(
                frozenset({DeltaKind.CORE}),
                f"answer format differs: {sorted(cached.output)} vs {sorted(spec.output)}",
            )
        kinds: set[DeltaKind] = set()
        reasons: list[str] = []
        if cached.variable != spec.variable:
            kinds.add(DeltaKind.RENAME)
            reasons.append(f"variable {cached.variable} -> {spec.variable}")
        same = (cached.lhs_linear, cached.rhs_linear) == (spec.lhs_linear, spec.rhs_linear)
        if not same or Counter(cached.constants) != Counter(spec.constants):
            kinds.add(DeltaKind.CONSTANTS)
            how = "same skeleton" if cached.skeleton == spec.skeleton else "other structure"
            reasons.append(f"{how}: {cached.plain} -> {spec.plain}")
        if _template(cached_prompt, cached) != _template(prompt, spec):
            kinds.add(DeltaKind.REWORDING)
            reasons.append("other wording")
        return Delta(frozenset(kinds), "; ".join(reasons))

    def transfer(self, step: str, cached: LinearSpec, spec: LinearSpec) -> str:
        """Rename the variable, then restate the problem: the cached equation becomes the new."""
        if cached.variable != spec.variable:
            step = rename_variable(step, cached.variable, spec.variable)
        if (cached.lhs, cached.rhs, cached.variable) != (spec.lhs, spec.rhs, spec.variable):
            step = restate(step, cached, spec)
        return step

    def transfer_steps(
        self, steps: Sequence[str], cached: LinearSpec, spec: LinearSpec
    ) -> list[str]:
        """`transfer` each step, and when the two equations differ only in their numbers (same
        signed skeleton), first re-instantiate every number of the step for the new equation
        (`renumber`): the cached derivation replayed with the new numbers.
        A step that cannot be rewritten consistently is only renamed and restated, as before;
        `verify` judges every step either way."""
        renumbering = _renumbering(cached, spec)
        if renumbering is None:
            return [self.transfer(s, cached, spec) for s in steps]
        out: list[str] = []
        for step in steps:
            if cached.variable != spec.variable:
                step = rename_variable(step, cached.variable, spec.variable)
            rewritten = renumbering.rewrite(step)
            out.append(restate(step, cached, spec) if rewritten is None else rewritten)
        return out

    def verify(self, steps: Sequence[str], cached: LinearSpec, spec: LinearSpec) -> list[Check]:
        """Per step: equations linear and true at the new solution, numeric identities true, no
        other variable, nothing unreadable, no stale number of the cached equation (except in a
        final ``v = solution`` / boxed solution), prose numbers backed by the new equation, its
        solution or an equation verified so far, no code block with numbers."""
        stale = _stale(cached, spec)
        allowed: set[Fraction] = set()
        shape = _problem_shape(spec)
        return [
            _check_step(read_math(step, spec.variable), spec, stale, allowed, shape)
            for step in steps
        ]

    def integrity(self, text: str, spec: LinearSpec) -> Check:
        """The whole answer: readable, every equation linear and true at the solution, and a final
        ``v = value`` / ``\\boxed{value}`` equal to the solution (rounded when the prompt asks)."""
        var = spec.variable
        reading = read_math(text, var)
        if reading.problems:
            return Check(False, reading.problems[0])
        for rel in reading.relations:
            problem = _relation_problem(rel, spec)
            if problem is not None:
                return Check(False, problem)
        for e in reading.expressions:
            value = constant_value(e.text, var) if e.boxed else spec.solution
            if value != spec.solution:
                return Check(False, f"boxed {e.text} is not the solution {spec.solution_text}")
        final = final_value(reading, var)
        if final is None:
            return Check(False, f"no final '{var} = value' statement (truncated answer?)")
        if final[0] != spec.solution:
            return Check(
                False,
                f"final answer {var} = {format_fraction(final[0])}, expected {spec.solution_text}",
            )
        return PASS

    def shapes(self, prompt: str, spec: LinearSpec) -> Sequence[str]:
        """The equation with its variable masked, then its skeleton (numbers masked too), each
        with the answer format asked for: rewordings and renames of one problem share the first,
        constant changes the second, whatever the words."""
        output = "\x00".join(sorted(spec.output))
        var = spec.variable
        equation = (
            _skeleton(spec.lhs, var, numbers=False) + "=" + _skeleton(spec.rhs, var, numbers=False)
        )
        return (f"equation\x00{equation}\x00{output}", f"skeleton\x00{spec.skeleton}\x00{output}")

    def kept_prefix(self, checks: Sequence[Check]) -> int:
        """Patches and the fallback keep every step before the first failing one verbatim."""
        return next((i for i, c in enumerate(checks) if not c.ok), len(checks))

    def worth_patching(self, checks: Sequence[Check]) -> bool:
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

    def patch(
        self, request: PatchRequest[LinearSpec], generate: Generate
    ) -> list[StepOutcome] | None:
        """Keep the verified prefix, ask the backend to continue from it, stitch. The engine may
        stream the continuation's steps as they are written (`patched_steps` is prefix-stable)."""
        prefix = _verified_prefix(request)

        def assemble(raw: str) -> list[StepOutcome]:
            return patched_steps(prefix, raw)

        completion = generate(_patch_prompt(request, "".join(prefix)), request.max_tokens, assemble)
        outcomes = assemble(completion.text)
        return outcomes if len(outcomes) > len(prefix) else None

    def fallback(self, request: PatchRequest[LinearSpec]) -> list[StepOutcome] | None:
        """Keep the verified prefix and finish with exact arithmetic from its last equation."""
        prefix = _verified_prefix(request)
        spec = request.spec
        start = _last_unique_equation(prefix, spec)
        lines = fallback_lines(spec, start)
        if prefix and not prefix[-1].endswith("\n"):
            lines[0] = "\n" + lines[0]
        outcomes = [StepOutcome(s, StepOrigin.REUSED) for s in prefix]
        outcomes += [StepOutcome(line, StepOrigin.FALLBACK) for line in lines]
        return outcomes


def _template(prompt: str, spec: LinearSpec) -> str:
    text = prompt.replace(spec.equation, " <eq> ")
    text = _letter_pattern(spec.variable).sub("<v>", text)
    return " ".join(text.lower().split())


def patched_steps(prefix: Sequence[str], raw: str) -> list[StepOutcome]:
    """The kept `prefix` followed by the steps of the backend's continuation `raw` (complete or
    still being written). A continuation that starts by repeating the prefix has the repeat
    removed; while it could still be such a repeat, it contributes no step yet."""
    prefix_text = "".join(prefix)
    kept = prefix_text.strip()
    continuation = raw
    if kept:
        body = raw.lstrip()
        if body.startswith(kept):
            continuation = body[len(kept) :]
        elif kept.startswith(body):  # nothing but (the start of) a repeat so far
            continuation = ""
    if prefix_text and not prefix_text.endswith("\n"):
        continuation = "\n" + continuation.lstrip("\n")
    elif prefix_text:
        continuation = continuation.lstrip("\n")
    outcomes = [StepOutcome(s, StepOrigin.REUSED) for s in prefix]
    if continuation.strip():
        outcomes += [StepOutcome(s, StepOrigin.PATCHED) for s in segment_text(continuation)]
    return outcomes


def _verified_prefix(request: PatchRequest[LinearSpec]) -> list[str]:
    first = next((i for i, c in enumerate(request.checks) if not c.ok), len(request.steps))
    return list(request.steps[:first])


def _patch_prompt(request: PatchRequest[LinearSpec], prefix_text: str) -> str:
    spec = request.spec
    end = f"end with the line '{spec.variable} = <value>' (exact; a fraction like 25/3 if needed)"
    parts = [request.prompt.strip(), ""]
    if prefix_text.strip():
        parts += [
            "Here is the start of a solution; every step in it has been verified as correct:",
            "",
            prefix_text.rstrip(),
            "",
            "Continue the solution exactly from where it stops; do not repeat the steps above. "
            f"Write the remaining steps concisely, one per line, and {end}.",
        ]
    else:
        parts.append(
            f"Solve {spec.equation} step by step, concisely, one step per line, and {end}."
        )
    if request.attempt > 0 and request.last_failure:
        parts += [
            "",
            f"A previous answer was rejected: {request.last_failure}. Avoid that mistake.",
        ]
    return "\n".join(parts)


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
            if left[0] != right[0] and _relation_problem(rel, spec) is None:
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

"""Detection: the linear equation a prompt asks to solve (`detect_linear`, prompt -> `LinearSpec`).

The equation is read out of the prompt (plain or LaTeX) and cross-checked with sympy, which keeps
the exact solution; prompts that are not "solve this", name another variable, ask for an answer
format the integrity check cannot enforce, or write anything in notation the reader does not read
with certainty (`notation.refused_notation`: digit grouping, unicode math, units, inequalities ...)
get no spec. The spec records whether the prompt holds nothing else than the equation and the
lexicon's phrasings (`LinearSpec.understood`).
"""

from __future__ import annotations

import re
from dataclasses import replace
from fractions import Fraction
from functools import lru_cache

from stepcache_core.memo import byte_bounded_memo
from stepcache_core.tasks.linear.expr import (
    MathTextError,
    linear,
    signed_numbers,
    tokenize,
)
from stepcache_core.tasks.linear.mathtext import (
    ENGLISH_LETTERS,
    MATH_SPAN,
    ascii_ops,
    constant_value,
    find_plain_equations,
    is_variable,
    latex_to_plain,
)
from stepcache_core.tasks.linear.notation import refused_notation
from stepcache_core.tasks.linear.spec import LinearSpec
from stepcache_core.tasks.linear.wording import LINEAR_LEXICON, linear_masks
from stepcache_core.tasks.understanding import residue

__all__ = ["MAX_EQUATION_CHARS", "MAX_PROMPT_CHARS", "detect_linear", "token_skeleton"]

MAX_PROMPT_CHARS = 4000
MAX_EQUATION_CHARS = 300


_NOT_SOLVE = re.compile(
    r"\bis\b[^?.]*\b(?:a|the)\s+(?:solution|root)\b|\b(?:check|verify|confirm|determine)\s+"
    r"(?:whether|if|that)\b|\bsatisf(?:y|ies)\b|\b(?:graph|plot|sketch|slope|intercepts?|gradient)"
    r"\b|\bexplain why\b|\bno solutions?\b|\binfinitely many\b|\bhow many solutions\b|\bprove\b|"
    r"\bshow that\b|\btrue or false\b|\bwhich of\b|\bfactori[sz]e\b|\bexpand\b|\bdifferentiate\b|"
    r"\bderivative\b|\bintegra(?:l|te)\b|\bevaluate\b|\bsubstitut\w*|\bplug\b|\binequalit\w*|"
    r"\bwhat kind\b|\bwhat type\b|\bclassify\b|\btranslate\b|\bwrite a (?:program|function|code)\b",
    re.IGNORECASE,
)
#: Asking for the value that satisfies the equation is a solve request ("What value of x
#: satisfies 3x + 5 = 20?"); any other "satisfy" (does x = 2 satisfy ...) stays a verdict.
_SATISFIES_ASK = re.compile(
    r"\b(?:what|which)\s+value\s+of\s+[A-Za-z]\s+satisfies\b"
    r"|\bfind\s+the\s+value\s+of\s+[A-Za-z]\s+that\s+satisfies\b",
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
    # "Show your steps", "step by step", "short working": the answer must show some working
    # (`verify.check_integrity`), so a cached bare "x = 5" is not served for it.
    (
        "steps",
        re.compile(r"\bsteps?\b|\bworking\b|\bshow\s+(?:your|the|all)\s+(?:\w+\s+)?work\b", re.I),
    ),
    # The lexicon's "end with 'x = <value>'", "make the last line x = <value>": a cached answer
    # to a request without it may end otherwise (a check line, a sign-off).
    (
        "final_line",
        re.compile(r"=\s*<value>|\bfinish\s+with\s+the\s+value\s+of\b", re.I),
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
    for run, start, end in find_plain_equations(rest, letter):
        sides = run.split("=")
        if all(s.strip() for s in sides):  # "end with 'x = <value>'" leaves an empty side
            plain = ascii_ops(run.strip())
            if _glued(rest, start, end) or re.search(r"[\d.]\s+[\d.]", plain):
                plain = "\\"  # "x:2", "4 500": a run cut out of more math, detection fails
            found.append((run.strip(), plain))
    return found


def _glued(text: str, start: int, end: int) -> bool:
    """True when the run ``text[start:end]`` touches more text that may be math: a letter or
    digit right at its edge, or a sign between it and a letter or digit (``x:2``, ``20,5``)."""
    for near, far in ((start - 1, start - 2), (end, end + 1)):
        if near < 0 or near >= len(text) or text[near].isspace():
            continue
        if text[near].isalnum():
            return True
        if 0 <= far < len(text) and text[far].isalnum():
            return True
    return False


def token_skeleton(plain: str, var: str, *, numbers: bool = True) -> str:
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


@byte_bounded_memo(max_bytes=8 << 20)
def detect_linear(prompt: str) -> LinearSpec | None:
    """The linear equation a prompt asks to solve, or None (memoized on the prompt string)."""
    if len(prompt) > MAX_PROMPT_CHARS or _NOT_SOLVE.search(_SATISFIES_ASK.sub(" ", prompt)):
        return None
    if refused_notation(prompt) is not None:
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
        skeleton = token_skeleton(lhs, var) + "=" + token_skeleton(rhs, var)
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
    spec = LinearSpec(
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
    understood = not residue(prompt, linear_masks(prompt, spec), LINEAR_LEXICON)
    return replace(spec, understood=understood)

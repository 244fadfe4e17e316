"""Notation the linear parser does not read with certainty (`refused_notation`, prompt -> reason).

Detection refuses a prompt that writes math, numbers or conditions in a way the equation reader
would misread or drop: digit grouping (``4,500``, ``4 500``, ``4'500``, ``4.500``), a leading
decimal point (``.5x``), a fraction before a letter (``1/2x``), a letter as a times sign
(``2 x 3``), a number after a parenthesis (``(n + 3)2``), unicode math (``²``, ``√``, ``−``,
``≤``, ``½``), powers, roots, percentages, functions, LaTeX beyond fractions and products,
numbers and operators in words, modular arithmetic, inequalities (in symbols or words), systems
of equations and units. A refusal is a plain miss: the model answers as it would without the
cache. Every rule here errs towards refusing.
"""

from __future__ import annotations

import re
import unicodedata

from stepcache_core.tasks.linear.mathtext import MATH_SPAN

__all__ = ["refused_notation"]

#: Unicode categories of math symbols, other numbers (superscripts, subscripts, ``½``) and
#: currency signs; non-ASCII decimal digits are refused as well.
_REFUSED_CATEGORIES = frozenset({"Sm", "No", "Sc"})
_REFUSED_CHARS = frozenset("−·⋅πℯ°′″")
_DASHES = "\u2010-\u2015"
#: A typographic dash next to a number, a parenthesis or a lone letter is a minus sign.
_DASH_AS_MINUS = re.compile(
    rf"[\d()]\s*[{_DASHES}]|[{_DASHES}]\s*[\d(]"
    rf"|(?<![A-Za-z])[A-Za-z]\s*[{_DASHES}]|[{_DASHES}]\s*[A-Za-z](?![A-Za-z])"
)
_GROUPING = re.compile(
    r"\d[,'’_]\d"  # 4,500  4'500  4_500 (and a decimal comma: 4,5)
    r"|\d[ \u00a0\u2009\u202f]\d{3}(?!\d)"  # 4 500
    r"|\d\.\d{3}\.\d"  # 4.500.000
    r"|(?<![\d.,])[1-9]\d{0,2}\.\d{3}(?!\d|[.,]\d)"  # 4.500: 4500 in Europe, 4.5 elsewhere
    r"|\d\\[,;:! ]\d|\d\{,\}\d"  # LaTeX: 4\,500  4{,}500
)
#: ASCII signs of another kind of math: percent, powers, absolute values, factorials, comparisons
#: (a ``<placeholder>`` such as ``<value>`` is prose), ``!=``.
_SYMBOLS = re.compile(r"[%^|_~<>]|[\d)]\s*!|!=")
_PLACEHOLDER = re.compile(r"<[A-Za-z][\w ]*>")
#: Number forms two readers read differently: a leading decimal point (``.5x``, which a reader
#: that skips the point takes for ``5x``), a fraction right before a letter or a parenthesis
#: (``1/2x`` is (1/2)x to one reader and 1/(2x) to another; ``6/2(1 + 2)``), a letter
#: between two numbers (``2 x 3``) and a number right after a closing parenthesis (``(n + 3)2``
#: is 2(n + 3) to one reader and (n + 3)², a superscript lost in a copy, to another).
_AMBIGUOUS_NUMBER = re.compile(
    r"(?<![\w.])\.\d"
    r"|\)[ \t]*\d"
    r"|\d\s*/\s*\d+(?:\.\d+)?(?:\s*\(|\s?[A-Za-z](?![A-Za-z]))"
    # a lone letter between two numbers: ``2 x 3`` is 2 times 3 to one reader, 6x to another
    r"|\d[ \t]*(?<![A-Za-z])[A-Za-z](?![A-Za-z])[ \t]*\d"
)
_WORDS = re.compile(
    r"\b(?:"
    # functions, roots, powers, percentages
    r"sin|cos|tan|cot|sec|csc|arc(?:sin|cos|tan)|sinh|cosh|tanh|logs?|logarithms?|ln|lg|exp|sqrt"
    r"|abs|absolute"
    r"|floor|ceil\w*|max|min|gcd|lcm|factorial|radical|squared?|squares|cubed?|cubes"
    r"|(?:nth|\d+th|fourth|fifth)\s+roots?|power|powers|exponents?|percent\w*|per\s+cent|pct"
    # modular arithmetic
    r"|mod|modulo|modular|modulus|congruen\w*|remainder"
    # inequalities in words
    r"|(?:greater|less|more|fewer|smaller|larger|bigger|lower|higher)\s+than|at\s+(?:least|most)"
    r"|exceeds?|exceeding|between|not\s+equal|unequal|does\s+not\s+equal"
    # several equations
    r"|simultaneous\w*|system\s+of|systems"
    # numbers and operators in words ("one" is an instruction word: "one step per line")
    r"|zero|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|thirteen|fourteen"
    r"|fifteen|sixteen|seventeen|eighteen|nineteen|twenty|thirty|forty|fifty|sixty|seventy"
    r"|eighty|ninety|hundreds?|thousands?|millions?|billions?|dozens?|half|halves|thirds?"
    r"|quarters?|twice|thrice|double(?![- ]check)|triple|plus|minus|times|equals?"
    r"|divided|multiplied|product|sum|difference|quotient"
    r")\b",
    re.IGNORECASE,
)
#: "one" next to math or an operator word is a number written in words.
_ONE_AS_NUMBER = re.compile(r"\bone\s*(?:[+*/=(]|-(?![A-Za-z]))|[-+*/=(]\s*one\b", re.IGNORECASE)
_UNIT = (
    r"(?:kg|g|mg|t|km|m|cm|mm|mi|ft|yd|lbs?|oz|s|sec|secs|ms|h|hr|hrs|hours?|mins?|minutes?"
    r"|seconds?|days?|weeks?|years?|l|ml|dl|gal|mph|kph|kmh|dollars?|usd|eur|euros?|cents?"
    r"|pounds?|gbp|yen|degrees?|deg|rad|meters?|metres?|kilo\w*|grams?|lit(?:er|re)s?|miles?"
    r"|feet|foot|inch(?:es)?|units?|items?|pieces?|apples?|people|persons?|km/h|m/s)"
)
#: A number with a unit after it; a single letter right after a number is a coefficient's
#: variable, so single-letter units count only after a space.
_UNITS = re.compile(
    rf"\d\s*(?=[A-Za-z]{{2}})(?:{_UNIT})(?:\s*/\s*{_UNIT})?(?![A-Za-z])"
    rf"|\d\s+(?:{_UNIT})(?:\s*/\s*{_UNIT})?(?![A-Za-z])"
    r"|\d\s*/\s*[A-Za-z]{2,}",
    re.IGNORECASE,
)
#: LaTeX commands a prompt may use inside a math span: fractions, products, sizing and spacing.
_LATEX_ALLOWED = frozenset(
    {"frac", "dfrac", "tfrac", "cdot", "times", "div", "left", "right", "displaystyle", ",", " "}
)
_LATEX_CMD = re.compile(r"\\([A-Za-z]+|.)", re.DOTALL)
_PROSE_WORD = re.compile(r"(?<![\\A-Za-z])[A-Za-z]{2,}")


def _unicode_math(prompt: str) -> str | None:
    for ch in prompt:
        if ord(ch) < 128:
            continue
        cat = unicodedata.category(ch)
        if ch in _REFUSED_CHARS or cat in _REFUSED_CATEGORIES or cat == "Nd":
            return f"unicode math or number sign {ch!r}"
    m = _DASH_AS_MINUS.search(prompt)
    if m is not None:
        return f"a typographic dash used as a minus in {m.group()!r}"
    return None


def _latex(prompt: str) -> str | None:
    """LaTeX only inside math spans, only the allowed commands; a ``$`` span holding prose words
    (``$5 and $3``) is money, not math."""
    outside = list(prompt)
    for m in MATH_SPAN.finditer(prompt):
        body = next(g for g in m.groups() if g is not None)
        for cmd in _LATEX_CMD.finditer(body):
            if cmd.group(1) not in _LATEX_ALLOWED:
                return f"LaTeX \\{cmd.group(1)}"
        if m.group("d") is not None or m.group("c") is not None:
            word = _PROSE_WORD.search(body)
            if word is not None:
                return f"a dollar sign around prose ({word.group()!r}): money, not math"
        for k in range(m.start(), m.end()):
            outside[k] = " "
    rest = "".join(outside)
    if "\\" in rest:
        return "LaTeX outside a math span"
    if "$" in rest:
        return "a dollar sign outside a math span"
    if re.search(r"[{}]", rest):
        return "braces outside a math span"
    return None


def refused_notation(prompt: str) -> str | None:
    """Why the linear parser cannot read `prompt` with certainty, or None when it can."""
    found = _unicode_math(prompt) or _latex(prompt)
    if found is not None:
        return found
    if m := _SYMBOLS.search(_PLACEHOLDER.sub(" ", prompt)):
        return f"a sign the equation reader does not read: {m.group()!r}"
    for pattern, what in (
        (_GROUPING, "digit grouping or a decimal comma"),
        (_AMBIGUOUS_NUMBER, "a number two readers read differently"),
        (_WORDS, "math in words"),
        (_ONE_AS_NUMBER, "a number in words"),
        (_UNITS, "a unit"),
    ):
        m = pattern.search(prompt)
        if m is not None:
            return f"{what}: {m.group()!r}"
    return None

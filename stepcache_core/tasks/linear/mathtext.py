"""Reading equations out of model text: LaTeX and plain math to exact polynomials in one variable.

A model writes math as LaTeX spans (``\\(x = 4\\)``, ``\\[ ... \\]``, ``\\frac{3}{2}``,
``\\boxed{5}``), as plain lines (``3x = 15``, ``**x = 5**``) and sometimes in code fences.
`read_math` finds every relation (``a = b``; a chain ``a = b = c`` gives two), every math
expression without ``=``, every ``\\boxed{}`` value, and the numbers and single letters of the
prose around them. LaTeX is converted to plain math (`latex_to_plain`), which `expr` evaluates
exactly (`fractions.Fraction` coefficients).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache

from stepcache_core.memo import byte_bounded_memo
from stepcache_core.tasks.linear.expr import MathTextError, degree, poly, signed_numbers

#: Single letters that are English words in prose, never read as variables there.
ENGLISH_LETTERS = frozenset("aAI")


# ---------------------------------------------------------------------------- LaTeX to plain

_FRACS = frozenset({"frac", "dfrac", "tfrac", "cfrac"})
_UNWRAP = frozenset({"mathbf", "mathrm", "mathit", "bm", "boldsymbol", "mathbb", "underline"})
_TEXTS = frozenset(
    {"text", "textbf", "textit", "textrm", "mbox", "mathtt", "texttt", "operatorname"}
)
_SEPS = frozenset(
    {
        "implies", "Rightarrow", "rightarrow", "Longrightarrow", "longrightarrow", "to", "iff",
        "Leftrightarrow", "therefore", "because", "quad", "qquad", "hfill", "newline", "and",
    }
)  # fmt: skip
_NOOPS = frozenset({"displaystyle", "textstyle", "nonumber", "notag", "big", "Big", "bigg", "Bigg"})
_TIMES = frozenset({"cdot", "times", "ast"})
_SPACES = frozenset({",", ";", ":", "!", " ", "enspace", "thinspace"})
_CMD = re.compile(r"\\([A-Za-z]+|.)", re.DOTALL)
_BOXED_MARK = "\x01"


def _group(src: str, i: int) -> tuple[str, int]:
    """The argument at `i`: a balanced ``{...}`` group or one character; returns (content, end)."""
    while i < len(src) and src[i].isspace():
        i += 1
    if i >= len(src):
        raise MathTextError("a LaTeX command lacks its argument")
    if src[i] != "{":
        if src[i] == "\\":
            m = _CMD.match(src, i)
            if m is None:
                raise MathTextError("a lone backslash")
            return m.group(0), m.end()
        return src[i], i + 1
    depth = 0
    for j in range(i, len(src)):
        if src[j] == "{" and (j == 0 or src[j - 1] != "\\"):
            depth += 1
        elif src[j] == "}" and (j == 0 or src[j - 1] != "\\"):
            depth -= 1
            if depth == 0:
                return src[i + 1 : j], j + 1
    raise MathTextError("unbalanced braces")


_DELIMS = {"(": "(", ")": ")", "[": "(", "]": ")", ".": "", "\\{": "(", "\\}": ")"}
_CHARS = {"−": "-", "–": "-", "×": "*", "·": "*", "⋅": "*", "÷": "/", "&": "", "~": " "}
_UNICODE_OPS = str.maketrans({"−": "-", "–": "-", "×": "*", "·": "*", "⋅": "*", "÷": "/"})


def ascii_ops(text: str) -> str:
    """Unicode minus, times and division signs as ``- * /``."""
    return text.translate(_UNICODE_OPS)


#: Deepest brace nesting read in one LaTeX body. Deeper input (``\frac{\frac{...}}`` a
#: thousand times over) is unreadable math, not a RecursionError; its conversion would also
#: take time quadratic in the depth.
MAX_LATEX_DEPTH = 64


def _check_depth(src: str) -> None:
    """Raise `MathTextError` when `src` nests braces deeper than `MAX_LATEX_DEPTH`."""
    depth = 0
    for m in re.finditer(r"(?<!\\)[{}]", src):
        depth += 1 if m.group() == "{" else -1
        if depth > MAX_LATEX_DEPTH:
            raise MathTextError(f"LaTeX nested deeper than {MAX_LATEX_DEPTH} levels")


def _convert(src: str, boxed: list[str] | None) -> str:
    out: list[str] = []
    i = 0
    while i < len(src):
        c = src[i]
        if c == "\\":
            m = _CMD.match(src, i)
            if m is None:
                raise MathTextError("a lone backslash")
            name = m.group(1)
            i = m.end()
            if name in _FRACS:
                num, i = _group(src, i)
                den, i = _group(src, i)
                out.append(f"(({_convert(num, None)})/({_convert(den, None)}))")
            elif name == "boxed":
                arg, i = _group(src, i)
                inner = _convert(arg, None)
                if boxed is not None:
                    boxed.append(inner)
                out.append(f";{_BOXED_MARK}{inner};" if "=" in inner else f"{_BOXED_MARK}({inner})")
            elif name in _UNWRAP:
                arg, i = _group(src, i)
                out.append(f"({_convert(arg, boxed)})")
            elif name in _TEXTS or name in ("begin", "end"):
                _, i = _group(src, i)
                out.append(";")
            elif name in _SEPS or name in ("\\", "\n"):
                out.append(";")
            elif name in _TIMES:
                out.append("*")
            elif name == "div":
                out.append("/")
            elif name in _SPACES or name in _NOOPS:
                out.append(" ")
            elif name in ("left", "right"):
                while i < len(src) and src[i] == " ":
                    i += 1
                delim = src[i : i + 2] if src[i : i + 1] == "\\" else src[i : i + 1]
                if delim not in _DELIMS:
                    raise MathTextError(f"unsupported delimiter \\{name}{delim}")
                out.append(_DELIMS[delim])
                i += len(delim)
            else:
                raise MathTextError(f"unsupported LaTeX \\{name}")
        elif c == "{":
            out.append("(")
            i += 1
        elif c == "}":
            out.append(")")
            i += 1
        else:
            out.append(_CHARS.get(c, c))
            i += 1
    return "".join(out)


def latex_to_plain(src: str) -> str:
    """Plain math for a LaTeX math body; pieces that do not belong together are split by ``;``."""
    if src.count("{") != src.count("}"):
        raise MathTextError("unbalanced braces")
    _check_depth(src)
    return _convert(src, None).replace(_BOXED_MARK, "")


# ---------------------------------------------------------------------------- reading a text


@dataclass(frozen=True, slots=True)
class Relation:
    """``lhs = rhs`` in plain math; `pos` orders items of one text; `boxed` when in ``\\boxed``."""

    lhs: str
    rhs: str
    pos: float
    boxed: bool = False
    source: str = ""


@dataclass(frozen=True, slots=True)
class Expression:
    """A math piece without ``=`` (``\\(5n\\)``, ``\\boxed{7}``)."""

    text: str
    pos: float
    boxed: bool = False


@dataclass(frozen=True, slots=True)
class Reading:
    """Everything `read_math` found in one text."""

    relations: tuple[Relation, ...]
    expressions: tuple[Expression, ...]
    prose_numbers: tuple[Fraction, ...]
    prose_letters: frozenset[str]
    problems: tuple[str, ...]
    #: The words outside math, lower-cased, in order (letters only: "let's" is "let", "s").
    prose_words: tuple[str, ...] = ()


_WORD = re.compile(r"[^\W\d_]+")
_FENCE = re.compile(r"```.*?(?:```|\Z)|~~~.*?(?:~~~|\Z)", re.DOTALL)
_MATH_SPAN_RE = re.compile(
    r"\\\((?P<a>.*?)\\\)|\\\[(?P<b>.*?)\\\]|\$\$(?P<c>.*?)\$\$|\$(?P<d>[^$\n]+?)\$", re.DOTALL
)
_SPAN_START = re.compile(r"\\[(\[]|\$")
_DOLLAR_OR_NEWLINE = re.compile(r"[$\n]")


class _NextIndex:
    """`text.find(needle, start)` for non-decreasing `start`, each character scanned at most once
    (an unclosed ``\\(`` no longer rescans the rest of the text from every later opener)."""

    def __init__(self, text: str, needle: str | re.Pattern[str]) -> None:
        self._text, self._needle = text, needle
        self._found, self._from = -1, len(text) + 1

    def at_or_after(self, start: int) -> int:
        if not (self._from <= start and (self._found == -1 or self._found >= start)):
            if isinstance(self._needle, str):
                self._found = self._text.find(self._needle, start)
            else:
                m = self._needle.search(self._text, start)
                self._found = -1 if m is None else m.start()
            self._from = start
        return self._found


class _MathSpans:
    """The math spans of a text, exactly as ``_MATH_SPAN_RE.finditer`` finds them, in linear time.

    The pattern's lazy bodies rescan to the end of the text from every opener that has no
    closer (100 KB of ``\\(`` took 53 s); here the closer of each kind is looked up once per
    scan (`_NextIndex`) and the regex only matches the span already known to close."""

    pattern = _MATH_SPAN_RE

    def finditer(self, text: str) -> Iterator[re.Match[str]]:
        paren, bracket = _NextIndex(text, "\\)"), _NextIndex(text, "\\]")
        dollars, dollar = _NextIndex(text, "$$"), _NextIndex(text, _DOLLAR_OR_NEWLINE)
        pos = 0
        while (opener := _SPAN_START.search(text, pos)) is not None:
            i = opener.start()
            end = -1
            if text.startswith("\\(", i):
                close = paren.at_or_after(i + 2)
                end = close + 2 if close != -1 else -1
            elif text.startswith("\\[", i):
                close = bracket.at_or_after(i + 2)
                end = close + 2 if close != -1 else -1
            else:
                if text.startswith("$$", i):
                    close = dollars.at_or_after(i + 2)
                    end = close + 2 if close != -1 else -1
                if end == -1:
                    close = dollar.at_or_after(i + 1)
                    if close > i + 1 and text[close] == "$":
                        end = close + 1
            if end == -1:
                pos = i + 1
                continue
            m = _MATH_SPAN_RE.match(text, i, end)
            if m is None:  # pragma: no cover - the scan above mirrors the pattern
                raise AssertionError(f"math span scan disagrees with the pattern at {i}")
            yield m
            pos = m.end()


#: LaTeX and dollar math spans (``\\(..\\)``, ``\\[..\\]``, ``$$..$$``, ``$..$``); `finditer` as
#: on a compiled pattern, linear in the text.
MATH_SPAN = _MathSpans()
_MARKERS = re.compile(
    r"^[ \t>]*(?:\d{1,3}[.)]|[-*+•]|#{1,6})(?=\s)|\bstep\s*\d{1,3}\b|\*\*|__|\b(?:e\.g|i\.e|etc)\.",
    re.IGNORECASE | re.MULTILINE,
)
_PROSE_NUMBER = re.compile(r"(?<![A-Za-z\d.])\d+(?:\.\d+)?")
_LETTER = re.compile(r"(?<![A-Za-z'’\\])[A-Za-z](?![A-Za-z'’])")


_TRIM_LEFT = frozenset(" \t*/)·×÷")
_TRIM_RIGHT = frozenset(" \t*(")


@lru_cache(maxsize=64)
def _run_pattern(var: str) -> re.Pattern[str]:
    letters = "".join(ch for ch in "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
    letters = "".join(ch for ch in letters if ch not in ENGLISH_LETTERS or ch == var)
    return re.compile(
        r"(?:\d+(?:\.\d+)?|(?<![A-Za-z'’\\])[" + letters + r"](?![A-Za-z'’])"
        r"|[-+*/()=^×÷−·]|[ \t])+"
    )


def _trim_run(run: str, start: int) -> tuple[str, int]:
    """Strip what cannot start or end a plain equation: spaces, dangling ``*`` and parentheses.

    One pass over `run` with running parenthesis counts (a recount per stripped character made
    ``((((... x = 5`` quadratic)."""
    lo, hi = 0, len(run)
    opens, closes = run.count("("), run.count(")")
    while lo < hi:
        while lo < hi and run[lo] in _TRIM_LEFT:
            closes -= run[lo] == ")"
            lo += 1
        while lo < hi and run[hi - 1] in _TRIM_RIGHT:
            opens -= run[hi - 1] == "("
            hi -= 1
        if lo < hi and opens > closes and run[lo] == "(":
            opens, lo = opens - 1, lo + 1
        elif lo < hi and closes > opens and run[hi - 1] == ")":
            closes, hi = closes - 1, hi - 1
        else:
            break
    return run[lo:hi], start + lo


def find_plain_equations(text: str, var: str) -> list[tuple[str, int, int]]:
    """Runs of plain math around ``=`` in prose: (run, start, end), trimmed."""
    out = []
    for m in _run_pattern(var).finditer(text):
        if "=" not in m.group(0):
            continue
        run, start = _trim_run(m.group(0), m.start())
        if "=" in run:
            out.append((run, start, start + len(run)))
    return out


#: Words that make a value a repeating or rounded one ("5.3 recurring", "5.33 (approx.)",
#: "5.33 to 2 d.p."): the statement is not the exact value it writes.
_HEDGE = (
    r"(?:recurring|repeating|repeated|repeats|approx\w*|rounded|truncated|to\s+(?:\d+|one|two"
    r"|three|four|five|six)\s+(?:d\.?\s?p\b|decimal|significant|s\.?\s?f\b|sig\w*))"
)
_HEDGE_WORD = re.compile(r"\b" + _HEDGE, re.IGNORECASE)
#: What, right after a plain run that ends in a digit, says its last number goes on: digit
#: grouping or a decimal comma (``1,000``, ``1'000``, ``1_000``, ``1 000`` with a narrow space,
#: ``2,5``), an ellipsis (``5.333...``), a repetend in parentheses (``5.(3)``), a LaTeX mark
#: (``5.\\overline{3}``), a unicode digit, fraction, superscript or combining mark (``5⅓``,
#: ``5.3̅``, ``5²``), or a hedge word.
_NUMBER_GOES_ON = re.compile(
    r"[,'’_\u00a0\u2007\u2009\u202f]\d+|\.{2,}|…|\.?[(\\]|[ \t]*\(?[ \t]*" + _HEDGE, re.IGNORECASE
)
#: After a math span: a hedge word ("\\(x = 5.33\\) (approximately)").
_HEDGED_SPAN = re.compile(r"[ \t]*[,(]?[ \t]*" + _HEDGE, re.IGNORECASE)
_NUMBER_MARKS = frozenset({"No", "Nd", "Mn", "Me"})


def number_goes_on(text: str, end: int) -> int | None:
    """Where what writes on the number that ends at `end` in `text` ends, or None."""
    m = _NUMBER_GOES_ON.match(text, end)
    if m is not None:
        return m.end()
    at = end + (text[end : end + 1] == ".")
    if text[at : at + 1] and unicodedata.category(text[at]) in _NUMBER_MARKS:
        return at + 1
    return None


def _blank(chars: list[str], start: int, end: int) -> None:
    for k in range(start, end):
        if chars[k] != "\n":
            chars[k] = " "


def _pieces(body: str) -> list[str]:
    """Split one math span's plain body into pieces; newlines split only between equations."""
    pieces: list[str] = []
    for chunk in body.split(";"):
        lines = [ln for ln in chunk.split("\n") if ln.strip()]
        if sum("=" in ln for ln in lines) > 1:
            pieces.extend(lines)
        else:
            pieces.append(" ".join(lines))
    return pieces


def _add_piece(
    piece: str, pos: float, relations: list[Relation], exprs: list[Expression], problems: list[str]
) -> None:
    boxed = _BOXED_MARK in piece
    piece = ascii_ops(piece.replace(_BOXED_MARK, "")).strip()
    if not piece:
        return
    if re.search(r"[<>≤≥≠≈]", piece):
        problems.append(f"unsupported relation in {piece!r}")
        return
    if "=" in piece:
        parts = piece.split("=")
        if any(not p.strip() for p in parts):
            problems.append(f"incomplete equation {piece!r}")
            return
        for k in range(len(parts) - 1):
            relations.append(
                Relation(parts[k].strip(), parts[k + 1].strip(), pos + k * 1e-3, boxed, piece)
            )
    elif re.search(r"[0-9A-Za-z]", piece):
        exprs.append(Expression(piece, pos, boxed))


@byte_bounded_memo(max_bytes=8 << 20, max_entries=8192)
def read_math(text: str, var: str) -> Reading:
    """Find the relations, expressions and prose numbers/letters of `text` for variable `var`."""
    chars = list(text)
    relations: list[Relation] = []
    exprs: list[Expression] = []
    problems: list[str] = []
    for m in _FENCE.finditer(text):
        if re.search(r"\d", m.group(0)):
            problems.append("a code block with numbers cannot be verified")
        _blank(chars, m.start(), m.end())
    work = "".join(chars)
    for m in MATH_SPAN.finditer(work):
        body = next(g for g in m.groups() if g is not None)
        try:
            _check_depth(body)
            plain = _convert(body, None) if body.count("{") == body.count("}") else None
        except MathTextError as exc:
            problems.append(f"unreadable math {body.strip()[:40]!r}: {exc}")
            plain = ""
        if _HEDGE_WORD.search(body) or _HEDGED_SPAN.match(work, m.end()):
            problems.append(f"a value said to be repeating or rounded: {m.group()[:60]!r}")
        if plain is None:
            problems.append(f"unbalanced braces in {body.strip()[:40]!r}")
        else:
            for k, piece in enumerate(_pieces(plain)):
                _add_piece(piece, m.start() + k * 1e-2, relations, exprs, problems)
        _blank(chars, m.start(), m.end())
    work = "".join(chars)
    if re.search(r"\\[(\[]|\$", work):
        problems.append("unclosed math span")
    work = _MARKERS.sub(lambda mm: " " * len(mm.group(0)), work)
    chars = list(work)
    for run, start, end in find_plain_equations(work, var):
        goes_on = number_goes_on(work, end) if run[-1:].isdigit() else None
        if goes_on is not None:  # "x = 5.333...", "x = 5⅓": not the value x = 5.333 or 5
            problems.append(f"a number written on past the math: {work[start:goes_on]!r}")
        _add_piece(run, float(start), relations, exprs, problems)
        _blank(chars, start, end)
    prose = "".join(chars)
    numbers = tuple(Fraction(n) for n in _PROSE_NUMBER.findall(prose))
    letters = frozenset(_LETTER.findall(prose)) - (ENGLISH_LETTERS - {var})
    relations.sort(key=lambda r: r.pos)
    exprs.sort(key=lambda e: e.pos)
    words = tuple(_WORD.findall(prose.lower()))
    return Reading(tuple(relations), tuple(exprs), numbers, letters, tuple(problems), words)


def literal_numbers(expr: str) -> list[Fraction]:
    """Absolute values of the number literals of plain `expr` (empty if it does not tokenize)."""
    try:
        return [abs(n) for n in signed_numbers(expr)]
    except MathTextError:
        return []


def constant_value(expr: str, var: str) -> Fraction | None:
    """The value of `expr` when it is a number expression (no variable), else None."""
    try:
        p = poly(expr, var)
    except MathTextError:
        return None
    if degree(p) > 0:
        return None
    return p[0] if p else Fraction(0)


def is_variable(expr: str, var: str) -> bool:
    """True for ``x``, ``(x)``, `` x ``."""
    return expr.replace(" ", "").strip("()") == var and expr.count("(") == expr.count(")")


def final_value(reading: Reading, var: str) -> tuple[Fraction, float] | None:
    """The last ``var = value`` statement or ``\\boxed{value}`` and its position, if any."""
    best: tuple[Fraction, float] | None = None
    for rel in reading.relations:
        for side, other in ((rel.lhs, rel.rhs), (rel.rhs, rel.lhs)):
            if is_variable(side, var):
                value = constant_value(other, var)
                if value is not None and (best is None or rel.pos >= best[1]):
                    best = (value, rel.pos)
    for e in reading.expressions:
        if e.boxed:
            value = constant_value(e.text, var)
            if value is not None and (best is None or e.pos >= best[1]):
                best = (value, e.pos)
    return best

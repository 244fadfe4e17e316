"""Closed-world request understanding: what a task parsed out of a prompt, and everything else.

A task reads part of a prompt into its spec (an equation, a key list). The rest is the *residue*:
the prompt with the parsed spans replaced by placeholders (``<eq>``, ``<v>``, ``<keys>``), split
into words, numbers and symbols (``=``, ``!=``, brackets), with the phrases of a closed, reviewed
lexicon of instruction wordings removed ("solve", "show your steps", "please", ...). Two requests
may share steps only when their residues are the same sequence of tokens: any other word, number or
symbol added, removed or changed is a core change, reported with the words quoted. Nothing outside
the lexicon is ever treated as "mere rewording": unknown means different.

Outside quotes a word keeps its case too, but for the first letter of a sentence ("Its name is
Bob" is not "Its name is BOB"; "Then add 4" is "then add 4"); the lexicon matches in any case.
Quoted text is content, not wording: inside quotes ('...', "...", “...”, `...`) every word keeps
its case and its punctuation and is never taken for a lexicon phrase ("sign off with 'Thanks!'" is
not "sign off with 'THANKS?'" nor "'Please'"), and a quoted number, ``true``, ``false``, ``null``
or empty string stays one quoted token (``"30"`` is a string, ``30`` a number).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

__all__ = [
    "SHARED_LEXICON",
    "Lexicon",
    "Mask",
    "residue",
    "residue_change",
]


class Mask(NamedTuple):
    """A span of the prompt that the spec accounts for, shown in the residue as ``<label>``."""

    start: int
    end: int
    label: str


#: Placeholders (a task's masks, and a literal ``<value>`` in a prompt), numbers (digits with any
#: grouping or decimal marks, kept whole: "4,500" is one token, never 4 and 500), words (any
#: script; inner hyphens, apostrophes, dots and underscores kept: "user.id" is not "user id"),
#: and every symbol that can carry meaning: ``!=`` (not ``=``), square brackets and braces (a list
#: or an object, not a string), an ellipsis ("name, age, city, ..." asks for more, as "and so on"
#: does); sentence punctuation, parentheses and quotes are not tokens.
_TOKEN = re.compile(
    r"<[a-z_]+>"
    r"|\d+(?:[.,]\d+)*"
    r"|\w+(?:[-'’.]\w+)*"
    r"|!="
    r"|\.{3,}|…"
    r"|[^\w\s.,;:!?()\"'`’“”]",
)


def tokens(text: str) -> list[str]:
    """`text` as lexicon tokens: lower-cased words, whole numbers, placeholders and symbols;
    sentence punctuation, parentheses and quotes are dropped."""
    return [t.replace("’", "'") for t in _TOKEN.findall(text.lower())]


#: A quoted span on one line: straight or curly quotes (an apostrophe inside or right after a word,
#: "don't", "the students' books", opens nothing), or a code span in single backticks.
_QUOTED = re.compile(
    r"(?<![\w`])(?:\"(?P<d>[^\"\n]*)\"|'(?P<s>[^'\n]*)'|“(?P<c>[^”\n]*)”|‘(?P<t>[^’\n]*)’"
    r"|`(?P<b>[^`\n]+)`)(?![\w`])"
)
#: Quoted content that is a JSON literal: a number, ``true``, ``false``, ``null``, or nothing.
_QUOTED_LITERAL = re.compile(r"\s*(?:-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?|true|false|null)?\s*", re.I)
#: Inside quotes: placeholders and words as outside, and every other visible character.
_QUOTED_TOKEN = re.compile(r"<[a-z_]+>|\d+(?:[.,]\d+)*|\w+(?:[-'’.]\w+)*|\S")
#: A quoted token is marked so that no lexicon phrase matches it; placeholders and math symbols
#: inside quotes ("end with 'x = <value>'") are not.
_MARK = '"'


def _quoted_tokens(body: str) -> list[str]:
    if _QUOTED_LITERAL.fullmatch(body):
        return [f"{_MARK}{body.strip()}{_MARK}"]
    out = []
    for tok in _QUOTED_TOKEN.findall(body):
        plain = _TOKEN.fullmatch(tok.lower()) is not None and not tok[0].isalnum()
        out.append(tok if plain or tok.startswith("<") else f"{_MARK}{tok}{_MARK}")
    return out


_ELLIPSIS = re.compile(r"^\.{3,}$")
#: What ends a sentence or a clause that may start with a capital letter.
_SENTENCE_END = re.compile(r"[.!?:;\n]")


def _cased_tokens(text: str, initial: bool) -> tuple[list[tuple[str, bool]], bool]:
    """`tokens` of `text` in their case, each with whether it starts a sentence, and whether the
    text after them starts one (`initial`: whether `text` itself does)."""
    out = []
    at = 0
    for m in _TOKEN.finditer(text):
        initial = initial or _SENTENCE_END.search(text, at, m.start()) is not None
        out.append((_ELLIPSIS.sub("…", m.group().replace("’", "'")), initial))
        initial, at = False, m.end()
    return out, initial or _SENTENCE_END.search(text, at) is not None


def _flagged_tokens(text: str) -> list[tuple[str, bool]]:
    """`text` as residue tokens, each with whether it starts a sentence: words, numbers,
    placeholders and symbols as `tokens` reads them but in their case; inside quotes, every
    word and sign as written (marked so that no lexicon phrase matches it)."""
    out: list[tuple[str, bool]] = []
    at, initial = 0, True
    for m in _QUOTED.finditer(text):
        words, initial = _cased_tokens(text[at : m.start()], initial)
        out += words
        body = next(g for g in m.group("d", "s", "c", "t", "b") if g is not None)
        out += [(t, False) for t in _quoted_tokens(body)]
        at, initial = m.end(), False
    out += _cased_tokens(text[at:], initial)[0]
    return out


@dataclass(frozen=True, slots=True)
class Lexicon:
    """A closed list of phrases (token sequences) that may differ between two requests without
    changing what they ask. Matching is longest phrase first, token by token."""

    phrases: frozenset[tuple[str, ...]]

    @classmethod
    def of(cls, *texts: str) -> Lexicon:
        """A lexicon from phrases written as text (placeholders such as ``<v>`` allowed)."""
        phrases = frozenset(tuple(tokens(t)) for t in texts)
        if () in phrases:
            raise ValueError("a lexicon phrase must contain at least one token")
        return cls(phrases)

    def __or__(self, other: Lexicon) -> Lexicon:
        return Lexicon(self.phrases | other.phrases)

    @property
    def longest(self) -> int:
        return max((len(p) for p in self.phrases), default=0)

    def strip(self, toks: Sequence[str]) -> tuple[str, ...]:
        """`toks` without the lexicon's phrases (greedy, longest match first, in any case)."""
        kept = self.kept(toks)
        return tuple(t for t, keep in zip(toks, kept, strict=True) if keep)

    def kept(self, toks: Sequence[str]) -> list[bool]:
        """For each of `toks`, False where `strip` removes it as part of a phrase."""
        out = [True] * len(toks)
        i, n, longest = 0, len(toks), self.longest
        low = [t.lower() for t in toks]  # phrases match in any case
        while i < n:
            for size in range(min(longest, n - i), 0, -1):
                if tuple(low[i : i + size]) in self.phrases:
                    out[i : i + size] = [False] * size
                    i += size
                    break
            else:
                i += 1
        return out


#: Politeness and framing that never changes what is asked, shared by every task.
SHARED_LEXICON = Lexicon.of(
    "please",
    "kindly",
    "thanks",
    "thank you",
    "can you",
    "could you",
    "would you",
    "will you",
    "can you help me",
    "could you help me",
    "help me",
    "i need",
    "i want",
    "i'd like",
    "i would like",
    "hey",
    "hi",
    "hello",
)


def _masked(prompt: str, masks: Iterable[Mask]) -> str:
    parts: list[str] = []
    at = 0
    for start, end, label in sorted(masks):
        start = max(start, at)  # a mask inside an earlier one adds nothing
        if start >= end:
            continue
        parts += [prompt[at:start], f" <{label}> "]
        at = end
    parts.append(prompt[at:])
    return "".join(parts)


def residue(prompt: str, masks: Iterable[Mask], lexicon: Lexicon) -> tuple[str, ...]:
    """The prompt's residue: its tokens with `masks` replaced by their placeholders and the
    lexicon's phrases removed; the first word left of a sentence has its first letter folded."""
    flagged = _flagged_tokens(_masked(prompt, masks))
    kept = lexicon.kept([t for t, _ in flagged])
    out: list[str] = []
    carry = False  # a sentence whose first words were lexicon phrases ("Please, Describe ...")
    for (tok, initial), keep in zip(flagged, kept, strict=True):
        initial = initial or carry
        if keep:
            out.append(tok[:1].lower() + tok[1:] if initial else tok)
        carry = initial and not keep
    return tuple(out)


def residue_change(cached: Sequence[str], new: Sequence[str]) -> str:
    """'' when two residues are equivalent; otherwise a reason that quotes the words that were
    added, removed or changed."""
    if tuple(cached) == tuple(new):
        return ""
    parts: list[str] = []
    matcher = difflib.SequenceMatcher(a=cached, b=new, autojunk=False)
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        old, now = " ".join(cached[i1:i2]), " ".join(new[j1:j2])
        if op == "insert":
            parts.append(f"added {now!r}")
        elif op == "delete":
            parts.append(f"dropped {old!r}")
        elif op == "replace":
            parts.append(f"{old!r} -> {now!r}")
    return "the request's other words differ: " + "; ".join(parts)

"""Values a request states in its prose, and whether an answer accounts for each of them.

"...a job posting for a Backend Engineer at Kestrel Analytics" states "Backend Engineer" and
"Kestrel Analytics": an object valid against the schema whose title is "Backend Engineer at
Kestrel Analytics" matches the schema and still misstates the request. A stated value is, in
the prose outside the schema:

- a quoted string ('...', "...", “...”);
- a standalone number (digits, or a run such as a date "2024-05-01");
- a maximal run of capitalised words that the task's lexicon does not cover ("JSON",
  "Return"), without the first word of a sentence (a capitalised verb: "Describe") and "I".

An answer accounts for a value when some whole string or number leaf equals it (case folded,
whitespace collapsed; a number also by value).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import Any

from stepcache_core.tasks.understanding import Lexicon, Mask

__all__ = ["stated_values", "unstated_value"]

_QUOTED = re.compile(r"(?<!\w)(?:\"([^\"\n]+)\"|'([^'\n]+)'|“([^”\n]+)”)(?!\w)")
_NUMBER = re.compile(r"(?<![\w.,:/-])\d(?:[\d.,:/-]*\d)?(?![\w:/-]|[.,]\d)")
_PLAIN_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
#: Placeholders, words (inner hyphens, apostrophes, dots kept) and numbers, as the residue
#: reads them (`understanding.tokens`), with their positions.
_WORD = re.compile(r"<[a-z_]+>|\d+(?:[.,]\d+)*|\w+(?:[-'’.]\w+)*")
_SENTENCE_END = re.compile(r"[.!?:;\n]")
_PRONOUNS = frozenset({"i", "i'm", "i'd", "i've", "i'll"})


def _blank(text: str, spans: Iterable[tuple[int, int]]) -> str:
    chars = list(text)
    for start, end in spans:
        chars[start:end] = " " * (end - start)
    return "".join(chars)


def _covered(words: list[re.Match[str]], lexicon: Lexicon) -> set[int]:
    """Indices of the words the lexicon's phrases cover (greedy, longest first, as
    `Lexicon.strip` reads them)."""
    toks = [w.group().lower().replace("’", "'") for w in words]
    covered: set[int] = set()
    i, longest = 0, lexicon.longest
    while i < len(toks):
        for size in range(min(longest, len(toks) - i), 0, -1):
            if tuple(toks[i : i + size]) in lexicon.phrases:
                covered.update(range(i, i + size))
                i += size
                break
        else:
            i += 1
    return covered


def _capitalised_runs(prose: str, lexicon: Lexicon) -> Iterator[str]:
    words = list(_WORD.finditer(prose))
    covered = _covered(words, lexicon)
    run: list[re.Match[str]] = []

    def flush() -> Iterator[str]:
        if run:
            yield prose[run[0].start() : run[-1].end()]
            run.clear()

    for i, word in enumerate(words):
        before = prose[words[i - 1].end() : word.start()] if i else prose[: word.start()]
        initial = i == 0 or _SENTENCE_END.search(before) is not None
        joined = bool(run) and re.fullmatch(r"[ \t]+", before) is not None
        if not joined:
            yield from flush()
        text = word.group()
        if (
            text[0].isupper()
            and i not in covered
            and not initial
            and text.lower().replace("’", "'") not in _PRONOUNS
        ):
            run.append(word)
        else:
            yield from flush()
    yield from flush()


def stated_values(prompt: str, masks: Iterable[Mask], lexicon: Lexicon) -> tuple[str, ...]:
    """The values `prompt` states outside `masks` (see the module docstring), in order, once."""
    prose = _blank(prompt, ((m.start, m.end) for m in masks))
    found: list[str] = []
    quoted = list(_QUOTED.finditer(prose))
    found += [next(g for g in q.groups() if g is not None) for q in quoted]
    prose = _blank(prose, (q.span() for q in quoted))
    numbers = list(_NUMBER.finditer(prose))
    found += [n.group() for n in numbers]
    prose = _blank(prose, (n.span() for n in numbers))
    found += _capitalised_runs(prose, lexicon)
    out: list[str] = []
    for value in (" ".join(v.split()) for v in found):
        if value and value not in out:
            out.append(value)
    return tuple(out)


def _leaves(value: Any) -> Iterator[str | int | float]:
    if isinstance(value, dict):
        for sub in value.values():
            yield from _leaves(sub)
    elif isinstance(value, list):
        for sub in value:
            yield from _leaves(sub)
    elif isinstance(value, str) or (isinstance(value, int | float) and not isinstance(value, bool)):
        yield value


def _fold(text: str) -> str:
    return " ".join(text.casefold().split())


def _accounts_for(leaf: str | int | float, stated: str) -> bool:
    if isinstance(leaf, str):
        return _fold(leaf) == _fold(stated)
    return _PLAIN_NUMBER.fullmatch(stated) is not None and float(stated) == leaf


def unstated_value(value: Any, stated: Iterable[str]) -> str | None:
    """The first stated value no whole string or number leaf of `value` equals, or None."""
    leaves = list(_leaves(value))
    for wanted in stated:
        if not any(_accounts_for(leaf, wanted) for leaf in leaves):
            return wanted
    return None

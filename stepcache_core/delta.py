"""Task-independent prompt-difference analysis: did the core meaning of the request change?

Tasks compare their parsed specs (constants, variables, keys); this module reads what specs do not
capture: the output format asked for, the kind of question, the answer's language, and whether only
wording changed. A core change means cached steps answer another question: reuse is skipped.
"""

from __future__ import annotations

import re

from stepcache_core.memo import byte_bounded_memo
from stepcache_core.tasks.base import Delta, DeltaKind

_FORMATS = {
    "json": r"\bjson\b",
    "yaml": r"\bya?ml\b",
    "xml": r"\bxml\b",
    "csv": r"\bcsv\b",
    "toml": r"\btoml\b",
    "html": r"\bhtml\b",
    "markdown_table": r"\b(markdown )?table\b",
    "code": r"\b(python|javascript|typescript|java|rust|sql|c\+\+|go) "
    r"(code|function|script|program)\b"
    r"|\bwrite (a |the )?(code|function|script|program)\b",
    "latex": r"\blatex\b",
}
_INTENTS = {
    "check": r"\b(is|are)\b[^?.]*\b(a |the )?solutions?\b|\bcheck (whether|if|that)\b"
    r"|\bverify (whether|if|that)\b|\bconfirm (whether|if|that)\b|\btrue or false\b",
    "graph": r"\b(graph|plot|sketch)\b",
    "prove": r"\bprove\b|\bproof\b",
    "why": r"\bwhy\b",
    "slope": r"\bslope\b|\bintercept\b",
    "count": r"\bhow many\b",
    "translate": r"\btranslat",
    "summarize": r"\bsummar",
    "answer_only": r"\bonly (give |state |write )?the (final )?(answer|value|number|result)\b"
    r"|\bno (steps|explanation|working)\b|\bwithout (steps|explanation|working)\b",
    "word_problem": r"\bword problem\b|\bstory\b",
    "array": r"\b(array|list) of\b",
}
_LANGUAGES = [
    "english",
    "french",
    "spanish",
    "german",
    "italian",
    "portuguese",
    "dutch",
    "russian",
    "chinese",
    "japanese",
    "korean",
    "arabic",
    "hindi",
    "turkish",
    "polish",
    "swedish",
]
_LANGUAGE = re.compile(r"\b(?:in|into|using)\s+(" + "|".join(_LANGUAGES) + r")\b")
_WORD = re.compile(r"[a-z]+(?:'[a-z]+)?")
_NUMBER = re.compile(r"\d+(?:\.\d+)?")


@byte_bounded_memo(max_bytes=8 << 20)
def _features(
    prompt: str,
) -> tuple[frozenset[str], frozenset[str], str, frozenset[str], tuple[str, ...]]:
    text = prompt.lower()
    formats = frozenset(k for k, pat in _FORMATS.items() if re.search(pat, text))
    intents = frozenset(k for k, pat in _INTENTS.items() if re.search(pat, text))
    lang = _LANGUAGE.search(text)
    words = frozenset(_WORD.findall(text))
    numbers = tuple(_NUMBER.findall(text))
    return formats, intents, lang.group(1) if lang else "english", words, numbers


def analyze(cached_prompt: str, prompt: str) -> Delta:
    """Classify the difference between two prompts from their text alone.

    CORE when the output format, the kind of question or the answer's language differs; otherwise
    CONSTANTS when numbers differ, REWORDING when words differ, and no kind at all when both match.
    """
    f1, i1, l1, w1, n1 = _features(cached_prompt)
    f2, i2, l2, w2, n2 = _features(prompt)
    if f1 != f2:
        return Delta(
            frozenset({DeltaKind.CORE}), f"output format changed: {_fmt(f1)} -> {_fmt(f2)}"
        )
    if i1 != i2:
        return Delta(frozenset({DeltaKind.CORE}), f"question changed: {_fmt(i1)} -> {_fmt(i2)}")
    if l1 != l2:
        return Delta(frozenset({DeltaKind.CORE}), f"answer language changed: {l1} -> {l2}")
    kinds = set()
    if n1 != n2:
        kinds.add(DeltaKind.CONSTANTS)
    if w1 != w2:
        kinds.add(DeltaKind.REWORDING)
    return Delta(frozenset(kinds), "same request" if not kinds else "wording or numbers changed")


def merge(text_delta: Delta, task_delta: Delta) -> Delta:
    """Combine the text analysis with a task's spec comparison; a core change from either wins."""
    for d in (text_delta, task_delta):
        if d.core:
            return d
    kinds = set(task_delta.kinds)
    if DeltaKind.REWORDING in text_delta.kinds:
        kinds.add(DeltaKind.REWORDING)
    reason = task_delta.reason or text_delta.reason
    return Delta(frozenset(kinds), reason)


def _fmt(items: frozenset[str]) -> str:
    return ", ".join(sorted(items)) or "none"

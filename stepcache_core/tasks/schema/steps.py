"""Steps of a structured answer: one per leaf value at a JSON Pointer.

A reply holding one JSON object splits as ``[prefix, leaf, ..., leaf, suffix]``:

- prefix: everything up to and including the object's ``{`` (an opening fence, prose);
- one step per leaf, in text order: the structure before it (whitespace, ``"key":``, the ``{`` or
  ``[`` of the containers it opens), the value and its comma. A leaf is a scalar, an empty object
  or array, or an array holding no object (one value); objects and arrays holding objects are
  walked into, so an array item object contributes a leaf per member;
- suffix: what follows the last leaf (closing brackets, fence, prose).

The steps join back to the reply exactly.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from typing import Any

from stepcache_core.tasks.json.text import extract_object
from stepcache_core.tasks.schema.spec import Pointer

__all__ = ["Leaf", "Split", "split_answer"]

_WS = " \t\n\r"
_DECODER = json.JSONDecoder()


@dataclass(frozen=True, slots=True)
class Leaf:
    """One leaf value and where its step ends in the reply."""

    pointer: Pointer
    value: Any
    end: int  # after the value and its comma


@dataclass(frozen=True, slots=True)
class Split:
    """A reply split into steps, with the leaf each middle step holds."""

    steps: tuple[str, ...]
    leaves: tuple[Leaf, ...]  # one per step between the prefix and the suffix
    value: dict[str, Any]  # the whole object
    outside: str  # the reply without the object (prose, fences, whitespace)


def _is_leaf(value: Any) -> bool:
    if isinstance(value, dict):
        return not value
    if isinstance(value, list):
        return not any(isinstance(v, dict | list) for v in value) or not value
    return True


def _skip(text: str, i: int) -> int:
    while i < len(text) and text[i] in _WS:
        i += 1
    return i


def _after_comma(text: str, i: int) -> int:
    j = _skip(text, i)
    return j + 1 if j < len(text) and text[j] == "," else i


def _walk(text: str, i: int, pointer: Pointer, out: list[Leaf]) -> int:
    """Walk the container whose opening bracket is at `i`; returns the index after its close."""
    close = "}" if text[i] == "{" else "]"
    i = _skip(text, i + 1)
    index = 0
    while text[i] != close:
        part: str | int
        if close == "}":
            part, i = _DECODER.raw_decode(text, i)
            i = _skip(text, _skip(text, i) + 1)  # past the ':'
        else:
            part, index = index, index + 1
        value, end = _DECODER.raw_decode(text, i)
        if _is_leaf(value):
            out.append(Leaf((*pointer, part), value, _after_comma(text, end)))
        else:
            end = _walk(text, i, (*pointer, part), out)
        i = _skip(text, end)
        if text[i] == ",":
            i = _skip(text, i + 1)
    return i + 1


def split_answer(text: str) -> Split | None:
    """The steps of a reply holding exactly one JSON object, or None."""
    obj = extract_object(text)
    if obj is None:
        return None
    leaves: list[Leaf] = []
    try:
        _walk(text, obj.start, (), leaves)
    except RecursionError:  # nested deeper than Python recurses: not split, not reused
        return None
    cuts = [obj.start + 1, *(leaf.end for leaf in leaves)]
    steps = [text[: cuts[0]], *(text[a:b] for a, b in itertools.pairwise(cuts))]
    steps.append(text[cuts[-1] :])
    value: dict[str, Any] = json.loads(text[obj.start : obj.end])
    return Split(tuple(steps), tuple(leaves), value, text[: obj.start] + text[obj.end :])

"""JSON text: find the one JSON object in a model's reply and split it into member steps.

A reply that holds one object splits as ``[prefix, member, ..., member, suffix]``:

- prefix: everything up to and including the object's ``{`` (prose, an opening code fence);
- one step per top-level member: the whitespace before ``"key": value``, the member, and its comma;
- suffix: everything after the last value (whitespace, ``}``, a closing fence, prose).

The steps concatenate to the reply exactly. Strictly valid JSON only (no NaN, no trailing commas):
an invalid or truncated object, or a top-level array, makes the reply non-extractable.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

_WS = " \t\n\r"
#: Where an object may start: "{" followed by a quoted key or "}".
_OPEN = re.compile(r'\{[ \t\n\r]*["}]')


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


_DECODER = json.JSONDecoder(parse_constant=_reject_constant)


@dataclass(frozen=True, slots=True)
class MemberSpan:
    """One top-level member of an object, as offsets into the reply it was found in."""

    key: str
    value: Any
    start: int  # right after the "{" or "," before it
    key_start: int  # the opening quote of the key
    value_start: int
    value_end: int
    end: int  # after its "," (or at value_end for the last member)


@dataclass(frozen=True, slots=True)
class Member:
    """A member step parsed back: its key, value and the value's exact JSON text."""

    key: str
    value: Any
    value_text: str


@dataclass(frozen=True, slots=True)
class JsonObject:
    """One JSON object found in `text`, at ``text[start:end]``."""

    text: str
    start: int
    end: int
    members: tuple[MemberSpan, ...]

    @property
    def value(self) -> dict[str, Any]:
        """The object as `json.loads` reads it (a repeated key keeps its last value)."""
        return {m.key: m.value for m in self.members}

    @property
    def keys(self) -> list[str]:
        """Top-level keys in order of appearance, repeats included."""
        return [m.key for m in self.members]

    @property
    def duplicates(self) -> list[str]:
        """Keys that appear more than once."""
        seen: set[str] = set()
        dups: list[str] = []
        for m in self.members:
            if m.key in seen and m.key not in dups:
                dups.append(m.key)
            seen.add(m.key)
        return dups

    @property
    def prefix(self) -> str:
        return self.text[: self.start + 1]

    @property
    def suffix(self) -> str:
        last = self.members[-1].end if self.members else self.start + 1
        return self.text[last:]

    def lead(self, index: int) -> str:
        """The whitespace before member `index`'s key."""
        m = self.members[index]
        return self.text[m.start : m.key_start]

    def steps(self) -> list[str]:
        """``[prefix, member..., suffix]``; joins back to `text` exactly."""
        return [self.prefix, *(self.text[m.start : m.end] for m in self.members), self.suffix]


@dataclass(frozen=True, slots=True)
class Scan:
    """Every top-level object found in a text, and why scanning stopped early (if it did)."""

    objects: tuple[JsonObject, ...]
    error: str = ""

    @property
    def problem(self) -> str:
        """Why the text does not hold exactly one object; empty when it does."""
        if self.error:
            return self.error
        if not self.objects:
            return "no JSON object found"
        if len(self.objects) > 1:
            return f"{len(self.objects)} JSON objects found, expected exactly one"
        return ""


def _skip(text: str, i: int) -> int:
    while i < len(text) and text[i] in _WS:
        i += 1
    return i


def _decode(text: str, i: int) -> tuple[Any, int]:
    try:
        return _DECODER.raw_decode(text, i)
    except json.JSONDecodeError as exc:
        if exc.pos >= len(text):
            raise ValueError("truncated: the text ends inside the object") from None
        raise ValueError(f"{exc.msg} (char {exc.pos})") from None
    except RecursionError:
        raise ValueError("nested too deeply") from None


def _parse_object(text: str, start: int) -> JsonObject:
    """Parse the object whose "{" is at `start`; ValueError says why it is not valid JSON."""
    members: list[MemberSpan] = []
    member_start = start + 1
    i = _skip(text, member_start)
    if i < len(text) and text[i] == "}":
        return JsonObject(text, start, i + 1, ())
    while True:
        key_start = i = _skip(text, i)
        if i >= len(text):
            raise ValueError("truncated: the text ends inside the object")
        if text[i] != '"':
            raise ValueError(f"expected a quoted key (char {i})")
        key, i = _decode(text, i)
        i = _skip(text, i)
        if i >= len(text) or text[i] != ":":
            raise ValueError(f"expected ':' after key {key!r} (char {i})")
        value_start = _skip(text, i + 1)
        value, value_end = _decode(text, value_start)
        j = _skip(text, value_end)
        if j >= len(text):
            raise ValueError("truncated: the text ends inside the object")
        if text[j] == ",":
            members.append(
                MemberSpan(key, value, member_start, key_start, value_start, value_end, j + 1)
            )
            member_start = i = j + 1
            continue
        if text[j] == "}":
            members.append(
                MemberSpan(key, value, member_start, key_start, value_start, value_end, value_end)
            )
            return JsonObject(text, start, j + 1, tuple(members))
        raise ValueError(f"expected ',' or '}}' after the value of {key!r} (char {j})")


def find_objects(text: str) -> Scan:
    """All top-level JSON objects in `text`, left to right.

    Scanning stops at the first "{" that starts an invalid or truncated object, or at an object that
    opens a JSON array (``[{...``): the text is then not one clean object.
    """
    objects: list[JsonObject] = []
    pos = 0
    while (m := _OPEN.search(text, pos)) is not None:
        start = m.start()
        k = start - 1
        while k >= 0 and text[k] in _WS:
            k -= 1
        if k >= 0 and text[k] == "[":
            return Scan(tuple(objects), "a JSON array, not a single JSON object")
        try:
            obj = _parse_object(text, start)
        except ValueError as exc:
            return Scan(tuple(objects), f"invalid or truncated JSON object at char {start}: {exc}")
        objects.append(obj)
        pos = obj.end
    return Scan(tuple(objects))


def extract_object(text: str) -> JsonObject | None:
    """The one JSON object in a reply (fences and prose around it allowed), or None."""
    scan = find_objects(text)
    return None if scan.problem else scan.objects[0]


def parse_member(step: str) -> Member | None:
    """Read a member step (``'\\n  "age": 30,'``) back into its key and value, or None."""
    body = step.strip(_WS)
    if body.endswith(","):
        body = body[:-1].rstrip(_WS)
    if not body.startswith('"'):
        return None
    wrapped = "{" + body + "}"
    try:
        obj = _parse_object(wrapped, 0)
    except ValueError:
        return None
    if len(obj.members) != 1 or obj.end != len(wrapped):
        return None
    m = obj.members[0]
    return Member(m.key, m.value, wrapped[m.value_start : m.value_end])


def set_comma(step: str, comma: bool) -> str:
    """A member step with its trailing comma removed, then added back when `comma`."""
    body = step.rstrip(_WS)
    if body.endswith(","):
        body = body[:-1].rstrip(_WS)
    return body + ("," if comma else "")


def render_member(key: str, value: Any, lead: str, *, comma: bool, compact: bool = False) -> str:
    """One member step: `lead`, ``"key": value`` (nested lines indented under `lead`), comma."""
    if compact:
        text = json.dumps(value, ensure_ascii=False)
    else:
        indent = lead.rsplit("\n", 1)[-1] if "\n" in lead else ""
        text = json.dumps(value, ensure_ascii=False, indent=2).replace("\n", "\n" + indent)
    return f"{lead}{json.dumps(key, ensure_ascii=False)}: {text}{',' if comma else ''}"

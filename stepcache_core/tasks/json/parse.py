"""Detection: the JSON object a prompt asks for (`detect_json_spec`, prompt -> `JsonSpec`).

The required keys come from a key list in prose or an embedded JSON Schema, with the subject the
object describes and whether other keys are allowed; see the package docstring for the rules."""

from __future__ import annotations

import bisect
import itertools
import re
from collections.abc import Iterable
from typing import Any

from jsonschema import Draft202012Validator, SchemaError

from stepcache_core.memo import byte_bounded_memo
from stepcache_core.tasks.json.spec import JsonSpec, canonical_json, word_set
from stepcache_core.tasks.json.text import (
    JsonObject,
    find_objects,
)
from stepcache_core.tasks.understanding import Mask

__all__ = ["detect_json_spec"]

_JSON_WORD = re.compile(r"\bjson\b", re.I)
_OTHER_FORMAT = re.compile(
    r"\b(?:yaml|yml|xml|csv|tsv|toml|html|protobuf)\b|\bmarkdown\s+table\b|\btabular\b"
    r"|\b(?:as|in|into)\s+(?:a\s+)?(?:markdown\s+|html\s+)?table\b|\btable\s+format\b",
    re.I,
)
_NUMBER_WORDS = r"(?:\d+|two|three|four|five|six|seven|eight|nine|ten|several|multiple|many)"
_ARRAY = re.compile(
    r"\bjson\s*(?:array|list|lines)\b|\bjsonl\b|\bndjson\b|\bjson\s+objects\b"
    r"|\b(?:array|list)\s+of\s+(?:\w+\s+){0,3}?(?:json\s+)?(?:objects|items|entries|records|dicts)\b"
    rf"|\b(?:array|list)\s+of\s+{_NUMBER_WORDS}\b"
    rf"|\b{_NUMBER_WORDS}\s+(?:\w+\s+){{0,2}}?(?:json\s+)?objects\b"
    r"|\beach\s+(?:with|having|has|containing|of\s+which)\b",
    re.I,
)
_CODE = re.compile(
    r"\b(?:functions?|scripts?|program|code(?![ \t]*(?:fences?|blocks?))|snippet|parser|parse"
    r"|parses|parsing|serializer?s?|deserialize|regex|python|javascript|typescript|java|golang"
    r"|rust|sql|jq|class|method|endpoint)\b|json\.(?:dumps|loads)|json\.(?:stringify|parse)",
    re.I,
)
_SCHEMA_REQUEST = re.compile(
    r"\b(?:write|create|generate|produce|give\s+me|design|define|make)\s+(?:a|an|the)\s+"
    r"(?:json\s*)?schema\b",
    re.I,
)
_COMPACT = re.compile(
    r"\b(?:minified|minify|compact|single[- ]line|one[- ]line|on\s+(?:a\s+)?(?:one|single)\s+line"
    r"|in\s+one\s+line|no\s+(?:indentation|line\s+breaks|newlines))\b",
    re.I,
)
_BARE = re.compile(
    r"\b(?:no|without|don't\s+use|do\s+not\s+use)\s+(?:any\s+)?(?:markdown|code\s*fences?|fences?"
    r"|backticks|code\s*blocks?)\b|\braw\s+json\b",
    re.I,
)
_ALLOW_EXTRA = re.compile(
    r"\bat\s+least\b|\bincluding\b|\bsuch\s+as\b|\bamong\s+others\b"
    r"|\b(?:other|additional|extra|more)\s+(?:keys|fields|properties)\s+(?:are\s+)?"
    r"(?:allowed|ok|okay|fine|permitted|welcome)\b"
    r"|\b(?:may|can|could)\s+(?:also\s+)?(?:add|include|contain|have)\s+"
    r"(?:other|more|additional|extra)\b",
    re.I,
)
_FORBID_EXTRA = re.compile(
    r"\b(?:no|without)\s+(?:other|extra|additional|more)\s+(?:keys|fields|properties)\b"
    r"|\bexactly\b|\bonly\s+(?:these|those|the\s+(?:keys|fields|properties))\b",
    re.I,
)

_TYPES = {
    "string": "string",
    "str": "string",
    "text": "string",
    "integer": "integer",
    "int": "integer",
    "number": "number",
    "float": "number",
    "decimal": "number",
    "boolean": "boolean",
    "bool": "boolean",
    "array": "array",
    "list": "array",
    "object": "object",
    "null": "null",
}
_TYPE = r"(?:string|str|text|integer|int|number|float|decimal|boolean|bool|array|list|object|null)"
_KEY = (
    r"""(?:"[^"\n]{1,64}"|'[^'\n]{1,64}'|`[^`\n]{1,64}`"""
    r"|[A-Za-z_][A-Za-z0-9_]*(?:-[A-Za-z0-9_]+)*)"
)
_ITEM_SRC = rf"{_KEY}(?:[ \t]*\([ \t]*{_TYPE}[ \t]*\)|[ \t]*:[ \t]*{_TYPE}\b)?"
_SEP = r"(?:[ \t]*[,;&][ \t]*(?:and[ \t]+)?|[ \t]+and[ \t]+)"
_SEP_RE = re.compile(_SEP, re.I)
_LIST = rf"{_ITEM_SRC}(?:{_SEP}{_ITEM_SRC})*"
_ITEM = re.compile(
    rf"(?P<key>{_KEY})(?:[ \t]*\([ \t]*(?P<t1>{_TYPE})[ \t]*\)|[ \t]*:[ \t]*(?P<t2>{_TYPE})\b)?",
    re.I,
)
_KEY_NOUN = r"(?:fields?|keys?|properties|property|attributes?|members|entries)"
#: "has the fields name, age, city", "Keys: a, b, c", "with keys `a`, `b` and `c`".
_LIST_AFTER = re.compile(
    rf"\b{_KEY_NOUN}\b(?:[ \t]+(?:named|called|are|is|of|like|including|such[ \t]+as))?"
    rf"[ \t]*(?P<colon>:)?[ \t]*(?:\n[ \t]*)?(?P<list>{_LIST})",
    re.I,
)
#: "with name, age and city fields".
_LIST_BEFORE = re.compile(
    r"\b(?:with|containing|including|has|having|include|includes|contain|contains)[ \t]+"
    rf"(?:only[ \t]+)?(?:the[ \t]+)?(?P<list>{_LIST})[ \t]+{_KEY_NOUN}\b",
    re.I,
)
#: "a JSON object with name, age, and city." (two or more items, at the end of a clause).
_LIST_WITH = re.compile(
    rf"\bwith[ \t]+(?P<list>{_ITEM_SRC}(?:{_SEP}{_ITEM_SRC})+)"
    r"(?=[ \t]*(?:[.!?\n]|$)|[ \t]+(?:for|about|describing|values?|filled|set)\b)",
    re.I,
)
#: "Use these keys:\n- name\n- age (integer)". Anchored at the start of a line that has a key noun
#: (a search from every key noun rescanned the line: quadratic on a long line of "keys").
_BULLETS = re.compile(
    rf"(?<![^\n])(?=[^\n]*\b{_KEY_NOUN}\b)[^\n]*:[ \t]*\n"
    rf"(?P<items>(?:[ \t]*(?:[-*•]|\d+[.)])[ \t]+{_ITEM_SRC}[^\n]*(?:\n|$))+)",
    re.I,
)
_BULLET_ITEM = re.compile(rf"^[ \t]*(?:[-*•]|\d+[.)])[ \t]+(?P<item>{_ITEM_SRC})", re.I | re.M)
_STOP_ITEMS = word_set(
    "a an the and or is are be should must that this these those with for of to in on it its"
    " as all each every following only exactly no not other any some keys key fields field"
    " properties values value json object objects like such at least so etc include including"
    " named called following given below above"
)

_SUBJECT_WORD = r"[A-Za-z][A-Za-z0-9'-]*"
_SUBJECT_END = (
    r"(?=[ \t]+(?:that|which|who|with|having|has|have|containing|contains|including|using"
    r"|where|for|per|whose|matching|following|according|conforming|based|in|as|and|to|from|named|called|by"
    r"|listing|giving|showing|plus)\b"
    r"|[ \t]*[.,:;!?()\n]|[ \t]*$)"
)
_SUBJECT = re.compile(
    r"\b(?:for|describing|describes|describe|representing|represents|represent|about|of)[ \t]+"
    rf"(?:a|an|the|one|some)[ \t]+(?P<s>{_SUBJECT_WORD}(?:[ \t]+{_SUBJECT_WORD}){{0,5}}?)"
    + _SUBJECT_END,
    re.I,
)
_SUBJECT_AS = re.compile(
    r"\b(?:create|make|generate|invent|produce|return|output|write|give[ \t]+me|describe)[ \t]+"
    rf"(?:a|an|one)[ \t]+(?P<s>{_SUBJECT_WORD}(?:[ \t]+{_SUBJECT_WORD}){{0,5}}?)"
    r"(?=[ \t]+(?:as|in)[ \t]+(?:a[ \t]+)?json\b)",
    re.I,
)
_NOT_SUBJECT = word_set("json object objects key keys field fields property properties")

Span = tuple[int, int]


def _mask(text: str, spans: Iterable[Span]) -> str:
    chars = list(text)
    for start, end in spans:
        chars[start:end] = " " * (end - start)
    return "".join(chars)


def _inside(span: Span, groups: Iterable[list[Span]]) -> bool:
    """True when `span` lies within a span of `groups`. A group (one pattern's matches) is disjoint
    and in order, so only its last span starting at or before `span` can hold it (an `any` over
    every span was quadratic in the number of key lists)."""
    for group in groups:
        k = bisect.bisect_right(group, span[0], key=lambda s: s[0]) - 1
        if k >= 0 and span[1] <= group[k][1]:
            return True
    return False


def _items(src: str, *, strict: bool) -> list[tuple[str, str | None, bool]]:
    """(key, type, quoted) per list item; stops at a stop word (strict: none allowed at all)."""
    out: list[tuple[str, str | None, bool]] = []
    for part in _SEP_RE.split(src.strip()):
        m = _ITEM.fullmatch(part.strip())
        if m is None:
            break
        raw = m.group("key")
        quoted = raw[0] in "\"'`"
        key = raw[1:-1].strip() if quoted else raw
        if not quoted and key.lower() in _STOP_ITEMS:
            if strict:
                return []
            break
        kind = m.group("t1") or m.group("t2")
        out.append((key, _TYPES[kind.lower()] if kind else None, quoted))
    return out


def _prose_keys(text: str) -> tuple[list[tuple[str, str | None]], list[Span]]:
    """Keys (with a type word when given) listed in prose, and the spans that list them (what
    follows a bullet's key on its line is not part of it: "- age (integer) On one line.")."""
    found: list[tuple[str, str | None]] = []
    spans: list[list[Span]] = []  # one group per pattern, see `_inside`
    masks: list[Span] = []

    def take(items: list[tuple[str, str | None, bool]], span: Span, mask: list[Span]) -> None:
        if not items or _inside(span, spans):
            return
        spans[-1].append(span)
        masks.extend(mask)
        found.extend((k, t) for k, t, _ in items)

    spans.append([])
    for m in _BULLETS.finditer(text):
        bullets = list(_BULLET_ITEM.finditer(m.group("items")))
        items = [it for b in bullets for it in _items(b.group("item"), strict=False)[:1]]
        start = m.start("items")
        take(items, m.span("items"), [(start + b.start(), start + b.end()) for b in bullets])
    spans.append([])
    for m in _LIST_AFTER.finditer(text):
        items = _items(m.group("list"), strict=False)
        if len(items) == 1 and not (m.group("colon") or items[0][2]):
            continue  # "the key point": one bare word is not a key list
        take(items, m.span("list"), [m.span("list")])
    spans.append([])
    for m in _LIST_BEFORE.finditer(text):
        take(_items(m.group("list"), strict=False), m.span("list"), [m.span("list")])
    spans.append([])
    for m in _LIST_WITH.finditer(text):
        take(_items(m.group("list"), strict=True), m.span("list"), [m.span("list")])
    masks.sort()
    return found, masks


def _subject(text: str, masks: list[Span]) -> tuple[str, Span | None]:
    ordered = sorted(masks)
    starts = [s for s, _ in ordered]
    reach = list(itertools.accumulate((e for _, e in ordered), max))  # furthest end so far

    def masked(start: int, end: int) -> bool:  # any mask overlaps [start, end), in O(log n)
        k = bisect.bisect_left(starts, end)
        return k > 0 and reach[k - 1] > start

    for pattern in (_SUBJECT, _SUBJECT_AS):
        for m in pattern.finditer(text):
            words = set(re.findall(r"[a-z]+", m.group("s").lower()))
            if words & _NOT_SUBJECT or masked(*m.span("s")):
                continue
            return m.group("s"), m.span("s")
    return "", None


def _schema_in(scan_objects: Iterable[JsonObject]) -> JsonObject | None:
    for obj in scan_objects:
        props = obj.value.get("properties")
        if isinstance(props, dict) and props:
            return obj
    return None


def _dedupe(keys: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(keys))


@byte_bounded_memo(max_bytes=8 << 20)
def detect_json_spec(prompt: str) -> JsonSpec | None:
    """The JSON-object request in `prompt`, or None (see the module docstring for the rules)."""
    if not isinstance(prompt, str) or not _JSON_WORD.search(prompt):
        return None
    objects = find_objects(prompt).objects
    masks: list[Span] = [(o.start, o.end) for o in objects]
    text = _mask(prompt, masks)
    schema_obj = _schema_in(objects)
    optional: list[str] = []
    schemas: dict[str, dict[str, Any]] = {}
    forbid: bool | None = None
    parsed: list[Mask] = []  # the spans the spec accounts for (examples stay in the residue)
    if schema_obj is not None:
        parsed.append(Mask(schema_obj.start, schema_obj.end, "schema"))
        schema = schema_obj.value
        if schema.get("type", "object") != "object":
            return None
        props: dict[str, Any] = schema["properties"]
        required = [k for k in schema.get("required", []) if isinstance(k, str)]
        keys = _dedupe(required or props)
        optional = [k for k in props if k not in keys]
        for key, sub in props.items():
            if isinstance(sub, dict) and sub and "$ref" not in canonical_json(sub):
                try:
                    Draft202012Validator.check_schema(sub)
                except SchemaError:
                    continue
                schemas[key] = sub
        forbid = schema.get("additionalProperties") is False or None
    else:
        listed, spans = _prose_keys(text)
        keys = _dedupe(k for k, _ in listed)
        schemas = {k: {"type": t} for k, t in listed if t is not None}
        masks += spans
        parsed += [Mask(start, end, "keys") for start, end in spans]
    if not keys:
        return None
    subject, subject_span = _subject(text, masks)
    checked = _mask(text, [*masks, *([subject_span] if subject_span else [])])
    if (
        _OTHER_FORMAT.search(checked)
        or _ARRAY.search(checked)
        or _CODE.search(checked)
        or (schema_obj is None and _SCHEMA_REQUEST.search(checked))
    ):
        return None
    if _FORBID_EXTRA.search(checked):
        forbid = True
    elif forbid is None:
        forbid = schema_obj is None and not _ALLOW_EXTRA.search(checked)
    return JsonSpec(
        keys=tuple(keys),
        subject=subject,
        forbid_extra=forbid,
        optional=tuple(optional),
        property_schemas=tuple((k, canonical_json(s)) for k, s in schemas.items()),
        compact=bool(_COMPACT.search(checked)),
        bare=bool(_BARE.search(checked)),
        masks=tuple(parsed),
    )

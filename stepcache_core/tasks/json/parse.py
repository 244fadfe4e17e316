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
from stepcache_core.tasks.json.wording import JSON_LEXICON, LAYOUT_LEXICON
from stepcache_core.tasks.understanding import Mask, residue

__all__ = ["detect_json_spec"]

_JSON_WORD = re.compile(r"\bjson\b", re.I)
_OTHER_FORMAT = re.compile(
    r"\b(?:yaml|yml|xml|csv|tsv|toml|html|protobuf)\b|\bmarkdown\s+table\b|\btabular\b"
    r"|\b(?:as|in|into)\s+(?:a\s+)?(?:markdown\s+|html\s+)?table\b|\btable\s+format\b",
    re.I,
)
_NUMBER_WORDS = r"(?:\d+|two|three|four|five|six|seven|eight|nine|ten|several|multiple|many)"
_KEY_NOUN = r"(?:fields?|keys?|properties|property|attributes?|members|entries)"
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
#: Layout words, read only where they are about the object: "minified", "compact JSON", "return
#: it on one line". The same words about anything else ("a one-line note") do not make the
#: object compact; where it is unclear what they are about, detection refuses.
_LAYOUT_WORDS = re.compile(
    r"\b(?:minified|minify|compact|single[- ]line|one[- ]line|(?:one|single)\s+line"
    r"|no\s+(?:indentation|line\s+breaks|newlines))\b",
    re.I,
)
_OBJECT_NOUN = r"(?:json|object|output|answer|response|reply|result|format)"
_COMPACT = re.compile(
    r"\bminif(?:y|ied)\b"
    rf"|\b(?:compact|single[- ]line|one[- ]line)[ \t]+(?:json[ \t]+)?{_OBJECT_NOUN}\b"
    rf"|\b(?:it|{_OBJECT_NOUN})[ \t]+(?:[\w-]+[ \t]+){{0,3}}?"
    r"(?:(?:on|in)[ \t]+(?:a[ \t]+)?(?:one|single)[ \t]+line"
    r"|no[ \t]+(?:indentation|line[ \t]+breaks|newlines))\b",
    re.I,
)
#: A layout adjective before another noun: "a one-line note", "a compact summary".
_LAYOUT_OF_OTHER = re.compile(
    rf"\b(?:compact|single[- ]line|one[- ]line)[ \t]+(?!(?:json[ \t]+)?{_OBJECT_NOUN}\b)[a-z]",
    re.I,
)
_BARE = re.compile(
    r"\b(?:no|without|don't\s+use|do\s+not\s+use)\s+(?:any\s+)?(?:markdown|code\s*fences?|fences?"
    r"|backticks|code\s*blocks?)\b|\braw\s+json\b",
    re.I,
)
#: Asking for the object and nothing around it: "output only a JSON object", "just the JSON",
#: "no other text". ("Nothing else" after a key list is about the keys: it is not read here.)
_ONLY_OBJECT = re.compile(
    r"\b(?:only|just)\s+(?:(?:a|an|the|one)\s+)?(?:(?:valid|raw|plain)\s+)?json\b"
    r"|\bjson\s+only\b"
    r"|\bno\s+(?:other\s+|extra\s+)?(?:text|prose|explanation|commentary|comments|words)\b",
    re.I,
)
#: "at least" is about the key set only before a key noun or the key list itself; before a
#: number it is about a value ("at least 18 years old"); anywhere else detection refuses.
_AT_LEAST = re.compile(r"\bat\s+least\b", re.I)
_BLANKS = re.compile(r"[ \t]*")
_AT_LEAST_KEYS = re.compile(
    rf"[ \t]*(?:(?:the|these|those|all|the[ \t]+following|following)[ \t]+)?{_KEY_NOUN}\b", re.I
)
_AT_LEAST_VALUE = re.compile(
    rf"[ \t]*(?:\$|€|£)?(?:[-+]?\d|{_NUMBER_WORDS}\b|(?:one|a|an|zero)\b)", re.I
)
_ALLOW_EXTRA = re.compile(
    rf"\b{_KEY_NOUN}[ \t]+(?:including|such\s+as)\b|\bincluding[ \t]+(?:the[ \t]+)?{_KEY_NOUN}\b"
    r"|\bamong\s+others\b"
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
#: A key as written: quoted (every character between the quotes is the key, whitespace too) or a
#: bare identifier in any script, with inner hyphens or dots ("größe", "user.id", "zip-code").
_KEY = (
    r"""(?:"[^"\n]{1,64}"|'[^'\n]{1,64}'|`[^`\n]{1,64}`"""
    r"|[^\W\d]\w*(?:[-.]\w+)*)"
)
_ITEM_SRC = rf"{_KEY}(?:[ \t]*\([ \t]*{_TYPE}[ \t]*\)|[ \t]*:[ \t]*{_TYPE}\b)?"
_SEP = r"(?:[ \t]*[,;&][ \t]*(?:and[ \t]+)?|[ \t]+and[ \t]+)"
_SEP_RE = re.compile(_SEP, re.I)
_LIST = rf"{_ITEM_SRC}(?:{_SEP}{_ITEM_SRC})*"
_ITEM = re.compile(
    rf"(?P<key>{_KEY})(?:[ \t]*\([ \t]*(?P<t1>{_TYPE})[ \t]*\)|[ \t]*:[ \t]*(?P<t2>{_TYPE})\b)?",
    re.I,
)
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
#: Bullets that nest: one indented deeper than the first, or one that ends in a colon (a heading
#: for the bullets under it). The keys under it belong to an inner object, not this one.
_NESTED_BULLETS = re.compile(
    r"\A(?P<indent>[ \t]*)[^\n]*\n(?:[^\n]*\n)*?(?P=indent)[ \t]+(?:[-*•]|\d+[.)])[ \t]"
    r"|:[ \t]*$",
    re.M,
)
#: Words that end a key list written in prose ("name, age and city and no other fields"): never
#: read as a bare key. Followed by more keys, they make the list uncertain.
_NOT_KEYS = word_set(
    "a an the and or nor is are be should must that this these those with it its as all each every"
    " only exactly no not nothing none else other others any some more like such at least so etc"
    " include including named called following given below above also plus but which who whom"
    " whose where when while then there their they them"
    # politeness after the list ("name, age and city, please"): the lexicon's words, not keys
    " please kindly thanks thank hello hi hey ok okay"
)
#: A separator that joins a list's last item ("name, age and city"): an item after it is no key.
_AND = re.compile(r"\band\b|&", re.I)
#: Words that can be keys ("value", "from", "type") but also prose: a bare one is a key only
#: inside a key list that is followed by more keys or ends with its clause; a list without
#: a key noun ("a JSON object with name, age and value") may hold none of them.
_PROSE_ITEMS = _NOT_KEYS | word_set(
    "for of to from in on by key keys field fields property properties value values json object"
    " objects"
)
#: What may follow a key list that ends its clause ("... and properties." / "(no extra keys)").
_LIST_END = re.compile(r"[ \t]*(?:[.!?;:,()\n]|$)")

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
_Item = tuple[str, str | None, bool]  # a listed key, its type word's JSON type, whether quoted


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


def _nested(schema: dict[str, Any]) -> bool:
    """True for a schema whose values nest objects or arrays of objects, or that uses
    references: this task checks one flat object, member by member."""
    if "$defs" in schema or "definitions" in schema:
        return True
    for sub in (schema.get("properties") or {}).values():
        if not isinstance(sub, dict):
            continue
        items = sub.get("items")
        inner = items if isinstance(items, dict) else {}
        if "$ref" in sub or "properties" in sub or sub.get("type") == "object":
            return True
        if "$ref" in inner or "properties" in inner or inner.get("type") == "object":
            return True
    return False


class _Uncertain(Exception):
    """A key list whose words cannot all be told apart as keys or prose."""


def _items(src: str, *, explicit: bool, ends_clause: bool) -> tuple[list[_Item], int]:
    """The keys of the prose list `src` as (key, type, quoted), and how much of `src` they cover
    (the list ends before a word that is never a bare key: "city and no other fields").

    `explicit`: the list follows or precedes a key noun, so a word that also reads as prose
    ("value", "from", "properties") is a key when more keys follow it or the list ends its clause
    (`ends_clause`); without a key noun such a word means `src` is no key list (``[]``). Raises
    `_Uncertain` when keys follow a word that is never a key, when a list ends on a prose-like
    word in mid-clause ("and type of the person"), or when it goes on after the item its "and"
    joined ("name, age and city, quickly")."""
    out: list[_Item] = []
    covered = pos = 0
    joined_and = False  # the item at `pos` was joined to the list by "and" or "&"
    after_and = False  # an earlier item was: the list had ended ("name, age and city, fast")
    while (m := _ITEM.match(src, pos)) is not None:
        raw = m.group("key")
        quoted = raw[0] in "\"'`"
        key = raw[1:-1] if quoted else raw
        sep = _SEP_RE.match(src, m.end())
        last = sep is None or _ITEM.match(src, sep.end()) is None
        word = key.lower()
        if not quoted and word in _PROSE_ITEMS:
            if not explicit:
                return [], 0
            if word in _NOT_KEYS:
                if not last:
                    raise _Uncertain(key)
                break
            if last and not ends_clause:
                raise _Uncertain(key)
        if after_and:
            raise _Uncertain(key)
        kind = m.group("t1") or m.group("t2")
        out.append((key, _TYPES[kind.lower()] if kind else None, quoted))
        covered = m.end()
        if last or sep is None:
            break
        after_and, joined_and = joined_and, _AND.search(sep.group()) is not None
        pos = sep.end()
    return out, covered


def _prose_keys(text: str) -> tuple[list[tuple[str, str | None]], list[Span]]:
    """Keys (with a type word when given) listed in prose, and the spans that list them (what
    follows a bullet's key on its line is not part of it: "- age (integer) On one line").
    Raises `_Uncertain` when a list's words cannot all be read as keys or prose, or when the
    prompt lists keys in two places (which list is the object's is not certain)."""
    found: list[tuple[str, str | None]] = []
    spans: list[list[Span]] = []  # one group per pattern, see `_inside`
    masks: list[Span] = []

    def take(items: list[_Item], span: Span, mask: list[Span]) -> None:
        if not items or _inside(span, spans):
            return
        spans[-1].append(span)
        masks.extend(mask)
        found.extend((k, t) for k, t, _ in items)

    def ends_clause(end: int) -> bool:
        return _LIST_END.match(text, end) is not None

    spans.append([])
    for m in _BULLETS.finditer(text):
        start = m.start("items")
        items: list[_Item] = []
        bullet_masks: list[Span] = []
        if _NESTED_BULLETS.search(m.group("items")):
            raise _Uncertain("nested bullets")  # "- address" with "  - street" under it
        for b in _BULLET_ITEM.finditer(m.group("items")):
            got, covered = _items(b.group("item"), explicit=True, ends_clause=True)
            if not got:
                raise _Uncertain(b.group("item"))  # a bullet under a key heading, but no key
            items.append(got[0])
            item_start = start + b.start("item")
            bullet_masks.append((start + b.start(), item_start + covered))
        take(items, m.span("items"), bullet_masks)
    spans.append([])
    for m in _LIST_AFTER.finditer(text):
        listed = _ITEM.match(text, m.start("list"))
        one_bare = _SEP_RE.match(text, listed.end()) is None if listed else True
        if one_bare and not m.group("colon") and text[m.start("list")] not in "\"'`":
            continue  # "the key point": one bare word is not a key list
        items, covered = _items(
            m.group("list"), explicit=True, ends_clause=ends_clause(m.end("list"))
        )
        span = (m.start("list"), m.start("list") + covered)
        take(items, span, [span])
    spans.append([])
    for m in _LIST_BEFORE.finditer(text):
        items, covered = _items(m.group("list"), explicit=True, ends_clause=True)
        if covered == len(m.group("list")):  # the key noun follows the last key
            take(items, m.span("list"), [m.span("list")])
    spans.append([])
    for m in _LIST_WITH.finditer(text):
        items, covered = _items(m.group("list"), explicit=False, ends_clause=True)
        if covered == len(m.group("list")):
            take(items, m.span("list"), [m.span("list")])
    if sum(len(group) for group in spans) > 1:
        raise _Uncertain("two key lists")  # "keys a, b ... under a top-level key `data`"
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


#: What a JSON Schema may hold at its top level and in a property's schema.
_SCHEMA_WORDS = word_set(
    "$schema $id $ref $defs $comment definitions title description type properties required"
    " additionalProperties patternProperties propertyNames minProperties maxProperties enum const"
    " items prefixItems minItems maxItems uniqueItems contains format pattern minLength maxLength"
    " minimum maximum exclusiveMinimum exclusiveMaximum multipleOf anyOf oneOf allOf not if then"
    " else default examples nullable readOnly writeOnly deprecated"
)


def _is_schema(value: dict[str, Any], *, top: bool) -> bool:
    """A JSON Schema (not an example object): only schema keywords, and at the top a "type" of
    "object" or a "properties" map whose every value is itself a schema."""
    if not value or not set(value) <= _SCHEMA_WORDS:
        return False
    props = value.get("properties")
    if top and not (isinstance(props, dict) and props and value.get("type", "object") == "object"):
        return False
    if isinstance(props, dict):
        return all(isinstance(v, dict) and _is_schema(v, top=False) for v in props.values())
    return props is None


def _schema_in(scan_objects: Iterable[JsonObject]) -> JsonObject | None:
    for obj in scan_objects:
        if _is_schema(obj.value, top=True):
            return obj
    return None


def _at_least_keys(checked: str, key_starts: list[int]) -> bool | None:
    """Whether "at least" widens the key set: True before a key noun or the key list, False when
    absent or before a number (about a value), None when unclear."""
    widens = False
    for m in _AT_LEAST.finditer(checked):
        gap = _BLANKS.match(checked, m.end()).end()  # type: ignore[union-attr]
        if _AT_LEAST_KEYS.match(checked, m.end()) or any(
            m.end() <= start <= gap for start in key_starts
        ):
            widens = True
        elif not _AT_LEAST_VALUE.match(checked, m.end()):
            return None
    return widens


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
        if schema.get("type", "object") != "object" or _nested(schema):
            return None  # nested schemas belong to the JSON Schema task (tasks/schema)
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
        try:
            listed, spans = _prose_keys(text)
        except _Uncertain:
            return None  # which words are keys is not certain: the model answers
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
    compact = bool(_COMPACT.search(checked))
    if not compact and any(
        not _LAYOUT_OF_OTHER.match(checked, m.start()) for m in _LAYOUT_WORDS.finditer(checked)
    ):
        return None  # layout words, but not clearly about the object
    at_least = _at_least_keys(checked, [m.start for m in parsed if m.label == "keys"])
    if at_least is None:
        return None
    if _FORBID_EXTRA.search(checked):
        forbid = True
    elif forbid is None:
        forbid = schema_obj is None and not (at_least or _ALLOW_EXTRA.search(checked))
    subject_mask = [Mask(*subject_span, "subject")] if subject_span else []
    words = residue(prompt, [*parsed, *subject_mask], JSON_LEXICON)
    bare = bool(_BARE.search(checked))
    unread = (
        residue(prompt, [*parsed, *subject_mask], JSON_LEXICON | LAYOUT_LEXICON)
        if compact or bare
        else ("<no layout rule>",)
    )
    return JsonSpec(
        keys=tuple(keys),
        subject=subject,
        forbid_extra=forbid,
        optional=tuple(optional),
        property_schemas=tuple((k, canonical_json(s)) for k, s in schemas.items()),
        compact=compact,
        bare=bare,
        only_object=bool(_ONLY_OBJECT.search(checked)),
        masks=tuple(parsed),
        understood=all(w == "<subject>" for w in words),
        layout_certain=all(w == "<subject>" for w in unread),
    )

"""The built-in JSON-objects task: "give me a JSON object for <subject> with keys a, b, c".

Detection reads the required keys from the prompt (a key list in prose or an embedded JSON Schema),
the subject the object describes, and whether other keys are allowed. An answer is split with
`jsontext` into ``[prefix, one step per top-level member, suffix]``. A cached member is reused when
its key is still requested and its value fits; missing keys are asked from the backend alone (strict
structured patching) and merged back in the requested order, in the cached answer's layout.

Rules, in one place:

- detect: the word JSON; not YAML/XML/CSV/TOML/HTML/table output, not a JSON array, list of
  objects or JSON lines, not code that handles JSON, not a request for a schema; at least one key.
  Without a schema, the listed keys are exactly the keys wanted unless the prompt allows more
  ("at least", "including", "such as", "other keys are fine"). With a schema: its ``required`` keys
  (all ``properties`` when it has no ``required``), its property schemas as value types, extra keys
  forbidden when ``additionalProperties`` is false (or the prose says "no other keys"/"exactly").
- compare: CORE when the output layout differs (one line vs pretty, raw vs fenced), when the subject
  differs (content words once adjectives like fictional/imaginary/made-up are removed), or when
  fewer than half of the new keys were in the cached request; KEYS when the key set, a value type or
  the extra-keys rule differs; REWORDING when only other words differ. Key order alone is rewording.
- verify: a member passes when its key is requested (or an allowed extra) and its value fits the
  property schema, or is not null/empty when no schema is given; a removed, unwanted or repeated key
  fails. Prose passes unless it names the old subject or has a fence the request forbids. The
  closing step fails while requested keys are missing (they must be inserted before it).
- worth_patching: True when at least half of the requested keys have a passing member.
"""

from __future__ import annotations

import functools
import json
import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from jsonschema import Draft202012Validator, SchemaError

from stepcache_core.errors import ConfigError
from stepcache_core.segment import segment_text
from stepcache_core.tasks.base import Check, Delta, DeltaKind, Generate, PatchRequest, Task
from stepcache_core.tasks.json.text import (
    JsonObject,
    Member,
    extract_object,
    find_objects,
    parse_member,
    render_member,
    set_comma,
)
from stepcache_core.types import StepOrigin, StepOutcome

log = logging.getLogger(__name__)

#: Value schema for a required key without a type: anything but null, "", blank, [] or {}.
NON_EMPTY: dict[str, Any] = {
    "not": {
        "anyOf": [
            {"type": "null"},
            {"type": "string", "pattern": r"^\s*$"},
            {"type": "array", "maxItems": 0},
            {"type": "object", "maxProperties": 0},
        ]
    }
}


def _word_set(text: str) -> frozenset[str]:
    return frozenset(text.split())


#: Words that say how made-up a subject is, not what it is; dropped before subjects are compared.
FILLER_WORDS = _word_set(
    "a an the one some any single new fictional fictitious imaginary made up made-up pretend"
    " sample example random fake hypothetical invented dummy mock synthetic realistic typical"
    " generic plausible"
)


def _canonical(schema: Any) -> str:
    return json.dumps(schema, sort_keys=True, ensure_ascii=False)


@dataclass(frozen=True, slots=True)
class JsonSpec:
    """What a prompt asks for: the keys of one JSON object, their value schemas, its subject."""

    keys: tuple[str, ...]  # required keys, in the requested order
    subject: str = ""  # what the object describes, as written: "fictional person"
    forbid_extra: bool = True  # no keys beyond `keys` and `optional`
    optional: tuple[str, ...] = ()  # allowed but not required (schema properties not in "required")
    property_schemas: tuple[tuple[str, str], ...] = ()  # (key, JSON Schema of its value, as JSON)
    compact: bool = False  # the object must be on one line
    bare: bool = False  # no code fence wanted ("raw JSON", "no markdown")

    def __post_init__(self) -> None:
        if not self.keys:
            raise ConfigError("a JsonSpec needs at least one key")
        names = [*self.keys, *self.optional]
        if not all(isinstance(k, str) for k in names) or len(set(names)) != len(names):
            raise ConfigError(f"keys must be distinct strings: {names!r}")
        for key, schema in self.property_schemas:
            if key not in names or not isinstance(json.loads(schema), dict):
                raise ConfigError(f"bad property schema for {key!r}: {schema}")

    @property
    def subject_words(self) -> frozenset[str]:
        """Content words of the subject: "a made-up City Park" -> {"city", "park"}."""
        return frozenset(re.findall(r"[a-z0-9]+", self.subject.lower())) - FILLER_WORDS

    def value_schema(self, key: str) -> dict[str, Any] | None:
        """The JSON Schema the prompt gives for `key`'s value, if any."""
        for name, schema in self.property_schemas:
            if name == key:
                loaded: dict[str, Any] = json.loads(schema)
                return loaded
        return None

    def schema(self) -> dict[str, Any]:
        """A JSON Schema that an answer's object must satisfy."""
        properties: dict[str, Any] = {k: self.value_schema(k) or NON_EMPTY for k in self.keys}
        properties.update({k: self.value_schema(k) or {} for k in self.optional})
        return {
            "type": "object",
            "required": list(self.keys),
            "properties": properties,
            "additionalProperties": not self.forbid_extra,
        }


@functools.lru_cache(maxsize=256)
def _object_validator(spec: JsonSpec) -> Any:
    return Draft202012Validator(spec.schema())


@functools.lru_cache(maxsize=1024)
def _value_validator(schema_json: str) -> Any:
    return Draft202012Validator(json.loads(schema_json))


def _value_problem(spec: JsonSpec, key: str, value: Any) -> str:
    """Why `value` does not fit `key` (empty when it fits)."""
    schema = spec.value_schema(key)
    if schema is None:
        if key not in spec.keys:
            return ""
        schema = NON_EMPTY
    for error in _value_validator(_canonical(schema)).iter_errors(value):
        return _describe(error, key)
    return ""


def _describe(error: Any, key: str | None = None) -> str:
    """A short reason for one jsonschema error."""
    path = list(error.absolute_path)
    if key is None and path:
        key = str(path.pop(0))
    if key is None:
        if error.validator == "required":
            return f"missing key {error.message.removesuffix(' is a required property')}"
        if error.validator == "additionalProperties" and isinstance(error.instance, dict):
            known = error.schema.get("properties", {})
            return f"unexpected keys: {[k for k in error.instance if k not in known]}"
        return str(error.message)
    where = f"key {key!r}" + "".join(f"[{p!r}]" for p in path)
    if error.validator == "not" and error.validator_value == NON_EMPTY["not"]:
        return f"{where}: empty value"
    return f"{where}: {error.message}"


# ---------------------------------------------------------------------------------------- detect

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
#: "Use these keys:\n- name\n- age (integer)".
_BULLETS = re.compile(
    rf"\b{_KEY_NOUN}\b[^\n]*:[ \t]*\n"
    rf"(?P<items>(?:[ \t]*(?:[-*•]|\d+[.)])[ \t]+{_ITEM_SRC}[^\n]*(?:\n|$))+)",
    re.I,
)
_BULLET_ITEM = re.compile(rf"^[ \t]*(?:[-*•]|\d+[.)])[ \t]+(?P<item>{_ITEM_SRC})", re.I | re.M)
_STOP_ITEMS = _word_set(
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
_NOT_SUBJECT = _word_set("json object objects key keys field fields property properties")

Span = tuple[int, int]


def _mask(text: str, spans: Iterable[Span]) -> str:
    chars = list(text)
    for start, end in spans:
        chars[start:end] = " " * (end - start)
    return "".join(chars)


def _inside(span: Span, spans: Iterable[Span]) -> bool:
    return any(s <= span[0] and span[1] <= e for s, e in spans)


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
    spans: list[Span] = []
    masks: list[Span] = []

    def take(items: list[tuple[str, str | None, bool]], span: Span, mask: list[Span]) -> None:
        if not items or _inside(span, spans):
            return
        spans.append(span)
        masks.extend(mask)
        found.extend((k, t) for k, t, _ in items)

    for m in _BULLETS.finditer(text):
        bullets = list(_BULLET_ITEM.finditer(m.group("items")))
        items = [it for b in bullets for it in _items(b.group("item"), strict=False)[:1]]
        start = m.start("items")
        take(items, m.span("items"), [(start + b.start(), start + b.end()) for b in bullets])
    for m in _LIST_AFTER.finditer(text):
        items = _items(m.group("list"), strict=False)
        if len(items) == 1 and not (m.group("colon") or items[0][2]):
            continue  # "the key point": one bare word is not a key list
        take(items, m.span("list"), [m.span("list")])
    for m in _LIST_BEFORE.finditer(text):
        take(_items(m.group("list"), strict=False), m.span("list"), [m.span("list")])
    for m in _LIST_WITH.finditer(text):
        take(_items(m.group("list"), strict=True), m.span("list"), [m.span("list")])
    masks.sort()
    return found, masks


def _subject(text: str, masks: list[Span]) -> tuple[str, Span | None]:
    for pattern in (_SUBJECT, _SUBJECT_AS):
        for m in pattern.finditer(text):
            words = set(re.findall(r"[a-z]+", m.group("s").lower()))
            if words & _NOT_SUBJECT or any(s < m.end("s") and m.start("s") < e for s, e in masks):
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


@functools.lru_cache(maxsize=4096)
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
    if schema_obj is not None:
        schema = schema_obj.value
        if schema.get("type", "object") != "object":
            return None
        props: dict[str, Any] = schema["properties"]
        required = [k for k in schema.get("required", []) if isinstance(k, str)]
        keys = _dedupe(required or props)
        optional = [k for k in props if k not in keys]
        for key, sub in props.items():
            if isinstance(sub, dict) and sub and "$ref" not in _canonical(sub):
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
        property_schemas=tuple((k, _canonical(s)) for k, s in schemas.items()),
        compact=bool(_COMPACT.search(checked)),
        bare=bool(_BARE.search(checked)),
    )


# ---------------------------------------------------------------------------------------- checks


@dataclass(frozen=True, slots=True)
class MemberCheck(Check):
    """A step verdict that also says which key the step holds and which keys the request wants."""

    key: str | None = None  # the member's key; None for prose / structure steps
    wanted: tuple[str, ...] = ()  # the new request's required keys
    missing: tuple[str, ...] = ()  # on the closing step: requested keys that no member provides
    text_ok: bool = False  # the step's own text may stay even though the check failed


_FENCE_OPEN = re.compile(r"^[ \t]*(?P<mark>```|~~~)[^\n]*", re.M)


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z0-9]+", text.lower()))


def _has_fence(text: str) -> bool:
    return "```" in text or "~~~" in text


def _prose_problem(step: str, stale: frozenset[str], spec: JsonSpec) -> str:
    old = sorted(stale & _words(step))
    if old:
        return f"mentions the previous subject ({', '.join(old)})"
    if spec.bare and _has_fence(step):
        return "has a code fence, the request asks for raw JSON"
    return ""


@dataclass(frozen=True, slots=True)
class _Step:
    text: str
    member: Member | None
    check: Check


@dataclass(frozen=True, slots=True)
class _Layout:
    fence: str  # the opening fence line ("```json"), or "" for none
    lead: str  # whitespace before each member ("\n  ")
    compact: bool  # the cached object is on one line


class JsonObjectTask(Task[JsonSpec]):
    """JSON objects with required keys: verified with jsonschema, patched key by key."""

    name = "json_object"

    def __init__(self, *, patch_max_tokens_per_key: int = 48) -> None:
        if patch_max_tokens_per_key < 1:
            raise ConfigError("patch_max_tokens_per_key must be >= 1")
        self.patch_max_tokens_per_key = patch_max_tokens_per_key

    def detect(self, prompt: str) -> JsonSpec | None:
        return detect_json_spec(prompt)

    def segment(self, text: str) -> list[str]:
        """``[prefix, member..., suffix]`` for one extractable object, else `segment_text`."""
        obj = extract_object(text)
        return obj.steps() if obj is not None else segment_text(text)

    def compare(self, cached_prompt: str, cached: JsonSpec, prompt: str, spec: JsonSpec) -> Delta:
        if (cached.compact, cached.bare) != (spec.compact, spec.bare):
            return Delta(frozenset({DeltaKind.CORE}), "output layout differs")
        if cached.subject_words != spec.subject_words:
            old = " ".join(sorted(cached.subject_words)) or "-"
            new = " ".join(sorted(spec.subject_words)) or "-"
            return Delta(frozenset({DeltaKind.CORE}), f"subject differs: {old} -> {new}")
        overlap = set(cached.keys) & set(spec.keys)
        if 2 * len(overlap) < len(spec.keys):
            return Delta(
                frozenset({DeltaKind.CORE}),
                f"only {len(overlap)} of {len(spec.keys)} requested keys are cached",
            )
        changes = []
        if set(cached.keys) != set(spec.keys):
            added = [k for k in spec.keys if k not in cached.keys]
            removed = [k for k in cached.keys if k not in spec.keys]
            changes.append(f"keys +{added} -{removed}")
        if cached.forbid_extra != spec.forbid_extra or set(cached.optional) != set(spec.optional):
            changes.append("allowed extra keys differ")
        if any(cached.value_schema(k) != spec.value_schema(k) for k in overlap):
            changes.append("value types differ")
        if changes:
            return Delta(frozenset({DeltaKind.KEYS}), "; ".join(changes))
        if " ".join(cached_prompt.split()) != " ".join(prompt.split()):
            return Delta(frozenset({DeltaKind.REWORDING}), "same keys and subject, other words")
        return Delta(frozenset(), "same request")

    def shapes(self, prompt: str, spec: JsonSpec) -> Sequence[str]:
        """The subject's words and the layout asked for, first with the keys and their schemas
        (rewordings of one request share it), then alone (variants with keys added, removed or
        renamed share that)."""
        subject = "\x00".join(
            [*sorted(spec.subject_words), f"compact={spec.compact}|bare={spec.bare}"]
        )
        keys = json.dumps(
            [
                sorted(spec.keys),
                sorted(spec.optional),
                spec.forbid_extra,
                sorted(spec.property_schemas),
            ]
        )
        return (f"keys\x00{subject}\x00{keys}", f"subject\x00{subject}")

    def verify(self, steps: Sequence[str], cached: JsonSpec, spec: JsonSpec) -> list[Check]:
        return [s.check for s in self._classify(steps, cached, spec)]

    def _classify(self, steps: Sequence[str], cached: JsonSpec, spec: JsonSpec) -> list[_Step]:
        steps = list(steps)
        obj = extract_object("".join(steps))
        if obj is None:
            bad = MemberCheck(False, "no single complete JSON object", wanted=spec.keys)
            return [_Step(t, None, bad) for t in steps]
        if obj.steps() == steps:
            members: list[Member | None] = [None, *map(parse_member, steps[1:-1]), None]
        else:
            members = [parse_member(t) for t in steps]
        stale = cached.subject_words - spec.subject_words
        allowed = set(spec.keys) | set(spec.optional)
        seen: set[str] = set()
        out: list[_Step] = []
        for text, member in zip(steps, members, strict=True):
            if member is None:
                problem = _prose_problem(text, stale, spec)
                out.append(_Step(text, None, MemberCheck(not problem, problem, wanted=spec.keys)))
                continue
            key = member.key
            if key in seen:
                problem = f"key {key!r} repeated"
            elif key not in allowed and (spec.forbid_extra or key in cached.keys):
                problem = f"key {key!r} is not requested"
            else:
                problem = _value_problem(spec, key, member.value)
            seen.add(key)
            check = MemberCheck(not problem, problem, key=key, wanted=spec.keys)
            out.append(_Step(text, member, check))
        present = {s.member.key for s in out if s.member is not None and s.check.ok}
        missing = tuple(k for k in spec.keys if k not in present)
        if missing and out and out[-1].member is None:
            last = out[-1]
            reason = "; ".join(
                r for r in (last.check.reason, f"missing keys: {list(missing)}") if r
            )
            check = MemberCheck(
                False, reason, wanted=spec.keys, missing=missing, text_ok=last.check.ok
            )
            out[-1] = _Step(last.text, None, check)
        return out

    def worth_patching(self, checks: Sequence[Check]) -> bool:
        """True when at least half of the requested keys have a passing member step."""
        wanted = next((c.wanted for c in checks if isinstance(c, MemberCheck) and c.wanted), ())
        if not wanted:
            return super().worth_patching(checks)
        reusable = {
            c.key for c in checks if isinstance(c, MemberCheck) and c.ok and c.key in wanted
        }
        return 2 * len(reusable) >= len(wanted)

    def integrity(self, text: str, spec: JsonSpec) -> Check:
        """Exactly one valid object with the required keys, allowed keys only, fitting values."""
        scan = find_objects(text)
        if scan.problem:
            return Check(False, scan.problem)
        obj = scan.objects[0]
        problems = [f"key {k!r} repeated" for k in obj.duplicates]
        errors = _object_validator(spec).iter_errors(obj.value)
        problems += [_describe(e) for e in sorted(errors, key=lambda e: list(e.absolute_path))]
        if spec.bare and _has_fence(text):
            problems.append("has a code fence, the request asks for raw JSON")
        if spec.compact and "\n" in text[obj.start : obj.end]:
            problems.append("the object spans several lines, the request asks for one line")
        return Check(not problems, "; ".join(problems))

    # ------------------------------------------------------------------------------------ patch

    def patch(
        self, request: PatchRequest[JsonSpec], generate: Generate
    ) -> list[StepOutcome] | None:
        """Keep verified members, drop failed ones, ask the backend only for the missing keys.

        Attempt 0 patches; attempt 1 patches again and tells the backend why the last answer
        failed; attempt 2 and later regenerate the whole object from the user's prompt. None when
        the backend's reply holds no JSON object.
        """
        spec = request.spec
        steps = self._steps_of(request)
        if request.attempt >= 2:
            return self._regenerate(request, generate)
        kept: dict[str, tuple[str, Member]] = {}
        for step in steps:
            if step.member is not None and step.check.ok and step.member.key not in kept:
                kept[step.member.key] = (step.text, step.member)
        missing = [k for k in spec.keys if k not in kept]
        new: dict[str, Any] = {}
        if missing:
            known = {k: m.value for k, (_, m) in kept.items()}
            failure = request.last_failure if request.attempt == 1 else ""
            prompt = self.missing_keys_prompt(spec, known, missing, failure)
            budget = request.max_tokens or 32 + self.patch_max_tokens_per_key * len(missing)
            reply = extract_object(generate(prompt, budget).text)
            if reply is None:
                log.debug("patch reply holds no JSON object")
                return None
            value = reply.value
            new = {k: value[k] for k in missing if k in value}
        order = [k for k in spec.keys if k in kept or k in new]
        order += [k for k in kept if k not in spec.keys]  # allowed extras, in cached order
        merged = {k: kept[k][1].value if k in kept else new[k] for k in order}
        for error in _object_validator(spec).iter_errors(merged):
            log.debug("patched object fails its schema: %s", _describe(error))
        prefix = steps[0] if steps and steps[0].member is None else None
        suffix = steps[-1] if len(steps) > 1 and steps[-1].member is None else None
        layout = self._layout("".join(s.text for s in steps), spec)
        return self._render(layout, order, kept, new, prefix, suffix)

    def missing_keys_prompt(
        self, spec: JsonSpec, known: dict[str, Any], missing: Sequence[str], last_failure: str = ""
    ) -> str:
        """The backend prompt of a patch: names the subject, shows `known`, asks only `missing`."""
        subject = spec.subject or "requested item"
        article = "an" if subject[:1].lower() in "aeiou" else "a"
        lines = [f"We are writing a JSON object that describes {article} {subject}."]
        if known:
            lines += [
                "These members are already written; keep them in mind but do not repeat them:",
                json.dumps(known, ensure_ascii=False, indent=2),
            ]
        wanted = ", ".join(json.dumps(k, ensure_ascii=False) for k in missing)
        lines.append(f"Reply with only a JSON object with exactly these keys: {wanted}.")
        typed = [
            f"{json.dumps(k, ensure_ascii=False)} must match the JSON Schema {_canonical(s)}"
            for k in missing
            if (s := spec.value_schema(k)) is not None
        ]
        lines.append(
            "Give every key a realistic, non-empty value." + "".join(f" {t}." for t in typed)
        )
        if last_failure:
            lines.append(f"The previous answer was rejected: {last_failure}. Fix that.")
        return "\n".join(lines)

    @staticmethod
    def _steps_of(request: PatchRequest[JsonSpec]) -> list[_Step]:
        """The cached steps with their members parsed back; no members without one object."""
        steps, checks = list(request.steps), list(request.checks)
        obj = extract_object("".join(steps))
        if obj is None or len(checks) != len(steps):
            return [_Step(t, None, Check(False, "no JSON object")) for t in steps]
        if obj.steps() == steps:
            members: list[Member | None] = [None, *map(parse_member, steps[1:-1]), None]
        else:
            members = [parse_member(t) for t in steps]
        return [_Step(t, m, c) for t, m, c in zip(steps, members, checks, strict=True)]

    @staticmethod
    def _layout(text: str, spec: JsonSpec) -> _Layout:
        """The cached answer's fence and member indentation (2 spaces when it has none)."""
        obj = extract_object(text)
        fence = ""
        if not spec.bare:
            # The last fence opened before the object; without an object, the first fence.
            openers = list(_FENCE_OPEN.finditer(text[: obj.start] if obj is not None else text))
            if openers:
                fence = openers[-1 if obj is not None else 0].group(0).strip()
        lead = "\n  "
        if obj is not None and obj.members and "\n" in obj.lead(0):
            lead = obj.lead(0)
        compact = obj is not None and "\n" not in obj.text[obj.start : obj.end]
        return _Layout(fence, lead, compact or spec.compact)

    @staticmethod
    def _render(
        layout: _Layout,
        order: list[str],
        kept: dict[str, tuple[str, Member]],
        new: dict[str, Any],
        prefix: _Step | None,
        suffix: _Step | None,
    ) -> list[StepOutcome]:
        """Prefix, members in `order`, suffix: cached text where it still fits, else rendered."""
        fenced = bool(layout.fence)
        out: list[StepOutcome] = []
        if prefix is not None and prefix.check.ok and _has_fence(prefix.text) == fenced:
            out.append(StepOutcome(prefix.text, StepOrigin.REUSED))
        else:
            text = f"{layout.fence}\n{{" if fenced else "{"
            same = prefix is not None and text == prefix.text
            out.append(StepOutcome(text, StepOrigin.REUSED if same else StepOrigin.PATCHED))
        for i, key in enumerate(order):
            comma = i < len(order) - 1
            lead = ("" if i == 0 else " ") if layout.compact else layout.lead
            if key in kept:
                old, member = kept[key]
                if old[: len(old) - len(old.lstrip(" \t\n\r"))] == lead:
                    text = set_comma(old, comma)  # same layout: the cached text, comma fixed
                else:
                    text = render_member(
                        key, member.value, lead, comma=comma, compact=layout.compact
                    )
                out.append(StepOutcome(text, StepOrigin.REUSED))
            else:
                text = render_member(key, new[key], lead, comma=comma, compact=layout.compact)
                out.append(StepOutcome(text, StepOrigin.PATCHED))
        close = ("}" if layout.compact else "\n}") + ("\n" + layout.fence[:3] if fenced else "")
        if suffix is not None and (suffix.check.ok or _text_ok(suffix.check)):
            body = suffix.text.lstrip(" \t")
            shaped = body.startswith("}") if layout.compact else body.startswith("\n")
            if shaped and _has_fence(suffix.text) == fenced:
                close = suffix.text
        same = suffix is not None and close == suffix.text
        out.append(StepOutcome(close, StepOrigin.REUSED if same else StepOrigin.PATCHED))
        return out

    @staticmethod
    def _regenerate(
        request: PatchRequest[JsonSpec], generate: Generate
    ) -> list[StepOutcome] | None:
        """The last resort: the whole object again, from the user's prompt."""
        keys = ", ".join(request.spec.keys)
        prompt = (
            f"{request.prompt}\n\nReply with only one JSON object with exactly these keys: {keys}."
        )
        obj = extract_object(generate(prompt, request.max_tokens).text)
        if obj is None:
            return None
        return [StepOutcome(t, StepOrigin.GENERATED) for t in obj.steps()]


def _text_ok(check: Check) -> bool:
    return isinstance(check, MemberCheck) and check.text_ok


__all__ = [
    "FILLER_WORDS",
    "NON_EMPTY",
    "JsonObjectTask",
    "JsonSpec",
    "MemberCheck",
    "detect_json_spec",
]

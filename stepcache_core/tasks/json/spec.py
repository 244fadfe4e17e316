"""`JsonSpec`: the JSON object a prompt asks for (its keys, their value schemas, its subject)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from stepcache_core.errors import ConfigError
from stepcache_core.tasks.understanding import Mask

__all__ = ["FILLER_WORDS", "NON_EMPTY", "JsonSpec", "canonical_json", "word_set"]

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


def word_set(text: str) -> frozenset[str]:
    return frozenset(text.split())


#: Words that say how made-up a subject is, not what it is; dropped before subjects are compared.
FILLER_WORDS = word_set(
    "a an the one some any single new fictional fictitious imaginary made up made-up pretend"
    " sample example random fake hypothetical invented dummy mock synthetic realistic typical"
    " generic plausible"
)


def canonical_json(schema: Any) -> str:
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
    only_object: bool = False  # no prose around the object ("output only a JSON object")
    #: The prompt holds nothing but the key list or schema, the subject and the lexicon's
    #: phrasings: only then can an answer be proven wrong for it (an answer to other words,
    #: "leave out the age", may be right for them) or its keys be changed by a patch.
    understood: bool = False
    #: `compact` or `bare` is asked for and every other word is keys, subject, lexicon or a
    #: phrasing of those two rules (`LAYOUT_LEXICON`): a model's answer may then be laid out as
    #: asked (`layout.relaid`).
    layout_certain: bool = False
    #: Where the prompt states the keys (``keys``) or the schema (``schema``): what the residue
    #: leaves out. Not part of the spec's identity.
    masks: tuple[Mask, ...] = field(default=(), compare=False, repr=False)

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

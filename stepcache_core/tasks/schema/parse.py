"""Detection: a request for one JSON object that matches a JSON Schema (`detect_schema_spec`),
and the canonical prompt for a schema passed explicitly (`schema_request`).

A prompt is read as such a request only when all of these hold:

- it embeds exactly one JSON Schema: an object with ``"type": "object"`` and non-empty
  ``properties``, valid under draft 2020-12, whose ``$ref``s are local and not recursive (an
  example object is not a schema: it has no ``type`` object or its ``properties`` are values);
- the prose outside it asks for an object, an instance or JSON *matching* the schema
  ("that matches", "conforming to", "following this schema", "valid against");
- the prose does not ask something else about the schema or the data: a question mark, explain,
  describe/convert/validate/modify the schema, code, another format, several objects or a list.

The values the prose states (names, places, quoted strings, numbers: see `stated`) are kept on
the spec: an answer verifies only when it holds each of them.

A prompt written by `schema_request` (its `CANONICAL_ASK` right before the schema) asks for one
object whatever its other words are; they stay in the residue.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Mapping
from typing import Any

from stepcache_core.tasks.json.text import find_objects
from stepcache_core.tasks.schema.spec import SchemaSpec
from stepcache_core.tasks.schema.stated import stated_values
from stepcache_core.tasks.schema.wording import SCHEMA_LEXICON
from stepcache_core.tasks.understanding import Mask

__all__ = ["CANONICAL_ASK", "detect_schema_spec", "schema_request"]

#: The instruction `schema_request` writes before the schema: an unambiguous ask for one object,
#: so a prompt holding it right before its schema needs none of the prose checks below.
CANONICAL_ASK = "Reply with only one object that matches this schema:"

_ASK = re.compile(
    r"\b(?:return|give|output|produce|generate|create|write|make|fill|extract|reply|respond"
    r"|answer|provide|emit)\b",
    re.I,
)
_THING = re.compile(r"\b(?:object|instance|json|record|data|document|example)\b", re.I)
_MATCH = re.compile(
    r"\b(?:match|matches|matching|conform|conforms|conforming|follow|follows|following"
    r"|according\s+to|adheres?|adhering|valid\s+(?:against|under|for)|satisf(?:y|ies|ying)"
    r"|compl(?:y|ies|ying)\s+with|fits?)\b",
    re.I,
)
_SCHEMA_WORD = re.compile(r"\bschema\b", re.I)
_OTHER = re.compile(
    r"\?|\b(?:explain|explains|why|how|summari[sz]e|translate|convert|validate|review|improve"
    r"|modify|change|refactor|fix|correct|simplify|document|describe\s+(?:the|this|that)\s+schema"
    r"|write\s+(?:a|an|the)\s+(?:json\s+)?schema|(?:new|another|different)\s+schema"
    r"|yaml|yml|xml|csv|tsv|toml|html|table|markdown|jsonl|ndjson|lines|list|array|arrays"
    r"|objects|instances|records|several|multiple|many|each|every|code|function|class|python"
    r"|javascript|typescript|java|rust|sql|pydantic|zod|typescript|interface|parser|regex"
    r"|serializer|script|program)\b",
    re.I,
)


def _schema_objects(prompt: str) -> list[tuple[int, int, dict[str, Any]]]:
    found = []
    for obj in find_objects(prompt).objects:
        value = obj.value
        props = value.get("properties")
        if value.get("type") == "object" and isinstance(props, dict) and props:
            found.append((obj.start, obj.end, value))
    return found


def _asks_for_an_object(prose: str) -> bool:
    return bool(
        _ASK.search(prose)
        and _THING.search(prose)
        and _MATCH.search(prose)
        and _SCHEMA_WORD.search(prose)
        and not _OTHER.search(prose)
    )


@functools.lru_cache(maxsize=4096)
def detect_schema_spec(prompt: str) -> SchemaSpec | None:
    """The schema-matching object request in `prompt`, or None (see the module docstring)."""
    if not isinstance(prompt, str):
        return None
    schemas = _schema_objects(prompt)
    if len(schemas) != 1:
        return None
    start, end, schema = schemas[0]
    prose = prompt[:start] + " " + prompt[end:]
    if not prompt[:start].endswith(f"{CANONICAL_ASK}\n```\n") and not _asks_for_an_object(prose):
        return None
    fence = re.search(r"(?:```|~~~)[^\n`]*\n[ \t]*$", prompt[:start])
    close = re.match(r"[ \t]*\n?[ \t]*(?:```|~~~)", prompt[end:])
    span_start = fence.start() if fence and close else start
    span_end = end + close.end() if fence and close else end
    masks = (Mask(span_start, span_end, "schema"),)
    return SchemaSpec.of(schema, masks, stated_values(prompt, masks, SCHEMA_LEXICON))


def schema_request(prompt_text: str, schema: Mapping[str, Any]) -> str:
    """The canonical prompt asking for one object matching `schema` (a `with_structured_output`
    or tool schema, a Pydantic ``model_json_schema()``, a LlamaIndex output class): adapters
    send this so that the schema task detects and reuses it like a schema in the prompt.

    The wording avoids the word "JSON" on purpose: the built-in JSON-object task, registered
    before this one, claims prompts that say it."""
    body = json.dumps(dict(schema), ensure_ascii=False, indent=2)
    return f"{prompt_text.strip()}\n\n{CANONICAL_ASK}\n```\n{body}\n```"

"""`SchemaSpec`: the JSON Schema a request's object must match, with its local ``$ref``s inlined,
and the sub-schema at a JSON Pointer.

Only schemas whose structure is plain are walked step by step: an object schema (``type``
object, ``properties``) or an array schema whose ``items`` is one schema. A node with a
combinator (``anyOf``, ``allOf``, ...) or ``prefixItems`` is a leaf: its whole value is one step.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from jsonschema import Draft202012Validator, FormatChecker, SchemaError
from referencing import Registry, Resource
from referencing.exceptions import Unresolvable
from referencing.jsonschema import DRAFT202012

from stepcache_core.tasks.understanding import Mask

__all__ = [
    "FORMAT_CHECKER",
    "Pointer",
    "SchemaSpec",
    "inline_refs",
    "pointer_text",
    "sub_schema",
    "wording_at",
]

#: A JSON Pointer as its parts: object keys (str) and array indices (int).
Pointer = tuple[str | int, ...]

#: Keywords that only annotate a schema; allowed next to a ``$ref``.
_ANNOTATIONS = frozenset({"title", "description", "default", "examples", "$comment"})
#: Keywords that validation enforces (``format`` through `FORMAT_CHECKER`, or refused when it
#: cannot check it) or that shape the schema. Every other keyword (the annotations above,
#: ``deprecated``, ``readOnly``, ``contentEncoding``, ``contentMediaType``, ``x-`` notes, anything
#: unknown) only *says* something about the value: `wording_at` compares it as prose.
_ENFORCED = frozenset(
    {"type", "enum", "const", "multipleOf", "maximum", "exclusiveMaximum", "minimum"}
    | {"exclusiveMinimum", "maxLength", "minLength", "pattern", "format", "maxItems", "minItems"}
    | {"uniqueItems", "maxContains", "minContains", "maxProperties", "minProperties", "required"}
    | {"dependentRequired", "properties", "patternProperties", "additionalProperties"}
    | {"propertyNames", "items", "prefixItems", "contains", "allOf", "anyOf", "oneOf", "not"}
    | {"if", "then", "else", "dependentSchemas", "unevaluatedItems", "unevaluatedProperties"}
    | {"$ref", "$defs", "definitions", "$schema", "$id", "$anchor", "$dynamicRef"}
    | {"$dynamicAnchor", "$recursiveRef", "$recursiveAnchor", "$vocabulary"}
)
#: Keywords that make a node's structure conditional: such a node is never walked into.
_COMBINATORS = frozenset(
    {"anyOf", "allOf", "oneOf", "not", "if", "then", "else", "prefixItems", "patternProperties"}
    | {"dependentSchemas", "dependentRequired", "unevaluatedProperties", "unevaluatedItems"}
    | {"propertyNames", "contains", "$dynamicRef", "$recursiveRef"}
)
#: Keywords whose value is a schema, a list of schemas or (`_SCHEMA_MAPS`) a map of them.
_SCHEMA_MAPS = frozenset({"properties", "patternProperties", "dependentSchemas"})
_SUBSCHEMAS = _SCHEMA_MAPS | {
    "items",
    "prefixItems",
    "additionalProperties",
    "anyOf",
    "allOf",
    "oneOf",
    "not",
    "if",
    "then",
    "else",
    "contains",
    "propertyNames",
    "unevaluatedProperties",
    "unevaluatedItems",
}
_ROOT = "urn:stepcache:schema"
_DIALECT = "https://json-schema.org/draft/2020-12/schema"
_MAX_DEPTH = 32

_RFC3339 = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[Zz]|[+-]\d{2}:\d{2})$"
)


def _date_time(value: object) -> bool:
    """RFC 3339 date-time (jsonschema checks it only with an optional package)."""
    if not isinstance(value, str):
        return True
    if not _RFC3339.match(value):
        return False
    datetime.fromisoformat(value.replace("z", "Z").replace("Z", "+00:00"))
    return True


#: jsonschema's format checks, plus RFC 3339 ``date-time``.
FORMAT_CHECKER = FormatChecker()
FORMAT_CHECKER.checks("date-time", raises=ValueError)(_date_time)


class _Refused(ValueError):
    """A schema this task does not read with certainty."""


def inline_refs(schema: dict[str, Any]) -> dict[str, Any] | None:
    """`schema` with every local ``$ref`` replaced by its target and ``$defs`` dropped, or None
    for a remote or recursive ref, a ref with validation keywords beside it, an unresolvable one,
    or a ``$schema`` other than draft 2020-12 (refuse rather than guess)."""
    if schema.get("$schema", _DIALECT) not in (_DIALECT, _DIALECT + "#"):
        return None  # another dialect reads some keywords otherwise: refuse rather than guess
    resource: Resource[Any] = Resource.from_contents(schema, default_specification=DRAFT202012)
    resolver = Registry().with_resource(_ROOT, resource).resolver(base_uri=_ROOT)

    def walk(node: Any, seen: tuple[str, ...]) -> Any:
        if len(seen) > _MAX_DEPTH:
            raise _Refused("nested too deeply")
        if isinstance(node, list):
            return [walk(v, seen) for v in node]
        if not isinstance(node, dict):
            return node
        if "$ref" in node:
            ref = node["$ref"]
            if not isinstance(ref, str) or not ref.startswith("#"):
                raise _Refused(f"not a local ref: {ref!r}")
            if ref in seen:
                raise _Refused(f"recursive ref: {ref}")
            if set(node) - _ANNOTATIONS - {"$ref"}:
                raise _Refused(f"validation keywords beside {ref}")
            try:
                target = resolver.lookup(ref).contents
            except (Unresolvable, ValueError, TypeError, LookupError) as exc:
                raise _Refused(str(exc)) from None
            resolved = walk(target, (*seen, ref))
            if not isinstance(resolved, dict):
                return resolved
            return {**resolved, **{k: v for k, v in node.items() if k != "$ref"}}
        return {
            k: walk(v, seen) for k, v in node.items() if k not in ("$defs", "definitions", "$id")
        }

    try:
        inlined = walk(schema, ())
    except _Refused:
        return None
    return inlined if isinstance(inlined, dict) else None


def _plain(node: dict[str, Any]) -> bool:
    return not (_COMBINATORS & set(node))


def is_object_schema(node: Any) -> bool:
    """A plain object schema: ``type`` object, ``properties``, no combinator."""
    return (
        isinstance(node, dict)
        and node.get("type") == "object"
        and isinstance(node.get("properties"), dict)
        and _plain(node)
    )


def is_array_schema(node: Any) -> bool:
    """A plain array schema: ``type`` array with one ``items`` schema, no combinator."""
    return (
        isinstance(node, dict)
        and node.get("type") == "array"
        and isinstance(node.get("items"), dict)
        and _plain(node)
    )


def sub_schema(schema: dict[str, Any], pointer: Pointer) -> tuple[dict[str, Any] | None, str]:
    """The schema of the value at `pointer`, or None with the reason it has none: a key the
    schema does not list, an index past ``maxItems``, a step into a non-plain node."""
    node: Any = schema
    for depth, part in enumerate(pointer):
        where = pointer_text(pointer[:depth]) or "the root"
        if isinstance(part, str):
            if not is_object_schema(node):
                return None, f"{where} is not an object in the schema"
            node = node["properties"].get(part)
            if node is None or node is False:
                return None, f"{pointer_text(pointer[: depth + 1])} is not in the schema"
        else:
            if not is_array_schema(node):
                return None, f"{where} is not an array of one item schema"
            if part >= node.get("maxItems", part + 1):
                return None, f"{pointer_text(pointer[: depth + 1])} is past maxItems"
            node = node["items"]
        if node is True:
            node = {}
    return (node, "") if isinstance(node, dict) else (None, "not a schema")


def _annotations(node: Any, *, deep: bool) -> Any:
    """The keywords of schema `node` that validation does not enforce (with its subschemas'
    when `deep`)."""
    if not isinstance(node, dict):
        return None
    own = {k: node[k] for k in sorted(set(node) - _ENFORCED)}
    if not deep:
        return own
    children: dict[str, Any] = {}
    for key in sorted(_SUBSCHEMAS & set(node)):
        child = node[key]
        if isinstance(child, list):
            children[key] = [_annotations(c, deep=True) for c in child]
        elif key in _SCHEMA_MAPS and isinstance(child, dict):
            children[key] = {k: _annotations(c, deep=True) for k, c in sorted(child.items())}
        else:
            children[key] = _annotations(child, deep=True)
    return [own, children]


def wording_at(schema: dict[str, Any], pointer: Pointer) -> str | None:
    """What the schema *says* about the value at `pointer`: the titles, descriptions, defaults,
    examples and every other keyword validation does not enforce, of every node from the root
    down to it (the whole subtree's at the value's
    own node). They are prose: two schemas that word them differently ask for other values.
    None when the schema has no node at `pointer`."""
    if sub_schema(schema, pointer)[0] is None:
        return None
    path: list[Any] = []
    node: Any = schema
    for part in pointer:
        path.append(_annotations(node, deep=False))
        node = node["properties"][part] if isinstance(part, str) else node["items"]
    path.append(_annotations(node, deep=True))
    return canonical(path)


def _escape(part: str | int) -> str:
    return str(part).replace("~", "~0").replace("/", "~1")


def pointer_text(pointer: Sequence[str | int]) -> str:
    """RFC 6901 text of `pointer`: ``("team", 0, "role")`` -> ``/team/0/role``."""
    return "".join("/" + _escape(p) for p in pointer)


def canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


@functools.lru_cache(maxsize=256)
def _parsed(schema_json: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(schema_json)
    return loaded


@dataclass(frozen=True, slots=True)
class SchemaSpec:
    """The object a request asks for: a JSON Schema (local refs inlined, property order kept)."""

    schema_json: str = field(compare=False)  # the inlined schema, in the prompt's key order
    identity: str = field(init=False)  # the inlined schema with sorted keys: what compares
    #: Where the prompt states the schema: what the residue leaves out. Not part of identity.
    masks: tuple[Mask, ...] = field(default=(), compare=False, repr=False)
    #: The values the prose outside the schema states ("Backend Engineer", "Rome", "42"): an
    #: answer must hold each as a whole leaf to verify. Not part of identity: the residue
    #: compares the prose.
    stated: tuple[str, ...] = field(default=(), compare=False)

    def __post_init__(self) -> None:
        schema = json.loads(self.schema_json)
        if not is_object_schema(schema):
            raise ValueError("a SchemaSpec needs a plain object schema")
        try:
            Draft202012Validator.check_schema(schema)
        except SchemaError as exc:
            raise ValueError(f"not a valid JSON Schema: {exc.message}") from None
        object.__setattr__(self, "identity", canonical(schema))

    @classmethod
    def of(
        cls, schema: dict[str, Any], masks: tuple[Mask, ...] = (), stated: tuple[str, ...] = ()
    ) -> SchemaSpec | None:
        """The spec of `schema` (refs inlined), or None when this task cannot read it."""
        try:
            inlined = inline_refs(schema)
            if inlined is None:
                return None
            return cls(json.dumps(inlined, ensure_ascii=False), masks, stated)
        except (ValueError, TypeError, RecursionError):
            return None

    @property
    def schema(self) -> dict[str, Any]:
        """The inlined schema, parsed once per process and shared: never mutate it."""
        return _parsed(self.schema_json)

    def at(self, pointer: Pointer) -> tuple[dict[str, Any] | None, str]:
        """The sub-schema at `pointer` (see `sub_schema`)."""
        return sub_schema(self.schema, pointer)

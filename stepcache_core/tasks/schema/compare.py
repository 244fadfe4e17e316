"""Compare: how a new schema request differs from a cached one (the residues were already found
equal: the prose around the schema is the same up to the lexicon)."""

from __future__ import annotations

from typing import Any

from stepcache_core.tasks.base import Delta, DeltaKind
from stepcache_core.tasks.schema.spec import (
    Pointer,
    SchemaSpec,
    canonical,
    is_array_schema,
    is_object_schema,
    pointer_text,
)

__all__ = ["compare_specs", "schema_paths"]

_ITEM = -1  # stands for every index of an array in `schema_paths`


def schema_paths(schema: Any, at: Pointer = ()) -> dict[Pointer, str]:
    """Every pointer the schema walks into (``-1`` for any array index), with the canonical
    JSON of its sub-schema."""
    out: dict[Pointer, str] = {}
    if is_object_schema(schema):
        for key, sub in schema["properties"].items():
            out[(*at, key)] = canonical(sub)
            out.update(schema_paths(sub, (*at, key)))
    elif is_array_schema(schema):
        out[(*at, _ITEM)] = canonical(schema["items"])
        out.update(schema_paths(schema["items"], (*at, _ITEM)))
    return out


def _names(pointers: list[Pointer]) -> str:
    return ", ".join(pointer_text(["*" if p == _ITEM else p for p in ptr]) for ptr in pointers)


def compare_specs(cached_prompt: str, cached: SchemaSpec, prompt: str, spec: SchemaSpec) -> Delta:
    """CORE unless more than half of the new schema's property paths are in the cached one
    (other siblings make another kind of object: a company's "name" is not a person's); KEYS
    when the schemas differ (paths added, removed, or constraints changed: the leaves are
    re-checked); REWORDING when only the lexicon's words differ."""
    if cached.identity == spec.identity:
        if " ".join(cached_prompt.split()) == " ".join(prompt.split()):
            return Delta(frozenset(), "same request")
        return Delta(frozenset({DeltaKind.REWORDING}), "same schema, other words")
    old, new = schema_paths(cached.schema), schema_paths(spec.schema)
    shared = set(old) & set(new)
    if 2 * len(shared) <= len(new):
        return Delta(
            frozenset({DeltaKind.CORE}),
            f"only {len(shared)} of the {len(new)} properties of the new schema are cached: "
            "another kind of object",
        )
    changes = []
    added = [p for p in new if p not in old]
    removed = [p for p in old if p not in new]
    changed = [p for p in new if p in old and old[p] != new[p]]
    if added:
        changes.append(f"added {_names(added)}")
    if removed:
        changes.append(f"removed {_names(removed)}")
    if changed:
        changes.append(f"changed {_names(changed)}")
    return Delta(frozenset({DeltaKind.KEYS}), "; ".join(changes) or "schema constraints differ")

"""Verify: each cached leaf checked against the new schema at its JSON Pointer, the required
pointers the cached object lacks, and the integrity of a whole answer (jsonschema validation)."""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from jsonschema import Draft202012Validator

from stepcache_core.tasks.base import Check
from stepcache_core.tasks.schema.spec import (
    FORMAT_CHECKER,
    Pointer,
    SchemaSpec,
    canonical,
    is_array_schema,
    is_object_schema,
    pointer_text,
    wording_at,
)
from stepcache_core.tasks.schema.stated import unstated_value
from stepcache_core.tasks.schema.steps import Split, split_answer

__all__ = [
    "PointerCheck",
    "check_integrity",
    "classify_steps",
    "missing_pointers",
    "unchecked_formats",
]

#: What may surround the object: whitespace and one code fence.
_PREFIX_OK = re.compile(r"\s*(?:(?:```|~~~)[^\n`]*\n\s*)?\{")
_SUFFIX_OK = re.compile(r"[\s}\]]*(?:(?:```|~~~)\s*)?")
_OUTSIDE_OK = re.compile(r"\s*(?:(?:```|~~~)[^\n`]*\n\s*(?:```|~~~))?\s*")


@dataclass(frozen=True, slots=True)
class PointerCheck(Check):
    """A step verdict that also names the leaf's JSON Pointer (None: prefix or suffix)."""

    pointer: Pointer | None = None


@functools.lru_cache(maxsize=1024)
def _validator(schema_json: str) -> Any:
    return Draft202012Validator(json.loads(schema_json), format_checker=FORMAT_CHECKER)


def unchecked_formats(schema: Any) -> set[str]:
    """The string formats in `schema` that this task cannot check."""
    found: set[str] = set()
    if isinstance(schema, dict):
        fmt = schema.get("format")
        if isinstance(fmt, str) and fmt not in FORMAT_CHECKER.checkers:
            found.add(fmt)
        for value in schema.values():
            found |= unchecked_formats(value)
    elif isinstance(schema, list):
        for value in schema:
            found |= unchecked_formats(value)
    return found


def first_error(schema: dict[str, Any], value: Any) -> str:
    """Why `value` does not match `schema` ('' when it does)."""
    for error in _validator(canonical(schema)).iter_errors(value):
        where = pointer_text(list(error.absolute_path))
        return f"{where or 'the value'}: {error.message}" if where else str(error.message)
    return ""


def missing_pointers(schema: dict[str, Any], value: Any, at: Pointer = ()) -> list[Pointer]:
    """Required pointers `value` lacks, in schema order: required keys of every object it holds
    under a plain object schema, array items up to ``minItems``."""
    out: list[Pointer] = []
    if is_object_schema(schema) and isinstance(value, dict):
        props: dict[str, Any] = schema["properties"]
        required = [k for k in schema.get("required", ()) if isinstance(k, str)]
        ordered = [k for k in props if k in required] + [k for k in required if k not in props]
        out += [(*at, k) for k in ordered if k not in value]
        for key, sub in value.items():
            if isinstance(props.get(key), dict):
                out += missing_pointers(props[key], sub, (*at, key))
    elif is_array_schema(schema) and isinstance(value, list):
        for i, item in enumerate(value):
            out += missing_pointers(schema["items"], item, (*at, i))
        minimum = schema.get("minItems", 0)
        out += [(*at, i) for i in range(len(value), minimum if isinstance(minimum, int) else 0)]
    return out


def _leaf_check(pointer: Pointer, value: Any, cached: SchemaSpec, spec: SchemaSpec) -> Check:
    where = pointer_text(pointer)
    schema, reason = spec.at(pointer)
    if schema is None:
        return PointerCheck(False, reason, pointer=pointer)
    if wording_at(cached.schema, pointer) != wording_at(spec.schema, pointer):
        return PointerCheck(False, f"{where}: the schema words it otherwise", pointer=pointer)
    unchecked = unchecked_formats(schema)
    if unchecked and cached.at(pointer)[0] != schema:
        return PointerCheck(
            False, f"{where}: cannot check format {sorted(unchecked)}", pointer=pointer
        )
    problem = first_error(schema, value)
    if problem:
        return PointerCheck(False, f"{where}: {problem}", wrong=True, pointer=pointer)
    return PointerCheck(True, pointer=pointer)


def classify_steps(steps: Sequence[str], cached: SchemaSpec, spec: SchemaSpec) -> list[Check]:
    """One verdict per step: the prefix passes when only whitespace and a fence precede the
    object; a leaf when its pointer is in the new schema (keys listed, items allowed), the
    schema words it as before (titles, descriptions, examples from the root down) and its
    value matches the sub-schema there; the suffix when only brackets and a fence follow and
    no required pointer of the new schema is missing from the object."""
    split = split_answer("".join(steps))
    if split is None or split.steps != tuple(steps):
        return [PointerCheck(False, "not one JSON object") for _ in steps]
    checks: list[Check] = []
    prefix = split.steps[0]
    checks.append(
        PointerCheck(True) if _PREFIX_OK.fullmatch(prefix) else PointerCheck(False, "prose before")
    )
    seen: set[Pointer] = set()
    for leaf in split.leaves:
        if leaf.pointer in seen:
            checks.append(PointerCheck(False, "repeated key", pointer=leaf.pointer))
            continue
        seen.add(leaf.pointer)
        checks.append(_leaf_check(leaf.pointer, leaf.value, cached, spec))
    checks.append(_suffix_check(split, spec))
    return checks


def _suffix_check(split: Split, spec: SchemaSpec) -> Check:
    if not _SUFFIX_OK.fullmatch(split.steps[-1]):
        return PointerCheck(False, "prose after the object")
    missing = missing_pointers(spec.schema, split.value)
    if missing:
        names = ", ".join(pointer_text(p) for p in missing)
        return PointerCheck(False, f"missing required {names}")
    return PointerCheck(True)


def structure_matches(split: Split, spec: SchemaSpec) -> bool:
    """Every key path of the answer is in the schema and none it requires is missing."""
    return all(spec.at(leaf.pointer)[0] is not None for leaf in split.leaves) and not (
        missing_pointers(spec.schema, split.value)
    )


def check_integrity(text: str, spec: SchemaSpec) -> Check:
    """Exactly one object, nothing around it but whitespace and a fence, valid against the whole
    schema (formats included; a format this task cannot check fails, unproven), holding every
    value the request's prose states as a whole leaf (else it fails, unproven: the model's
    answer is served as written, never reused). A validation error proves the answer wrong only
    when its key structure matches the schema."""
    split = split_answer(text)
    if split is None:
        return Check(False, "not exactly one JSON object")
    if not _OUTSIDE_OK.fullmatch(split.outside):
        return Check(False, "text around the object")
    unchecked = unchecked_formats(spec.schema)
    if unchecked:
        return Check(False, f"cannot check format {sorted(unchecked)}")
    problem = first_error(spec.schema, split.value)
    if problem:
        return Check(False, problem, wrong=structure_matches(split, spec))
    missing = unstated_value(split.value, spec.stated)
    if missing is not None:
        return Check(False, f"the request states {missing!r}; no value equals it")
    return Check(True)

"""Patch: keep the verified leaves, ask the backend only for the failing and missing pointers
(through its schema-constrained decoding when it has one), merge them back in schema order and
the cached answer's layout; as a last resort, regenerate the whole object."""

from __future__ import annotations

import copy
import json
import logging
import re
from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

from stepcache_core.tasks.base import Generate, PatchRequest
from stepcache_core.tasks.json.text import extract_object
from stepcache_core.tasks.schema.parse import CANONICAL_ASK
from stepcache_core.tasks.schema.spec import (
    Pointer,
    SchemaSpec,
    is_array_schema,
    is_object_schema,
    pointer_text,
)
from stepcache_core.tasks.schema.steps import split_answer
from stepcache_core.tasks.schema.verify import missing_pointers
from stepcache_core.types import Completion, StepOrigin, StepOutcome

log = logging.getLogger(__name__)

__all__ = ["SchemaGenerate", "patch_answer", "pointers_prompt", "pointers_schema"]

_FENCE = re.compile(r"(?:```|~~~)[^\n`]*")


@runtime_checkable
class SchemaGenerate(Protocol):
    """A `Generate` that can also ask the backend for JSON matching a schema (constrained
    decoding); the patch uses it when the engine supplies one."""

    def complete_json(
        self, prompt: str, schema: dict[str, Any], max_tokens: int | None
    ) -> Completion: ...


def _ask(generate: Generate, prompt: str, schema: dict[str, Any], budget: int | None) -> str:
    if isinstance(generate, SchemaGenerate):
        return generate.complete_json(prompt, schema, budget).text
    return generate(prompt, budget).text


def _insert(tree: dict[Any, Any], pointer: Pointer, value: Any) -> None:
    """Put `value` at `pointer`, array indices as int keys (made lists by `_lists`)."""
    node = tree
    for part in pointer[:-1]:
        node = node.setdefault(part, {})
    node[pointer[-1]] = value


def _lists(node: Any) -> Any:
    """Dicts keyed by ints become lists in index order (gaps closed)."""
    if isinstance(node, dict):
        if node and all(isinstance(k, int) for k in node):
            return [_lists(node[k]) for k in sorted(node)]
        return {k: _lists(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_lists(v) for v in node]
    return node


def _set(tree: dict[str, Any], pointer: Pointer, value: Any) -> None:
    node: Any = tree
    for part, after in zip(pointer, (*pointer[1:], None), strict=True):
        if after is None:
            if isinstance(node, list) and isinstance(part, int) and part >= len(node):
                node.append(value)
            else:
                node[part] = value
            return
        fresh: Any = [] if isinstance(after, int) else {}
        if isinstance(node, list) and isinstance(part, int):
            if part >= len(node):
                node.append(fresh)
                part = len(node) - 1
            node = node[part]
        else:
            node = node.setdefault(part, fresh)


def _ordered(schema: Any, value: Any) -> Any:
    """`value` with every object's keys in its schema's property order."""
    if is_object_schema(schema) and isinstance(value, dict):
        props: dict[str, Any] = schema["properties"]
        keys = [k for k in props if k in value] + [k for k in value if k not in props]
        return {k: _ordered(props.get(k), value[k]) for k in keys}
    if is_array_schema(schema) and isinstance(value, list):
        return [_ordered(schema["items"], v) for v in value]
    return value


def pointers_schema(spec: SchemaSpec, pointers: Sequence[Pointer]) -> dict[str, Any]:
    """The schema of a patch reply: an object keyed by pointer text, each the sub-schema there
    (a copy: the backend may keep or change it)."""
    return {
        "type": "object",
        "properties": {pointer_text(p): copy.deepcopy(spec.at(p)[0] or {}) for p in pointers},
        "required": [pointer_text(p) for p in pointers],
        "additionalProperties": False,
    }


def _request_prose(prompt: str, spec: SchemaSpec) -> str:
    parts, at = [], 0
    for mask in sorted(spec.masks):
        parts.append(prompt[at : mask.start])
        at = mask.end
    parts.append(prompt[at:])
    return " ".join("".join(parts).replace(CANONICAL_ASK, " ").split())


def pointers_prompt(
    prompt: str,
    spec: SchemaSpec,
    known: dict[str, Any],
    pointers: Sequence[Pointer],
    last_failure: str = "",
) -> str:
    """The backend prompt of a patch: the request's own words, the values kept, and one line per
    pointer asked (``"/address/zip": <its sub-schema>``)."""
    lines = [f"We are writing one JSON object for this request: {_request_prose(prompt, spec)}"]
    if known:
        lines += [
            "These values are already written; keep them in mind but do not repeat them:",
            json.dumps(known, ensure_ascii=False),
        ]
    lines.append(
        "Reply with only a JSON object whose keys are these JSON Pointers into that object, "
        "each with the value it must hold, matching its JSON Schema:"
    )
    lines += [
        f"{json.dumps(pointer_text(p), ensure_ascii=False)}: "
        f"{json.dumps(spec.at(p)[0] or {}, ensure_ascii=False)}"
        for p in pointers
    ]
    if last_failure:
        lines.append(f"The previous answer was rejected: {last_failure}. Fix that.")
    return "\n".join(lines)


def _resolve(reply: dict[str, Any], pointer: Pointer) -> tuple[bool, Any]:
    """The reply's value for `pointer`: under its pointer text, else at that path in the reply."""
    key = pointer_text(pointer)
    if key in reply:
        return True, reply[key]
    node: Any = reply
    for part in pointer:
        in_object = isinstance(node, dict) and isinstance(part, str) and part in node
        in_array = isinstance(node, list) and isinstance(part, int) and part < len(node)
        if not (in_object or in_array):
            return False, None
        node = node[part]
    return True, node


def _render(cached_text: str, value: dict[str, Any], fenced_prefix: bool) -> str:
    """`value` in the cached object's layout: its fence, compact or its indentation."""
    obj = extract_object(cached_text)
    body = cached_text[obj.start : obj.end] if obj is not None else ""
    fence = _FENCE.search(cached_text[: obj.start]) if obj is not None and fenced_prefix else None
    if body and "\n" not in body:
        rendered = json.dumps(value, ensure_ascii=False)
    else:
        m = re.search(r"\{\n( +)\S", body)
        rendered = json.dumps(value, ensure_ascii=False, indent=len(m.group(1)) if m else 2)
    if fence is None:
        return rendered
    return f"{fence.group(0)}\n{rendered}\n{fence.group(0)[:3]}"


def patch_answer(
    request: PatchRequest[SchemaSpec], generate: Generate, *, max_tokens_per_pointer: int
) -> list[StepOutcome] | None:
    """Keep verified leaves, ask the backend only for failing and missing pointers, merge.

    Attempt 0 patches; attempt 1 patches again and tells the backend why the last answer
    failed; attempt 2 and later regenerate the whole object from the user's prompt. None when
    the cached steps hold no object or the backend's reply holds none."""
    spec = request.spec
    if request.attempt >= 2:
        return _regenerate(request, generate)
    cached_text = "".join(request.steps)
    split = split_answer(cached_text)
    if split is None or len(request.checks) != len(split.steps):
        return None
    leaf_checks = request.checks[1:-1]
    staged: dict[Any, Any] = {}
    for leaf, check in zip(split.leaves, leaf_checks, strict=True):
        if check.ok:
            _insert(staged, leaf.pointer, leaf.value)
    tree: dict[str, Any] = _lists(staged)
    asked = missing_pointers(spec.schema, tree)
    if asked:
        failure = request.last_failure if request.attempt == 1 else ""
        prompt = pointers_prompt(request.prompt, spec, tree, asked, failure)
        budget = request.max_tokens or 32 + max_tokens_per_pointer * len(asked)
        reply = extract_object(_ask(generate, prompt, pointers_schema(spec, asked), budget))
        if reply is None:
            log.debug("patch reply holds no JSON object")
            return None
        for pointer in asked:
            found, value = _resolve(reply.value, pointer)
            if found:
                _set(tree, pointer, value)
    prefix_ok = request.checks[0].ok
    text = _render(cached_text, _ordered(spec.schema, tree), prefix_ok)
    served = split_answer(text)
    if served is None:
        return None
    return _outcomes(served.steps, [leaf.pointer for leaf in served.leaves], split.steps, asked)


def _outcomes(
    steps: Sequence[str], pointers: Sequence[Pointer], cached: Sequence[str], asked: list[Pointer]
) -> list[StepOutcome]:
    def origin(same: bool) -> StepOrigin:
        return StepOrigin.REUSED if same else StepOrigin.PATCHED

    out = [StepOutcome(steps[0], origin(steps[0] == cached[0]))]
    for text, pointer in zip(steps[1:-1], pointers, strict=True):
        patched = any(pointer[: len(a)] == a for a in asked)
        out.append(StepOutcome(text, origin(not patched)))
    out.append(StepOutcome(steps[-1], origin(steps[-1] == cached[-1])))
    return out


def _regenerate(request: PatchRequest[SchemaSpec], generate: Generate) -> list[StepOutcome] | None:
    """The last resort: the whole object again, from the user's prompt."""
    split = split_answer(_ask(generate, request.prompt, request.spec.schema, request.max_tokens))
    if split is None:
        return None
    return [StepOutcome(t, StepOrigin.GENERATED) for t in split.steps]

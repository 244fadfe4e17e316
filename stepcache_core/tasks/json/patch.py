"""Patch: keep the verified members, ask the backend only for the missing keys, merge them back
in the requested order and the cached answer's layout; as a last resort, regenerate it all."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from stepcache_core.tasks.base import Check, Generate, PatchRequest
from stepcache_core.tasks.json.spec import JsonSpec, canonical_json
from stepcache_core.tasks.json.text import (
    Member,
    extract_object,
    parse_member,
    render_member,
    set_comma,
)
from stepcache_core.tasks.json.verify import (
    ClassifiedStep,
    MemberCheck,
    describe_error,
    has_fence,
    object_validator,
)
from stepcache_core.types import StepOrigin, StepOutcome

log = logging.getLogger(__name__)

__all__ = ["missing_keys_prompt", "patch_answer", "steps_of"]

_FENCE_OPEN = re.compile(r"^[ \t]*(?P<mark>```|~~~)[^\n]*", re.M)


@dataclass(frozen=True, slots=True)
class _Layout:
    fence: str  # the opening fence line ("```json"), or "" for none
    lead: str  # whitespace before each member ("\n  ")
    compact: bool  # the cached object is on one line


def patch_answer(
    request: PatchRequest[JsonSpec],
    generate: Generate,
    *,
    prompt_for: Callable[[JsonSpec, dict[str, Any], Sequence[str], str], str],
    max_tokens_per_key: int,
) -> list[StepOutcome] | None:
    """Keep verified members, drop failed ones, ask the backend only for the missing keys.

    Attempt 0 patches; attempt 1 patches again and tells the backend why the last answer
    failed; attempt 2 and later regenerate the whole object from the user's prompt. None when
    the backend's reply holds no JSON object. `prompt_for` writes the backend prompt of a patch
    (`missing_keys_prompt` or a task's override of it); `max_tokens_per_key` sizes its budget.
    """
    spec = request.spec
    steps = steps_of(request)
    if request.attempt >= 2:
        return _regenerate(request, generate)
    kept: dict[str, tuple[str, Member]] = {}
    for step in steps:
        if step.member is not None and step.check.ok and step.member.key not in kept:
            kept[step.member.key] = (step.text, step.member)
    missing = [k for k in spec.keys if k not in kept]
    new: dict[str, Any] = {}
    if missing:
        known = {k: m.value for k, (_, m) in kept.items()}
        failure = request.last_failure if request.attempt == 1 else ""
        prompt = prompt_for(spec, known, missing, failure)
        budget = request.max_tokens or 32 + max_tokens_per_key * len(missing)
        reply = extract_object(generate(prompt, budget).text)
        if reply is None:
            log.debug("patch reply holds no JSON object")
            return None
        value = reply.value
        new = {k: value[k] for k in missing if k in value}
    order = [k for k in spec.keys if k in kept or k in new]
    order += [k for k in kept if k not in spec.keys]  # allowed extras, in cached order
    merged = {k: kept[k][1].value if k in kept else new[k] for k in order}
    for error in object_validator(spec).iter_errors(merged):
        log.debug("patched object fails its schema: %s", describe_error(error))
    prefix = steps[0] if steps and steps[0].member is None else None
    suffix = steps[-1] if len(steps) > 1 and steps[-1].member is None else None
    layout = _layout("".join(s.text for s in steps), spec)
    return _render(layout, order, kept, new, prefix, suffix)


def missing_keys_prompt(
    spec: JsonSpec, known: dict[str, Any], missing: Sequence[str], last_failure: str = ""
) -> str:
    """The backend prompt of a patch, short because every patch pays for it: the subject, the
    members kept (one line of JSON, context only), and only the `missing` keys with their
    schemas."""
    subject = spec.subject or "requested item"
    article = "an" if subject[:1].lower() in "aeiou" else "a"
    head = f"JSON object describing {article} {subject}"
    if known:
        kept = json.dumps(known, ensure_ascii=False, separators=(",", ":"))
        head += f"; already written: {kept}"
    wanted = ", ".join(json.dumps(k, ensure_ascii=False) for k in missing)
    lines = [head, f"Reply with only a JSON object with exactly these keys: {wanted}."]
    typed = [
        f"; {json.dumps(k, ensure_ascii=False)} must match {canonical_json(s)}"
        for k in missing
        if (s := spec.value_schema(k)) is not None
    ]
    lines.append("Realistic, non-empty values" + "".join(typed) + ".")
    if last_failure:
        lines.append(f"The previous answer was rejected: {last_failure}. Fix that.")
    return "\n".join(lines)


def steps_of(request: PatchRequest[JsonSpec]) -> list[ClassifiedStep]:
    """The cached steps with their members parsed back; no members without one object."""
    steps, checks = list(request.steps), list(request.checks)
    obj = extract_object("".join(steps))
    if obj is None or len(checks) != len(steps):
        return [ClassifiedStep(t, None, Check(False, "no JSON object")) for t in steps]
    if obj.steps() == steps:
        members: list[Member | None] = [None, *map(parse_member, steps[1:-1]), None]
    else:
        members = [parse_member(t) for t in steps]
    return [ClassifiedStep(t, m, c) for t, m, c in zip(steps, members, checks, strict=True)]


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


def _render(
    layout: _Layout,
    order: list[str],
    kept: dict[str, tuple[str, Member]],
    new: dict[str, Any],
    prefix: ClassifiedStep | None,
    suffix: ClassifiedStep | None,
) -> list[StepOutcome]:
    """Prefix, members in `order`, suffix: cached text where it still fits, else rendered."""
    fenced = bool(layout.fence)
    out: list[StepOutcome] = []
    if prefix is not None and prefix.check.ok and has_fence(prefix.text) == fenced:
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
                text = render_member(key, member.value, lead, comma=comma, compact=layout.compact)
            out.append(StepOutcome(text, StepOrigin.REUSED))
        else:
            text = render_member(key, new[key], lead, comma=comma, compact=layout.compact)
            out.append(StepOutcome(text, StepOrigin.PATCHED))
    close = ("}" if layout.compact else "\n}") + ("\n" + layout.fence[:3] if fenced else "")
    if suffix is not None and (suffix.check.ok or _text_ok(suffix.check)):
        body = suffix.text.lstrip(" \t")
        shaped = body.startswith("}") if layout.compact else body.startswith("\n")
        if shaped and has_fence(suffix.text) == fenced:
            close = suffix.text
    same = suffix is not None and close == suffix.text
    out.append(StepOutcome(close, StepOrigin.REUSED if same else StepOrigin.PATCHED))
    return out


def _regenerate(request: PatchRequest[JsonSpec], generate: Generate) -> list[StepOutcome] | None:
    """The last resort: the whole object again, from the user's prompt."""
    keys = ", ".join(request.spec.keys)
    prompt = f"{request.prompt}\n\nReply with only one JSON object with exactly these keys: {keys}."
    obj = extract_object(generate(prompt, request.max_tokens).text)
    if obj is None:
        return None
    return [StepOutcome(t, StepOrigin.GENERATED) for t in obj.steps()]


def _text_ok(check: Check) -> bool:
    return isinstance(check, MemberCheck) and check.text_ok

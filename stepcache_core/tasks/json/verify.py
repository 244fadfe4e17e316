"""Verify: each cached step (prefix, one member per step, suffix) checked against the new request,
the integrity of a whole answer, and whether the passing members are worth a patch."""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from jsonschema import Draft202012Validator

from stepcache_core.tasks.base import Check
from stepcache_core.tasks.json.spec import NON_EMPTY, JsonSpec, canonical_json
from stepcache_core.tasks.json.text import (
    Member,
    extract_object,
    find_objects,
    parse_member,
)

__all__ = [
    "FENCE_LINE",
    "ClassifiedStep",
    "MemberCheck",
    "check_integrity",
    "classify_steps",
    "describe_error",
    "has_fence",
    "object_validator",
    "reusable_keys_suffice",
]


@functools.lru_cache(maxsize=256)
def object_validator(spec: JsonSpec) -> Any:
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
    for error in _value_validator(canonical_json(schema)).iter_errors(value):
        return describe_error(error, key)
    return ""


def describe_error(error: Any, key: str | None = None) -> str:
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


def has_fence(text: str) -> bool:
    return "```" in text or "~~~" in text


#: A code-fence line (```json, ~~~), with its line break.
FENCE_LINE = re.compile(r"^[ \t]*(?:```|~~~)[^\n]*\n?", re.M)


def has_prose(text: str) -> bool:
    """True when `text` (what surrounds an object) holds more than whitespace and fences."""
    return bool(FENCE_LINE.sub("", text).strip())


def _prose_problem(step: str, stale: frozenset[str], spec: JsonSpec) -> str:
    old = sorted(stale & _words(step))
    if old:
        return f"mentions the previous subject ({', '.join(old)})"
    if spec.bare and has_fence(step):
        return "has a code fence, the request asks for raw JSON"
    if spec.only_object and has_prose(step.replace("{", "").replace("}", "")):
        return "prose around the object, the request asks for the object only"
    return ""


@dataclass(frozen=True, slots=True)
class ClassifiedStep:
    text: str
    member: Member | None
    check: Check


def classify_steps(steps: Sequence[str], cached: JsonSpec, spec: JsonSpec) -> list[ClassifiedStep]:
    steps = list(steps)
    obj = extract_object("".join(steps))
    if obj is None:
        bad = MemberCheck(False, "no single complete JSON object", wanted=spec.keys)
        return [ClassifiedStep(t, None, bad) for t in steps]
    if obj.steps() == steps:
        members: list[Member | None] = [None, *map(parse_member, steps[1:-1]), None]
    else:
        members = [parse_member(t) for t in steps]
    stale = cached.subject_words - spec.subject_words
    allowed = set(spec.keys) | set(spec.optional)
    seen: set[str] = set()
    out: list[ClassifiedStep] = []
    for text, member in zip(steps, members, strict=True):
        if member is None:
            problem = _prose_problem(text, stale, spec)
            out.append(
                ClassifiedStep(text, None, MemberCheck(not problem, problem, wanted=spec.keys))
            )
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
        out.append(ClassifiedStep(text, member, check))
    dropped = _dropped_words(out, cached, spec)
    for i, step in enumerate(out):
        if step.member is None and step.check.ok:
            old = sorted(dropped & _words(step.text))
            if old:
                problem = f"mentions what the new object drops ({', '.join(old)})"
                out[i] = ClassifiedStep(
                    step.text, None, MemberCheck(False, problem, wanted=spec.keys)
                )
    present = {s.member.key for s in out if s.member is not None and s.check.ok}
    missing = tuple(k for k in spec.keys if k not in present)
    if missing and out and out[-1].member is None:
        last = out[-1]
        reason = "; ".join(r for r in (last.check.reason, f"missing keys: {list(missing)}") if r)
        check = MemberCheck(False, reason, wanted=spec.keys, missing=missing, text_ok=last.check.ok)
        out[-1] = ClassifiedStep(last.text, None, check)
    return out


def _dropped_words(steps: Sequence[ClassifiedStep], cached: JsonSpec, spec: JsonSpec) -> set[str]:
    """Words the prose around a cached object may not keep: the values of members that fail
    (they are dropped or rewritten), the names of failing keys the new request does not have,
    and the cached key count when the new request has another ("the 3 fields"). Words of one
    or two letters are left out ("in" of ``in_stock``); numbers are kept."""
    allowed = set(spec.keys) | set(spec.optional)
    words: set[str] = set()
    for step in steps:
        member = step.member
        if member is None or step.check.ok:
            continue
        if member.key not in allowed:
            words |= _words(member.key)
        if isinstance(member.value, (str, int, float)) and not isinstance(member.value, bool):
            words |= _words(str(member.value))
    if len(cached.keys) != len(spec.keys):
        words.add(str(len(cached.keys)))
    return {w for w in words if len(w) > 2 or w.isdigit()}


def reusable_keys_suffice(checks: Sequence[Check]) -> bool | None:
    """True when at least half of the requested keys have a passing member step; None when the
    checks name no requested keys (they are not member checks)."""
    wanted = next((c.wanted for c in checks if isinstance(c, MemberCheck) and c.wanted), ())
    if not wanted:
        return None
    reusable = {c.key for c in checks if isinstance(c, MemberCheck) and c.ok and c.key in wanted}
    return 2 * len(reusable) >= len(wanted)


def check_integrity(text: str, spec: JsonSpec) -> Check:
    """Exactly one valid object with the required keys, allowed keys only, fitting values.

    The failure is a proof (`Check.wrong`) only when every key of the object was asked for (the
    model read the key list as we did) and every problem is a requested key left out or a value
    that breaks the type or schema the prompt gave for its key; an extra or repeated key, an empty
    value for a key without a type, a fence or a layout is no proof that the answer is wrong."""
    scan = find_objects(text)
    if scan.problem:
        return Check(False, scan.problem)
    obj = scan.objects[0]
    problems = [f"key {k!r} repeated" for k in obj.duplicates]
    errors = sorted(
        object_validator(spec).iter_errors(obj.value), key=lambda e: list(e.absolute_path)
    )
    problems += [describe_error(e) for e in errors]
    value_errors_only = bool(errors) and not obj.duplicates
    if spec.bare and has_fence(text):
        problems.append("has a code fence, the request asks for raw JSON")
        value_errors_only = False
    if spec.only_object and has_prose(text[: obj.start] + "\n" + text[obj.end :]):
        problems.append("prose around the object, the request asks for the object only")
        value_errors_only = False
    if spec.compact and "\n" in text[obj.start : obj.end]:
        problems.append("the object spans several lines, the request asks for one line")
        value_errors_only = False
    keys = set(obj.value)
    wrong = (
        value_errors_only
        and bool(keys)
        and keys <= set(spec.keys) | set(spec.optional)
        and all(e.validator == "required" or _typed_value_error(e, spec) for e in errors)
    )
    return Check(not problems, "; ".join(problems), wrong=wrong)


def _typed_value_error(error: Any, spec: JsonSpec) -> bool:
    """True when `error` is about a value under a key whose schema the prompt gave."""
    path = list(error.absolute_path)
    return bool(path) and isinstance(path[0], str) and spec.value_schema(path[0]) is not None

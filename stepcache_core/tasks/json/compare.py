"""Compare and shapes: how a new JSON-object request differs from a cached one, and the keys that
find the cached ones worth comparing."""

from __future__ import annotations

import json

from stepcache_core.tasks.base import Delta, DeltaKind
from stepcache_core.tasks.json.spec import JsonSpec

__all__ = ["compare_specs", "object_shapes"]


def compare_specs(cached_prompt: str, cached: JsonSpec, prompt: str, spec: JsonSpec) -> Delta:
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
    if changes and not (cached.understood and spec.understood):
        # Both prompts hold the same words the task does not read ("every string value must
        # be 'N/A'", "omit the age"): a member patched without them may break them.
        return Delta(
            frozenset({DeltaKind.CORE}),
            "; ".join(changes) + ", in a request with words the task does not read",
        )
    if changes:
        return Delta(frozenset({DeltaKind.KEYS}), "; ".join(changes))
    if " ".join(cached_prompt.split()) != " ".join(prompt.split()):
        return Delta(frozenset({DeltaKind.REWORDING}), "same keys and subject, other words")
    return Delta(frozenset(), "same request")


def object_shapes(spec: JsonSpec) -> tuple[str, str]:
    """The subject's words and the layout asked for, first with the keys and their schemas
    (rewordings of one request share it), then alone (variants with keys added, removed or
    renamed share that)."""
    subject = "\x00".join([*sorted(spec.subject_words), f"compact={spec.compact}|bare={spec.bare}"])
    keys = json.dumps(
        [
            sorted(spec.keys),
            sorted(spec.optional),
            spec.forbid_extra,
            sorted(spec.property_schemas),
        ]
    )
    return (f"keys\x00{subject}\x00{keys}", f"subject\x00{subject}")

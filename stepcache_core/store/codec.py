"""How an entry is stored in Chroma: the schema version, collection and row names, and the
encoding of an entry as one document plus metadata (and back, a damaged row reading as absent).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import re
from collections.abc import Sequence
from typing import Any

from stepcache_core.errors import SchemaVersionError
from stepcache_core.store.entry import Entry

log = logging.getLogger("stepcache")


#: Version of the stored layout (key derivation, document and metadata fields, collections).
#: Version 2: keys hash a JSON array (injective), documents carry a sha256 digest of their
#: content. Version 3: vectors live in one collection per scope; the main collection keeps rows.
SCHEMA_VERSION = 3


_SCHEMA_KEY = "stepcache_schema"


_SCOPE_NAME = re.compile(r"stepcache-scope-[0-9a-f]{40}")


def _check_schema(name: str, handle: Any) -> None:
    found = (handle.metadata or {}).get(_SCHEMA_KEY)
    if found != SCHEMA_VERSION:
        raise SchemaVersionError(
            f"collection {name!r} has StepCache schema version {found!r}; this "
            f"StepCache reads and writes version {SCHEMA_VERSION} only and will not guess. "
            "Use another collection name, or delete the collection (chroma CLI, or "
            "client.delete_collection) to start an empty cache."
        )


def _hash(parts: Sequence[str]) -> str:
    raw = json.dumps(list(parts), ensure_ascii=False)
    return hashlib.sha256(raw.encode("utf-8", "surrogatepass")).hexdigest()


def _placeholder(key: str) -> list[float]:
    """The 1-d vector of a main or registry row: spread by key (identical points slow HNSW)."""
    digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).digest()
    return [int.from_bytes(digest[:4], "big") / 2**32]


def _scope_of(meta: Any) -> str:
    """The scope collection a main row names ("" for none, or for anything but a scope name)."""
    scope = meta.get("scope") if isinstance(meta, dict) else None
    return scope if isinstance(scope, str) and _SCOPE_NAME.fullmatch(scope) else ""


def _slug(name: str) -> str:
    cleaned = "".join(c if c.isalnum() or c in "._-" else "-" for c in name)
    return cleaned.strip("-._") or "default"


def _digest(prompt: str, answer: str, steps: Sequence[str], payload: str | None) -> str:
    body = json.dumps([prompt, answer, list(steps), payload], ensure_ascii=False)
    return hashlib.sha256(body.encode("utf-8", "surrogatepass")).hexdigest()


def _encode(entry: Entry, *, reusable: bool, scope: str = "") -> tuple[str, dict[str, Any]]:
    """A main-collection document and metadata for `entry`: the whole entry, one record.

    `scope` names the scope collection holding the entry's vector ("" for none).
    """
    document = json.dumps(
        {
            "prompt": entry.prompt,
            "answer": entry.answer,
            "steps": list(entry.steps),
            "payload": entry.payload,
            "registry": entry.registry,
            "sha256": _digest(entry.prompt, entry.answer, entry.steps, entry.payload),
            # exact: Chroma keeps float metadata to ~16 digits (the metadata copy is for queries)
            "created_at": float(entry.created_at),
            "cost": [int(entry.cost_tokens), float(entry.cost_seconds)],
        },
        ensure_ascii=False,
    )
    meta = {
        "namespace": entry.namespace,
        "tenant": entry.tenant,
        "context": entry.context,
        "task": entry.task or "",
        "reusable": reusable,
        "created_at": float(entry.created_at),
        "scope": scope,
        _SCHEMA_KEY: SCHEMA_VERSION,
    }
    return document, meta


def _created_at(meta: Any) -> float:
    try:
        value = float(meta["created_at"])
    except (KeyError, TypeError, ValueError):
        return -math.inf  # unreadable rows go first
    return value if math.isfinite(value) else -math.inf


def _in_scope(entry: Entry, namespace: str, tenant: str, context: str, task: str | None) -> bool:
    """The scope of the searched collection, checked again on the decoded row (defence in depth)."""
    return (
        entry.reusable
        and (entry.namespace, entry.tenant, entry.context) == (namespace, tenant, context)
        and (task is None or entry.task == task)
    )


def _cost(value: Any) -> tuple[int, float]:
    """An entry's stored cost, (0, 0.0) when absent (older rows) or unreadable (never trusted
    for anything but the saved-cost estimate)."""
    if (
        isinstance(value, list)
        and len(value) == 2
        and isinstance(value[0], int)
        and isinstance(value[1], int | float)
        and value[0] >= 0
        and math.isfinite(value[1])
        and value[1] >= 0
    ):
        return value[0], float(value[1])
    return 0, 0.0


def _decode(key: str, document: str | None, meta: Any) -> Entry | None:
    """Rebuild an Entry from a Chroma row; a corrupt, torn or other-version row reads as absent."""
    try:
        if meta[_SCHEMA_KEY] != SCHEMA_VERSION:
            raise ValueError(f"row schema version {meta[_SCHEMA_KEY]!r} != {SCHEMA_VERSION}")
        data = json.loads(document or "")
        prompt, answer, steps, payload = (
            data["prompt"],
            data["answer"],
            data["steps"],
            data["payload"],
        )
        if not (
            isinstance(prompt, str)
            and isinstance(answer, str)
            and isinstance(steps, list)
            and all(isinstance(s, str) for s in steps)
            and (payload is None or isinstance(payload, str))
        ):
            raise TypeError("document fields have the wrong types")
        if data["sha256"] != _digest(prompt, answer, steps, payload):
            raise ValueError("document digest mismatch (torn or altered row)")
        registry = data.get("registry", "")  # rows written before registries were recorded: ""
        if not isinstance(registry, str):
            raise TypeError("the registry field has the wrong type")
        task = meta["task"]
        fields = (meta["namespace"], meta["context"], meta.get("tenant", ""), task)
        if not all(isinstance(f, str) for f in fields) or not isinstance(meta["reusable"], bool):
            raise TypeError("metadata fields have the wrong types")
        created_at = float(meta["created_at"])
        exact = data.get("created_at")
        if isinstance(exact, float) and abs(exact - created_at) <= 1e-6 * abs(created_at):
            created_at = exact
        if math.isnan(created_at):
            raise ValueError("created_at is NaN")
        cost_tokens, cost_seconds = _cost(data.get("cost"))
        return Entry(
            key=key,
            namespace=meta["namespace"],
            context=meta["context"],
            prompt=prompt,
            answer=answer,
            steps=tuple(steps),
            tenant=meta.get("tenant", ""),
            task=task or None,
            reusable=meta["reusable"],
            payload=payload,
            created_at=created_at,
            registry=registry,
            cost_tokens=cost_tokens,
            cost_seconds=cost_seconds,
        )
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        log.warning("stepcache: ignoring corrupt cache row %s: %r", key, exc)
        return None

"""What a cached request is: `Entry`, a search hit (`Neighbour`), its exact key, and a
store's `Bounds` (size and age limits).
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import dataclass, field

from stepcache_core.errors import ConfigError


@dataclass(frozen=True, slots=True)
class Entry:
    """One cached request and its answer."""

    key: str
    namespace: str
    context: str
    prompt: str
    answer: str
    steps: tuple[str, ...]
    task: str | None = None
    reusable: bool = False  # verified by its task: may serve as a template for other requests
    payload: str | None = None  # adapter data returned on exact hits (e.g. serialized generations)
    tenant: str = ""
    created_at: float = field(default_factory=time.time)
    #: The identity of the task registry that judged the answer (`TaskRegistry.identity`): an
    #: exact hit is served only to a reader whose registry is the same.
    registry: str = ""
    #: What the backend spent writing the answer (prompt + completion tokens, seconds); 0 when
    #: unknown. An answer served from this entry reports it as saved.
    cost_tokens: int = 0
    cost_seconds: float = 0.0


@dataclass(frozen=True, slots=True)
class Neighbour:
    entry: Entry
    similarity: float  # cosine similarity, 1.0 = same direction


def normalize_prompt(prompt: str) -> str:
    """The prompt as the exact tier sees it: runs of whitespace collapsed, ends stripped."""
    return " ".join(prompt.split())


def entry_key(namespace: str, tenant: str, context: str, prompt: str) -> str:
    """The exact-match key of a request (whitespace-normalised prompt).

    The parts are hashed as a JSON array, an injective encoding: no namespace, tenant, context or
    prompt text (separator characters, quotes, another tenant's name) can make two different
    scopes share a key.
    """
    raw = json.dumps([namespace, tenant, context, normalize_prompt(prompt)], ensure_ascii=False)
    return hashlib.sha256(raw.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass(frozen=True, slots=True)
class Bounds:
    """Size and age limits of a store.

    `max_entries`: when a write takes the store above it, the least recently created entries are
    deleted down to a low-water mark (95 % of it for bounds of 20 and more, else exactly it), so
    the scan that finds them runs once per many writes. `ttl_seconds`: an entry older than this
    is neither returned nor used as a template, and is deleted on a later write.
    """

    max_entries: int | None = None
    ttl_seconds: float | None = None

    def __post_init__(self) -> None:
        if self.max_entries is not None and (
            isinstance(self.max_entries, bool) or self.max_entries < 1
        ):
            raise ConfigError(f"max_entries must be >= 1 or None, got {self.max_entries!r}")
        ttl = self.ttl_seconds
        if ttl is not None and not (ttl > 0 and math.isfinite(ttl)):
            raise ConfigError(f"ttl_seconds must be a positive finite number or None, got {ttl!r}")

    def cutoff(self, now: float) -> float | None:
        """Entries created before this instant are expired (None: no TTL)."""
        return None if self.ttl_seconds is None else now - self.ttl_seconds

    def expired(self, created_at: float, now: float) -> bool:
        cutoff = self.cutoff(now)
        return cutoff is not None and created_at < cutoff

    def low_water(self) -> int:
        """How many entries eviction keeps."""
        assert self.max_entries is not None
        return self.max_entries - self.max_entries // 20

    def purge_interval(self) -> float:
        """At most one TTL purge per this many seconds per store object."""
        return 0.0 if self.ttl_seconds is None else min(60.0, self.ttl_seconds / 4)

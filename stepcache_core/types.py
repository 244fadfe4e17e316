"""Value types that flow through the engine: completions, steps, results."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Path(StrEnum):
    """How a request was answered."""

    EXACT = "exact"  # the same prompt was cached: stored answer, no embedding, no backend call
    REUSE = "reuse"  # every cached step verified against the new request: no backend call
    PATCH = "patch"  # failing steps regenerated (backend or deterministic fallback), rest reused
    SKIP = (
        "skip"  # a neighbour existed but reuse was judged unsafe or unproductive: full generation
    )
    MISS = "miss"  # nothing reusable nearby: full generation


class StepOrigin(StrEnum):
    """Where the text of one served step came from."""

    REUSED = "reused"
    PATCHED = "patched"
    GENERATED = "generated"
    FALLBACK = "fallback"


@dataclass(frozen=True, slots=True)
class Completion:
    """One backend answer with the backend's own token counts."""

    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    finish_reason: str | None = None


@dataclass(frozen=True, slots=True)
class StepOutcome:
    """One step of a served answer and where it came from."""

    text: str
    origin: StepOrigin


@dataclass(frozen=True, slots=True)
class Result:
    """What `StepCache.generate` returns."""

    text: str
    path: Path
    steps: tuple[StepOutcome, ...] = ()
    prompt_tokens: int = 0
    completion_tokens: int = 0
    backend_calls: int = 0
    task: str | None = None
    similarity: float | None = None
    cached_prompt: str | None = None
    fallback_used: bool = False
    verified: bool = False
    reason: str = ""
    payload: str | None = None  # adapter data stored with the entry, returned on exact hits
    timings: Mapping[str, float] = field(default_factory=dict)
    #: Estimated backend tokens and seconds this answer did not cost: the stored cost of the
    #: reused entry (what the model spent writing it) less what this request spent; 0 when
    #: nothing was reused or the entry's cost is unknown.
    tokens_saved: int = 0
    seconds_saved: float = 0.0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def summary(self) -> dict[str, Any]:
        """How the answer was served, JSON-ready: what adapters attach to their responses
        under the key ``"stepcache"`` (see docs/metadata.md)."""
        return {
            "path": self.path.value,
            "reason": self.reason,
            "task": self.task,
            "similarity": self.similarity,
            "verified": self.verified,
            "fallback_used": self.fallback_used,
            "backend_calls": self.backend_calls,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "tokens_spent": self.total_tokens,
            "backend_seconds": float(self.timings.get("backend", 0.0)),
            "tokens_saved": self.tokens_saved,
            "seconds_saved": self.seconds_saved,
        }

    @property
    def from_cache(self) -> bool:
        """True when no backend call was made."""
        return self.backend_calls == 0 and self.path in (Path.EXACT, Path.REUSE, Path.PATCH)

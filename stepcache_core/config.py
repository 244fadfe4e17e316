"""Engine settings as a small frozen value object, validated on construction."""

from __future__ import annotations

from dataclasses import dataclass

from stepcache_core.errors import ConfigError


@dataclass(frozen=True, slots=True)
class CacheConfig:
    """How eagerly StepCache reuses, repairs and stores answers.

    Similarities are cosine similarities in [-1, 1]; higher means more alike.
    """

    #: A cached request of the same task is tried as a template only at or above this similarity.
    #: Verification, not similarity, decides reuse, so this can stay low.
    min_similarity: float = 0.5
    #: With semantic reuse on, a request no task recognises whose nearest cached request is at or
    #: above this similarity but not reused is a `skip`, not a `miss` (a request of a task is a
    #: `skip` when its task refused the cached requests it was compared with).
    min_skip_similarity: float = 0.5
    #: Opt-in whole-answer reuse for prompts no task recognises (None: exact match only).
    semantic_min_similarity: float | None = None
    #: How many nearest neighbours are tried as templates.
    candidates: int = 4
    #: Backend repairs after the first patch attempt fails its integrity check.
    max_repairs: int = 2
    #: Use the task's deterministic fallback when patching and repairs fail.
    fallback: bool = True
    #: Backend repairs of a freshly generated answer that fails its check, before the task's
    #: fallback (only when the fallback is on and the task has one; else `max_repairs` applies).
    max_miss_repairs: int = 0
    #: Token cap passed to the backend for full generations (None: the backend's default).
    max_tokens: int | None = None
    #: Token cap for patch calls (None: same as max_tokens).
    patch_max_tokens: int | None = None
    #: Prompts longer than this bypass the cache (answered by the backend, never stored).
    max_prompt_chars: int = 100_000
    #: Answers longer than this are served as the model wrote them: never parsed, verified or
    #: stored (counted in `StepCache.stats()["oversized"]`). It also bounds what `put` stores.
    max_answer_chars: int = 100_000

    def __post_init__(self) -> None:
        for name in ("min_similarity", "min_skip_similarity"):
            value = getattr(self, name)
            if not -1.0 <= value <= 1.0:
                raise ConfigError(f"{name} must be within [-1, 1], got {value}")
        sem = self.semantic_min_similarity
        if sem is not None and not 0.0 < sem <= 1.0:
            raise ConfigError(f"semantic_min_similarity must be within (0, 1], got {sem}")
        if self.candidates < 1:
            raise ConfigError(f"candidates must be >= 1, got {self.candidates}")
        for name in ("max_repairs", "max_miss_repairs"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be >= 0, got {getattr(self, name)}")
        for name in ("max_tokens", "patch_max_tokens"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ConfigError(f"{name} must be >= 1 or None, got {value}")
        for name in ("max_prompt_chars", "max_answer_chars"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} must be an int >= 1, got {value!r}")

"""One request's state while it flows through the engine, and what its answer is stored as."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from stepcache_core.config import CacheConfig
from stepcache_core.store import Entry, entry_key
from stepcache_core.tasks.base import Check, Task
from stepcache_core.types import Completion, StepOutcome

log = logging.getLogger("stepcache")

#: Called with each served step as soon as it is final (reused steps before any backend call).
StepListener = Callable[[StepOutcome], None]


@dataclass(slots=True)
class Usage:
    """Backend work done for one request."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    calls: int = 0
    seconds: float = 0.0

    def add(self, completion: Completion, seconds: float) -> None:
        self.prompt_tokens += completion.prompt_tokens
        self.completion_tokens += completion.completion_tokens
        self.calls += 1
        self.seconds += seconds


@dataclass(frozen=True, slots=True)
class Patchable:
    """A cached entry whose transferred steps partly verify: worth patching."""

    entry: Entry
    similarity: float | None
    steps: list[str]
    checks: list[Check]
    failure: str

    @property
    def passed(self) -> int:
        return sum(c.ok for c in self.checks)


@dataclass(slots=True)
class Request:
    """One request's identity and bookkeeping while it flows through the engine."""

    prompt: str
    namespace: str
    tenant: str
    context: str
    can_generate: bool  # False in `lookup`: full generations are not allowed
    has_backend: bool
    registry: str = ""  # the identity of the task registry answering it
    on_step: StepListener | None = None
    shapes: tuple[str, ...] = ()  # the request's shape keys (most specific first), if any
    usage: Usage = field(default_factory=Usage)
    timings: dict[str, float] = field(default_factory=dict)
    started: float = field(default_factory=time.perf_counter)
    emitted: list[str] = field(default_factory=list)  # step texts already given to `on_step`
    #: The stored cost (tokens, seconds) of the entry the answer reuses, once one is reused.
    reused_cost: tuple[int, float] | None = None

    def reuse(self, entry: Entry) -> None:
        """Note that the answer is served from `entry`: its stored cost is what is saved."""
        self.reused_cost = (entry.cost_tokens, entry.cost_seconds)

    def cost(self) -> tuple[int, float]:
        """What the answer cost the backend: this request's own backend work, else (an answer
        served from a cached entry) the entry's stored cost."""
        spent = self.usage.prompt_tokens + self.usage.completion_tokens
        reused = self.reused_cost or (0, 0.0)
        return max(spent, reused[0]), max(self.usage.seconds, reused[1])

    def emit(self, outcomes: Sequence[StepOutcome]) -> None:
        """Hand the steps beyond those already emitted to the listener, in order."""
        if self.on_step is None:
            return
        done = len(self.emitted)
        if [o.text for o in outcomes[:done]] != self.emitted:
            log.warning("stepcache: served steps differ from the steps already streamed")
            return
        for outcome in outcomes[done:]:
            self.emitted.append(outcome.text)
            self.on_step(outcome)

    @property
    def key(self) -> str:
        return entry_key(self.namespace, self.tenant, self.context, self.prompt)


def answer_entry(
    req: Request,
    config: CacheConfig,
    task: Task[Any] | None,
    text: str,
    verified: bool,
    payload: str | None = None,
) -> Entry:
    """The store entry for an answer to `req`: reusable when verified, or when it has no task
    and semantic reuse is opted in."""
    steps = task.segment(text) if task is not None else [text]
    tokens, seconds = req.cost()
    return Entry(
        key=req.key,
        namespace=req.namespace,
        context=req.context,
        prompt=req.prompt,
        answer=text,
        steps=tuple(steps),
        task=task.name if task else None,
        reusable=verified or (task is None and config.semantic_min_similarity is not None),
        payload=payload,
        tenant=req.tenant,
        registry=req.registry,
        cost_tokens=tokens,
        cost_seconds=seconds,
    )

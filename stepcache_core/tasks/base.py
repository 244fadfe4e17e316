"""The Task protocol: what a task family must provide so its answers can be reused step by step.

A task bundles detection (prompt -> spec), segmentation, per-step verification against a *new*
request, a patch plan for the steps that fail, an integrity check of the stitched answer, the
skip-reuse predicate and an optional deterministic fallback.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Generic, Protocol, TypeVar

from stepcache_core.tasks.understanding import SHARED_LEXICON, Lexicon, Mask, residue
from stepcache_core.types import Completion, StepOutcome

S = TypeVar("S")

#: Turns the backend's text so far into every step of the answer it yields (kept steps included).
#: Must be prefix-stable: a step before the last one never changes as more text arrives.
Assemble = Callable[[str], Sequence[StepOutcome]]


class Generate(Protocol):
    """What a task calls to ask the backend for text; the engine supplies it and accounts every
    call's tokens and time. With `assemble`, the engine may stream the answer's steps to the
    caller while the backend writes them, each once complete and verified."""

    def __call__(
        self, prompt: str, max_tokens: int | None, assemble: Assemble | None = None
    ) -> Completion: ...


class DeltaKind(StrEnum):
    """One kind of difference between a cached request and a new one."""

    REWORDING = "rewording"  # same meaning, other words
    RENAME = "rename"  # a variable renamed
    CONSTANTS = "constants"  # numbers changed
    KEYS = "keys"  # requested JSON keys added, removed or renamed
    CORE = "core"  # a different question: reuse must be skipped


@dataclass(frozen=True, slots=True)
class Delta:
    """What changed between the cached request and the new one."""

    kinds: frozenset[DeltaKind]
    reason: str = ""

    @property
    def core(self) -> bool:
        return DeltaKind.CORE in self.kinds


@dataclass(frozen=True, slots=True)
class Check:
    """A verifier's verdict on one step or on a whole answer. A failing check is either a proof
    that the text is wrong for the request (`wrong`: a false equation, a wrong final value) or
    only a failure to verify it (unreadable, truncated, a format it cannot judge)."""

    ok: bool
    reason: str = ""
    wrong: bool = False


PASS = Check(True)


@dataclass(frozen=True, slots=True)
class PatchRequest(Generic[S]):
    """Everything a task needs to patch a cached answer for a new request."""

    prompt: str
    spec: S
    steps: Sequence[str]  # the cached steps, already transferred to the new request
    checks: Sequence[Check]  # one verdict per step
    attempt: int = 0  # 0 for the first patch, then 1.. for repairs
    last_failure: str = ""  # why the previous attempt's stitched answer was rejected
    max_tokens: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class Task(ABC, Generic[S]):
    """A family of requests whose answers can be verified step by step."""

    #: Unique, stable name; stored with every cached answer.
    name: str = "task"
    #: Bumped whenever the task would read a stored request or answer differently: entries
    #: written under another version of the registry are never served as exact hits.
    version: str = "1"
    #: The closed, reviewed phrasings two requests of this task may differ in without asking
    #: something else (see `stepcache_core.tasks.understanding`).
    lexicon: Lexicon = SHARED_LEXICON

    @abstractmethod
    def detect(self, prompt: str) -> S | None:
        """Parse the request's constraints, or None when this task cannot verify answers to it."""

    @abstractmethod
    def segment(self, text: str) -> list[str]:
        """Split an answer into ordered steps; `stitch(segment(t)) == t` must hold."""

    @abstractmethod
    def compare(self, cached_prompt: str, cached: S, prompt: str, spec: S) -> Delta:
        """Classify what changed between a cached request and the new one."""

    @abstractmethod
    def verify(self, steps: Sequence[str], cached: S, spec: S) -> list[Check]:
        """Check each cached (transferred) step against the new request's spec."""

    @abstractmethod
    def integrity(self, text: str, spec: S) -> Check:
        """Check a whole stitched answer; a failing answer is never served from cache."""

    @abstractmethod
    def patch(self, request: PatchRequest[S], generate: Generate) -> list[StepOutcome] | None:
        """Regenerate the failing steps; return every step of the new answer, or None."""

    def spans(self, prompt: str, spec: S) -> Sequence[Mask]:
        """The parts of `prompt` that `spec` accounts for (an equation, a key list), masked out of
        the residue. Default: none, so two requests share steps only when every other word of
        them matches up to the lexicon: a task must say what it parsed to allow more."""
        return ()

    def residue(self, prompt: str, spec: S) -> tuple[str, ...]:
        """Everything in `prompt` this task did not parse, as compared between two requests:
        a cached answer is reused or patched only for a request with the same residue."""
        return residue(prompt, self.spans(prompt, spec), self.lexicon)

    def proven_wrong(self, text: str, spec: S, failure: Check) -> bool:
        """True only when this task's parse of the request is certain and `failure` (its
        integrity verdict on `text`) proves the answer wrong; only such an answer is repaired
        or replaced by the fallback. Default False: a model's answer that fails the check is
        served as written, marked unverified, and never becomes a template."""
        return False

    def relayout(self, text: str, spec: S) -> str | None:
        """`text` with only its layout changed to the one the request asks for for certain
        (whitespace, fences: no word, key or value), or None (nothing to change, or no such
        rule). The engine serves it in place of a model's answer that fails `integrity` only
        when it then passes. Default None."""
        return None

    def shapes(self, prompt: str, spec: S) -> Sequence[str]:
        """Keys shared by requests of one structure whose answers this task can adapt to one
        another (other numbers, variable, keys or words), most specific first: the engine tries
        the latest entries of each of the request's shapes as templates, in that order, before
        any embedding. Empty: no such keys."""
        return ()

    def transfer(self, step: str, cached: S, spec: S) -> str:
        """Adapt one cached step to the new request before it is verified (e.g. rename)."""
        return step

    def transfer_steps(self, steps: Sequence[str], cached: S, spec: S) -> list[str]:
        """Adapt a whole cached answer, its steps in order (a task may carry what it learns from
        one step to the next); the default is `transfer` on each step."""
        return [self.transfer(s, cached, spec) for s in steps]

    def stitch(self, steps: Sequence[str]) -> str:
        """Join steps back into one answer."""
        return "".join(steps)

    def kept_prefix(self, checks: Sequence[Check]) -> int:
        """How many leading steps every patch and the fallback keep verbatim (streamed early)."""
        return 0

    def worth_patching(self, checks: Sequence[Check]) -> bool:
        """Skip-reuse predicate: False when most steps fail, so patching would not pay."""
        failed = sum(not c.ok for c in checks)
        return failed * 2 <= len(checks)

    def fallback(self, request: PatchRequest[S]) -> list[StepOutcome] | None:
        """A deterministic answer built without the backend, when the task has one."""
        return None

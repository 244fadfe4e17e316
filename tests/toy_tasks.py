"""A small, fully controllable task for engine tests: "the first N multiples of K"."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from stepcache_core import Check, Delta, DeltaKind, PatchRequest, StepOrigin, StepOutcome, Task
from stepcache_core.segment import segment_text
from stepcache_core.tasks.base import Generate
from stepcache_core.tasks.understanding import SHARED_LEXICON, Lexicon, Mask

_PROMPT = re.compile(r"first (\d+) multiples of (\d+)", re.IGNORECASE)
_LINE = re.compile(r"^\s*(\d+) x (\d+) = (\d+)\s*$")


@dataclass(frozen=True)
class MultiplesSpec:
    n: int
    k: int


def multiples_answer(n: int, k: int, start: int = 1) -> str:
    return "".join(f"{i} x {k} = {i * k}\n" for i in range(start, n + 1))


class MultiplesTask(Task[MultiplesSpec]):
    """Answers are lines `i x k = i*k` for i = 1..n; each line is a step."""

    name = "multiples"
    lexicon = SHARED_LEXICON | Lexicon.of("list", "write", "write out", "give", "show", "the", "me")

    def detect(self, prompt: str) -> MultiplesSpec | None:
        m = _PROMPT.search(prompt)
        return MultiplesSpec(int(m.group(1)), int(m.group(2))) if m else None

    def spans(self, prompt: str, spec: MultiplesSpec) -> Sequence[Mask]:
        """N and K: the spec holds them, so they may differ between reused requests."""
        m = _PROMPT.search(prompt)
        return [Mask(*m.span(1), "n"), Mask(*m.span(2), "k")] if m else []

    def proven_wrong(self, text: str, spec: MultiplesSpec, failure: Check) -> bool:
        """A line that states a false product proves the list wrong; a short list does not."""
        return any(not self._line_ok(s, spec).ok for s in self.segment(text) if s.strip())

    def segment(self, text: str) -> list[str]:
        return segment_text(text)

    def compare(
        self, cached_prompt: str, cached: MultiplesSpec, prompt: str, spec: MultiplesSpec
    ) -> Delta:
        if cached == spec:
            return Delta(frozenset({DeltaKind.REWORDING}), "same list")
        return Delta(frozenset({DeltaKind.CONSTANTS}), "other n or k")

    def _line_ok(self, step: str, spec: MultiplesSpec) -> Check:
        m = _LINE.match(step)
        if not m:
            return Check(False, "not a multiples line")
        i, k, v = (int(g) for g in m.groups())
        if k != spec.k or v != i * k or not 1 <= i <= spec.n:
            return Check(False, f"line {step.strip()!r} is wrong for n={spec.n}, k={spec.k}")
        return Check(True)

    def verify(
        self, steps: Sequence[str], cached: MultiplesSpec, spec: MultiplesSpec
    ) -> list[Check]:
        return [self._line_ok(s, spec) for s in steps]

    def integrity(self, text: str, spec: MultiplesSpec) -> Check:
        ok = text.strip() == multiples_answer(spec.n, spec.k).strip()
        return Check(ok, "" if ok else "not the exact list")

    def kept_prefix(self, checks: Sequence[Check]) -> int:
        return next((i for i, c in enumerate(checks) if not c.ok), len(checks))

    def patch(
        self, request: PatchRequest[MultiplesSpec], generate: Generate
    ) -> list[StepOutcome] | None:
        prefix = _prefix(request)
        start = len(prefix) + 1
        spec = request.spec
        completion = generate(
            f"Continue the first {spec.n} multiples of {spec.k} from {start}.", request.max_tokens
        )
        more = [StepOutcome(s, StepOrigin.PATCHED) for s in segment_text(completion.text)]
        return [*prefix, *more]

    def fallback(self, request: PatchRequest[MultiplesSpec]) -> list[StepOutcome] | None:
        prefix = _prefix(request)
        rest = multiples_answer(request.spec.n, request.spec.k, len(prefix) + 1)
        return [*prefix, *(StepOutcome(s, StepOrigin.FALLBACK) for s in segment_text(rest))]


def _prefix(request: PatchRequest[MultiplesSpec]) -> list[StepOutcome]:
    out = []
    for step, check in zip(request.steps, request.checks, strict=True):
        if not check.ok:
            break
        out.append(StepOutcome(step if step.endswith("\n") else step + "\n", StepOrigin.REUSED))
    return out

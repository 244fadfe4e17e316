"""The built-in task: solve a linear equation in one variable (``3x + 5 = 20``, ``2(y - 3) = y``).

Detection reads the equation out of the prompt (plain or LaTeX), checks it with sympy and keeps the
exact solution. A cached answer is checked step by step against the *new* equation: every equation
in a step must hold at the new solution, no number of the cached equation that the new one lacks may
survive, and prose numbers must come from the new problem or from equations already verified.
Failing answers are patched from the first failing step (backend continuation), or finished by a
deterministic exact-arithmetic fallback.
"""

from __future__ import annotations

from collections.abc import Sequence

from stepcache_core.segment import segment_text
from stepcache_core.tasks.base import Check, Delta, Generate, PatchRequest, Task
from stepcache_core.tasks.linear.compare import compare_specs, equation_shapes
from stepcache_core.tasks.linear.fallback import fallback_answer
from stepcache_core.tasks.linear.parse import detect_linear
from stepcache_core.tasks.linear.patch import patch_answer
from stepcache_core.tasks.linear.spec import LinearSpec
from stepcache_core.tasks.linear.transfer import (
    rename_variable,
    renumbering_for,
    restate,
    transfer_step,
)
from stepcache_core.tasks.linear.verify import (
    check_integrity,
    proven_wrong,
    verify_steps,
    worth_patching,
)
from stepcache_core.tasks.linear.wording import LINEAR_LEXICON, linear_masks
from stepcache_core.tasks.understanding import Mask
from stepcache_core.types import StepOutcome

__all__ = ["LinearEquationTask"]


class LinearEquationTask(Task[LinearSpec]):
    """Solve a linear equation in one variable; exact verification, patching and fallback.

    Each stage is a module of this package; the methods wire them together."""

    name = "linear_equation"
    version = "3"  # refuses uncertain notation; proofs need a request understood in full
    lexicon = LINEAR_LEXICON

    def detect(self, prompt: str) -> LinearSpec | None:
        return detect_linear(prompt)

    def proven_wrong(self, text: str, spec: LinearSpec, failure: Check) -> bool:
        """A false equation or a wrong final value, in an answer that restates our equation, to a
        request understood in full (nothing but the equation and the lexicon's phrasings)."""
        return proven_wrong(text, spec, failure)

    def spans(self, prompt: str, spec: LinearSpec) -> Sequence[Mask]:
        """The equation and the variable's mentions; everything else is compared as words."""
        return linear_masks(prompt, spec)

    def segment(self, text: str) -> list[str]:
        return segment_text(text)

    def compare(
        self, cached_prompt: str, cached: LinearSpec, prompt: str, spec: LinearSpec
    ) -> Delta:
        """CORE when the answer format asked for differs, or when the equation changed in a request
        with words outside the lexicon; else RENAME (other variable), CONSTANTS
        (other equation: same skeleton, other numbers, or other structure) and REWORDING (other
        words around the equation), as they apply."""
        return compare_specs(cached_prompt, cached, prompt, spec)

    def transfer(self, step: str, cached: LinearSpec, spec: LinearSpec) -> str:
        """Rename the variable, then restate the problem: the cached equation becomes the new."""
        return transfer_step(step, cached, spec)

    def transfer_steps(
        self, steps: Sequence[str], cached: LinearSpec, spec: LinearSpec
    ) -> list[str]:
        """`transfer` each step, and when the two equations differ only in their numbers (same
        signed skeleton), first re-instantiate every number of the step for the new equation
        (`renumber`): the cached derivation replayed with the new numbers.
        A step that cannot be rewritten consistently is only renamed and restated, as before;
        `verify` judges every step either way."""
        renumbering = renumbering_for(cached, spec)
        if renumbering is None:
            return [self.transfer(s, cached, spec) for s in steps]
        out: list[str] = []
        for step in steps:
            if cached.variable != spec.variable:
                step = rename_variable(step, cached.variable, spec.variable)
            rewritten = renumbering.rewrite(step)
            out.append(restate(step, cached, spec) if rewritten is None else rewritten)
        return out

    def verify(self, steps: Sequence[str], cached: LinearSpec, spec: LinearSpec) -> list[Check]:
        """Per step: equations linear and true at the new solution, numeric identities true, no
        other variable, nothing unreadable, no stale number of the cached equation (except in a
        final ``v = solution`` / boxed solution), prose numbers backed by the new equation, its
        solution or an equation verified so far, no code block with numbers."""
        return verify_steps(steps, cached, spec)

    def integrity(self, text: str, spec: LinearSpec) -> Check:
        """The whole answer: readable, every equation linear and true at the solution, and a final
        ``v = value`` / ``\\boxed{value}`` equal to the solution (rounded when the prompt asks)."""
        return check_integrity(text, spec)

    def shapes(self, prompt: str, spec: LinearSpec) -> Sequence[str]:
        """The equation with its variable masked, then its skeleton (numbers masked too), each
        with the answer format asked for: rewordings and renames of one problem share the first,
        constant changes the second, whatever the words."""
        return equation_shapes(spec)

    def kept_prefix(self, checks: Sequence[Check]) -> int:
        """Patches and the fallback keep every step before the first failing one verbatim."""
        return next((i for i, c in enumerate(checks) if not c.ok), len(checks))

    def worth_patching(self, checks: Sequence[Check]) -> bool:
        """Patch only when the verified prefix (the steps before the first failure) holds at least
        one derived equation; a prefix of intro/restated steps alone saves nothing worth a patch."""
        return worth_patching(checks)

    def patch(
        self, request: PatchRequest[LinearSpec], generate: Generate
    ) -> list[StepOutcome] | None:
        """Keep the verified prefix, ask the backend to continue from it, stitch. The engine may
        stream the continuation's steps as they are written (`patched_steps` is prefix-stable)."""
        return patch_answer(request, generate)

    def fallback(self, request: PatchRequest[LinearSpec]) -> list[StepOutcome] | None:
        """Keep the verified prefix and finish with exact arithmetic from its last equation."""
        return fallback_answer(request)

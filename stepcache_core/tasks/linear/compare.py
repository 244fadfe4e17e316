"""Compare and shapes: how a new linear-equation request differs from a cached one, and the keys
that find the cached ones worth comparing."""

from __future__ import annotations

from collections import Counter

from stepcache_core.tasks.base import Delta, DeltaKind
from stepcache_core.tasks.linear.parse import token_skeleton
from stepcache_core.tasks.linear.spec import LinearSpec
from stepcache_core.tasks.linear.transfer import letter_pattern

__all__ = ["compare_specs", "equation_shapes"]


def compare_specs(cached_prompt: str, cached: LinearSpec, prompt: str, spec: LinearSpec) -> Delta:
    """CORE when the answer format asked for differs, or when the equation changed in a request
    not understood in full (words outside the lexicon, shared by both prompts); else RENAME
    (other variable), CONSTANTS (other equation: same skeleton, other numbers, or other
    structure) and REWORDING (other words around the equation), as they apply."""
    if _format(cached) != _format(spec):
        return Delta(
            frozenset({DeltaKind.CORE}),
            f"answer format differs: {sorted(cached.output)} vs {sorted(spec.output)}",
        )
    kinds: set[DeltaKind] = set()
    reasons: list[str] = []
    if cached.variable != spec.variable:
        kinds.add(DeltaKind.RENAME)
        reasons.append(f"variable {cached.variable} -> {spec.variable}")
    same = (cached.lhs_linear, cached.rhs_linear) == (spec.lhs_linear, spec.rhs_linear)
    if not same or Counter(cached.constants) != Counter(spec.constants):
        if not (cached.understood and spec.understood):
            # The prompts share words the task does not read ("then add 4 to the result"):
            # what the cached answer says about them was right for the old numbers only.
            return Delta(
                frozenset({DeltaKind.CORE}),
                f"the equation changed ({cached.plain} -> {spec.plain}) in a request with "
                "words the task does not read: their answer may depend on the numbers",
            )
        kinds.add(DeltaKind.CONSTANTS)
        how = "same skeleton" if cached.skeleton == spec.skeleton else "other structure"
        reasons.append(f"{how}: {cached.plain} -> {spec.plain}")
    if _template(cached_prompt, cached) != _template(prompt, spec):
        kinds.add(DeltaKind.REWORDING)
        reasons.append("other wording")
    return Delta(frozenset(kinds), "; ".join(reasons))


def equation_shapes(spec: LinearSpec) -> tuple[str, str]:
    """The equation with its variable masked, then its skeleton (numbers masked too), each
    with the answer format asked for: rewordings and renames of one problem share the first,
    constant changes the second, whatever the words."""
    output = "\x00".join(sorted(_format(spec)))
    var = spec.variable
    equation = (
        token_skeleton(spec.lhs, var, numbers=False)
        + "="
        + token_skeleton(spec.rhs, var, numbers=False)
    )
    return (f"equation\x00{equation}\x00{output}", f"skeleton\x00{spec.skeleton}\x00{output}")


def _format(spec: LinearSpec) -> frozenset[str]:
    """The answer formats two requests must share. Asking for the steps is not one of them: a
    cached answer with working serves both, and one without fails the integrity check."""
    return spec.output - {"steps"}


def _template(prompt: str, spec: LinearSpec) -> str:
    text = prompt.replace(spec.equation, " <eq> ")
    text = letter_pattern(spec.variable).sub("<v>", text)
    return " ".join(text.lower().split())

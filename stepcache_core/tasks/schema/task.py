"""The JSON Schema task: "reply with one object that matches this schema", nested objects,
arrays of objects, enums, formats, bounds and local ``$ref``s included.

A step is one leaf value at a JSON Pointer (see `steps`). A cached leaf is reused when its
pointer is still in the new schema and its value matches the sub-schema there; failing and
missing pointers are asked from the backend alone (with its schema-constrained decoding where
the engine's `generate` offers it) and merged back; the whole object is validated with
jsonschema before it is served.

Closed world: the schema is masked out of the prompt and compared through the spec; every other
word (subject, values and counts in prose, language) must match up to `SCHEMA_LEXICON`.
"""

from __future__ import annotations

from collections.abc import Sequence

from stepcache_core.errors import ConfigError
from stepcache_core.segment import segment_text
from stepcache_core.tasks.base import Check, Delta, Generate, PatchRequest, Task
from stepcache_core.tasks.schema.compare import compare_specs
from stepcache_core.tasks.schema.parse import detect_schema_spec
from stepcache_core.tasks.schema.patch import patch_answer
from stepcache_core.tasks.schema.spec import SchemaSpec
from stepcache_core.tasks.schema.steps import split_answer
from stepcache_core.tasks.schema.verify import PointerCheck, check_integrity, classify_steps
from stepcache_core.tasks.schema.wording import SCHEMA_LEXICON
from stepcache_core.tasks.understanding import Mask
from stepcache_core.types import StepOutcome

__all__ = ["JsonSchemaTask"]


class JsonSchemaTask(Task[SchemaSpec]):
    """One JSON object matching a JSON Schema: verified and patched pointer by pointer."""

    name = "json_schema"
    version = "1"
    lexicon = SCHEMA_LEXICON

    def __init__(self, *, patch_max_tokens_per_pointer: int = 48) -> None:
        if patch_max_tokens_per_pointer < 1:
            raise ConfigError("patch_max_tokens_per_pointer must be >= 1")
        self.patch_max_tokens_per_pointer = patch_max_tokens_per_pointer

    def detect(self, prompt: str) -> SchemaSpec | None:
        return detect_schema_spec(prompt)

    def spans(self, prompt: str, spec: SchemaSpec) -> Sequence[Mask]:
        """The schema (with its fence); every other word stays in the residue."""
        return spec.masks

    def segment(self, text: str) -> list[str]:
        """``[prefix, leaf..., suffix]`` for one extractable object, else `segment_text`."""
        split = split_answer(text)
        return list(split.steps) if split is not None else segment_text(text)

    def compare(
        self, cached_prompt: str, cached: SchemaSpec, prompt: str, spec: SchemaSpec
    ) -> Delta:
        return compare_specs(cached_prompt, cached, prompt, spec)

    def shapes(self, prompt: str, spec: SchemaSpec) -> Sequence[str]:
        """The residue with the schema (rewordings share it), then the residue alone (the same
        request under another version of the schema shares that)."""
        words = " ".join(self.residue(prompt, spec))
        return (f"schema\x00{spec.identity}\x00{words}", f"residue\x00{words}")

    def verify(self, steps: Sequence[str], cached: SchemaSpec, spec: SchemaSpec) -> list[Check]:
        return classify_steps(steps, cached, spec)

    def worth_patching(self, checks: Sequence[Check]) -> bool:
        """True when at least one leaf, and at least half of the leaves, pass."""
        leaves = [c for c in checks if isinstance(c, PointerCheck) and c.pointer is not None]
        passed = sum(c.ok for c in leaves)
        return passed >= 1 and 2 * passed >= len(leaves)

    def integrity(self, text: str, spec: SchemaSpec) -> Check:
        """One object, only a fence around it, valid against the whole schema."""
        return check_integrity(text, spec)

    def proven_wrong(self, text: str, spec: SchemaSpec, failure: Check) -> bool:
        """Only a schema violation in an answer whose key structure matches the schema."""
        return failure.wrong

    def patch(
        self, request: PatchRequest[SchemaSpec], generate: Generate
    ) -> list[StepOutcome] | None:
        """Keep verified leaves, ask the backend only for failing and missing pointers."""
        return patch_answer(
            request, generate, max_tokens_per_pointer=self.patch_max_tokens_per_pointer
        )

"""The built-in JSON-objects task: "give me a JSON object for <subject> with keys a, b, c".

Detection reads the required keys from the prompt (a key list in prose or an embedded JSON Schema),
the subject the object describes, and whether other keys are allowed. An answer is split with
`text` into ``[prefix, one step per top-level member, suffix]``. A cached member is reused when
its key is still requested and its value fits; missing keys are asked from the backend alone (strict
structured patching) and merged back in the requested order, in the cached answer's layout.

Rules, in one place:

- detect: the word JSON; not YAML/XML/CSV/TOML/HTML/table output, not a JSON array, list of
  objects or JSON lines, not code that handles JSON, not a request for a schema; at least one key.
  Keys are read as written: quoted (whitespace inside the quotes included) or bare identifiers in
  any script, dotted or hyphenated; a word that also reads as prose ("value", "from",
  "properties") is a key inside a list after a key noun; a list whose words cannot all be told
  apart as keys or prose, or keys listed in two places, make detection return None. Without a
  schema, the listed keys are exactly the keys wanted unless the prompt allows more ("at least
  the keys", "fields such as", "other keys are fine"; "at least 18" is about a value). With a
  schema (an object of schema keywords whose ``properties`` are schemas; any other object is an
  example and stays in the residue): its ``required`` keys (all ``properties`` when it has no
  ``required``), its property schemas as value types, extra keys forbidden when
  ``additionalProperties`` is false (or the prose says "no other keys"/"exactly"). Layout words
  count only about the object ("compact JSON", "put it on one line"), not about anything else
  ("a one-line note"); where unclear, None.
- compare: CORE when the output layout differs (one line vs pretty, raw vs fenced), when the subject
  differs (content words once adjectives like fictional/imaginary/made-up are removed), or when
  fewer than half of the new keys were in the cached request; KEYS when the key set, a value type or
  the extra-keys rule differs; REWORDING when only other words differ. Key order alone is rewording.
- verify: a member passes when its key is requested (or an allowed extra) and its value fits the
  property schema, or is not null/empty when no schema is given; a removed, unwanted or repeated key
  fails. Prose passes unless it names the old subject or has a fence the request forbids. The
  closing step fails while requested keys are missing (they must be inserted before it).
- worth_patching: True when at least half of the requested keys have a passing member.
- proven_wrong: only an object with exactly the requested keys whose values break the types or
  schemas the prompt gave; a missing or extra key, an empty untyped value, a fence or a layout is
  no proof, and such a model answer is served as written.
- relayout: a model's object that fails only the layout a fully understood request asks for
  (one line, raw JSON) is served on one line / without its fence lines, every token as written.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from stepcache_core.errors import ConfigError
from stepcache_core.segment import segment_text
from stepcache_core.tasks.base import Check, Delta, Generate, PatchRequest, Task
from stepcache_core.tasks.json.compare import compare_specs, object_shapes
from stepcache_core.tasks.json.layout import relaid
from stepcache_core.tasks.json.parse import detect_json_spec
from stepcache_core.tasks.json.patch import missing_keys_prompt, patch_answer
from stepcache_core.tasks.json.spec import JsonSpec
from stepcache_core.tasks.json.text import extract_object
from stepcache_core.tasks.json.verify import check_integrity, classify_steps, reusable_keys_suffice
from stepcache_core.tasks.json.wording import JSON_LEXICON
from stepcache_core.tasks.understanding import Mask
from stepcache_core.types import StepOutcome

__all__ = ["JsonObjectTask"]


class JsonObjectTask(Task[JsonSpec]):
    """JSON objects with required keys: verified with jsonschema, patched key by key.

    Each stage is a module of this package; the methods wire them together."""

    name = "json_object"
    version = "3"  # key lists as written; layout and "at least" only about the object
    lexicon = JSON_LEXICON

    def __init__(self, *, patch_max_tokens_per_key: int = 48) -> None:
        if patch_max_tokens_per_key < 1:
            raise ConfigError("patch_max_tokens_per_key must be >= 1")
        self.patch_max_tokens_per_key = patch_max_tokens_per_key

    def detect(self, prompt: str) -> JsonSpec | None:
        return detect_json_spec(prompt)

    def spans(self, prompt: str, spec: JsonSpec) -> Sequence[Mask]:
        """The key list or the schema; the subject, values and every other word stay in the
        residue (an example object too: its values are content, not a schema)."""
        return spec.masks

    def segment(self, text: str) -> list[str]:
        """``[prefix, member..., suffix]`` for one extractable object, else `segment_text`."""
        obj = extract_object(text)
        return obj.steps() if obj is not None else segment_text(text)

    def compare(self, cached_prompt: str, cached: JsonSpec, prompt: str, spec: JsonSpec) -> Delta:
        return compare_specs(cached_prompt, cached, prompt, spec)

    def shapes(self, prompt: str, spec: JsonSpec) -> Sequence[str]:
        """The subject's words and the layout asked for, first with the keys and their schemas
        (rewordings of one request share it), then alone (variants with keys added, removed or
        renamed share that)."""
        return object_shapes(spec)

    def verify(self, steps: Sequence[str], cached: JsonSpec, spec: JsonSpec) -> list[Check]:
        return [s.check for s in classify_steps(steps, cached, spec)]

    def worth_patching(self, checks: Sequence[Check]) -> bool:
        """True when at least half of the requested keys have a passing member step."""
        suffice = reusable_keys_suffice(checks)
        return super().worth_patching(checks) if suffice is None else suffice

    def integrity(self, text: str, spec: JsonSpec) -> Check:
        """Exactly one valid object with the required keys, allowed keys only, fitting values."""
        return check_integrity(text, spec)

    def relayout(self, text: str, spec: JsonSpec) -> str | None:
        """The object on one line ("minified") or without fences ("raw JSON"), as asked."""
        return relaid(text, spec)

    def proven_wrong(self, text: str, spec: JsonSpec, failure: Check) -> bool:
        """True when every key of `text`'s object was requested and its only problems are
        requested keys left out or values that break the types or schemas the prompt gave (see
        `check_integrity`): the model read the request as we did and still answered wrong. An
        extra key, a fence or a layout is no proof: such an answer is served as written; nor is
        any answer to a request with words beyond the keys, the subject and the lexicon ("leave
        out the age"): it may be right for them."""
        return (
            spec.understood
            and not failure.ok
            and failure.wrong
            and check_integrity(text, spec).wrong
        )

    def patch(
        self, request: PatchRequest[JsonSpec], generate: Generate
    ) -> list[StepOutcome] | None:
        """Keep verified members, drop failed ones, ask the backend only for the missing keys.

        Attempt 0 patches; attempt 1 patches again and tells the backend why the last answer
        failed; attempt 2 and later regenerate the whole object from the user's prompt. None when
        the backend's reply holds no JSON object.
        """
        return patch_answer(
            request,
            generate,
            prompt_for=self.missing_keys_prompt,
            max_tokens_per_key=self.patch_max_tokens_per_key,
        )

    def missing_keys_prompt(
        self, spec: JsonSpec, known: dict[str, Any], missing: Sequence[str], last_failure: str = ""
    ) -> str:
        """The backend prompt of a patch: names the subject, shows `known`, asks only `missing`."""
        return missing_keys_prompt(spec, known, missing, last_failure)

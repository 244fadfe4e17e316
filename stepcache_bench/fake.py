"""A fast deterministic stand-in for the local model (for developing the benchmark, not results).

It answers linear equations with LaTeX-flavoured steps (a seeded share of them wrong or truncated),
JSON requests with a fenced object (a seeded share with a missing key), a JSON Schema (passed to
`complete_json`, or fenced in the prompt) with an object valid against it that holds the values
the structured workload's prompt states, anything else with a short sentence. Its latency is
simulated from token counts (110 prompt tok/s, 15 completion tok/s), never slept.
`HashEmbedder` is a cheap bag-of-words embedder for the same purpose.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Mapping, Sequence
from fractions import Fraction
from typing import Any

from stepcache_bench.structured import stated_values
from stepcache_core import Backend, Completion, Embedder
from stepcache_core.tasks.json import detect_json_spec
from stepcache_core.tasks.linear import detect_linear


def _h(text: str) -> int:
    return int(hashlib.sha256(text.encode()).hexdigest()[:8], 16)


def _tokens(text: str) -> int:
    return max(1, len(text) // 4)


def _frac(v: Fraction) -> str:
    return str(v.numerator) if v.denominator == 1 else f"\\frac{{{v.numerator}}}{{{v.denominator}}}"


_SAMPLE = {"string": "Sample", "integer": 7, "number": 3.5, "boolean": True, "array": ["a"]}
_FENCED_SCHEMA = re.compile(r"```json\n(\{.*\})\n```", re.S)


def instance(schema: Mapping[str, Any], stated: Mapping[str, str], pointer: str = "") -> Any:
    """A deterministic value valid against `schema` (the subset the benchmark's schemas use),
    with `stated` values at their pointers. Keys that are JSON Pointers (a patch reply's) name
    their own pointer."""
    if pointer in stated:
        return stated[pointer]
    if "enum" in schema:
        values = schema["enum"]
        return values[_h(pointer) % len(values)]
    kind = schema.get("type")
    if kind == "object":
        return {
            key: instance(sub, stated, key if key.startswith("/") else f"{pointer}/{key}")
            for key, sub in schema.get("properties", {}).items()
        }
    if kind == "array":
        return [
            instance(schema.get("items", {}), stated, f"{pointer}/{i}")
            for i in range(max(1, schema.get("minItems", 1)))
        ]
    if kind in ("integer", "number"):
        value: float = 7 if kind == "integer" else 3.5
        value = max(value, schema.get("minimum", value))
        return min(value, schema.get("maximum", value))
    if kind == "boolean":
        return True
    if schema.get("format") == "date":
        return "2026-03-14"
    name = pointer.rsplit("/", 1)[-1].replace("_", " ") or "value"
    return f"Sample {name}"[: schema.get("maxLength", 64)]


class FakeModel(Backend):
    """Deterministic fake answers: ~35 % of equation answers wrong, ~15 % of JSON lack a key."""

    name = "fake-model"

    def complete(self, prompt: str, max_tokens: int | None = None) -> Completion:
        text = self._answer(prompt)
        cap = max_tokens or 256
        toks = _tokens(text)
        finish = "stop"
        if toks > cap:
            text = text[: cap * 4]
            toks, finish = cap, "length"
        return Completion(text, _tokens(prompt), toks, finish)

    def complete_json(
        self, prompt: str, schema: Mapping[str, Any], max_tokens: int | None = None
    ) -> Completion:
        """Schema-constrained: always an object valid against `schema` (never truncated)."""
        text = json.dumps(instance(schema, stated_values(prompt)))
        return Completion(text, _tokens(prompt), _tokens(text), "stop")

    def _answer(self, prompt: str) -> str:
        h = _h(prompt)
        fenced = _FENCED_SCHEMA.search(prompt)
        if fenced is not None:
            schema = json.loads(fenced.group(1))
            if isinstance(schema, dict) and isinstance(schema.get("properties"), dict):
                obj = instance(schema, stated_values(prompt))
                return "```json\n" + json.dumps(obj, indent=2) + "\n```"
        lin = detect_linear(prompt)
        if lin is not None:
            v, sol = lin.variable, lin.solution
            a = lin.lhs_linear[0] - lin.rhs_linear[0]
            b = lin.rhs_linear[1] - lin.lhs_linear[1]
            final = sol if h % 100 >= 35 else sol + 1
            return (
                f"To solve \\({lin.equation}\\), we collect terms.\n\n"
                f"1. Move the terms: \\({_frac(a)}{v} = {_frac(b)}\\)\n"
                f"2. Divide by {_frac(a)}.\n\n"
                f"Therefore \\({v} = {_frac(final)}\\).\n\n{v} = {_frac(final)}"
            )
        spec = None if "yaml" in prompt.lower() else detect_json_spec(prompt)
        if spec is not None:
            obj = {}
            for key in spec.keys:
                schema = spec.value_schema(key) or {}
                obj[key] = _SAMPLE.get(str(schema.get("type", "string")), "x")
            if h % 100 < 15 and len(obj) > 1:
                obj.pop(next(iter(obj)))
            return "```json\n" + json.dumps(obj, indent=2) + "\n```"
        if "json" in prompt.lower():
            return '```json\n[{"name": "Sample"}]\n```'
        return "Yes. " + " ".join(["It depends on the equation."] * (1 + h % 4))


def simulated_seconds(c: Completion) -> float:
    """Latency the 0.5B model would take here for this completion (prefill + decode)."""
    return 0.05 + c.prompt_tokens / 110 + c.completion_tokens / 15


class HashEmbedder(Embedder):
    """Bag-of-words hashed into 128 dimensions, unit length."""

    name = "hash-128"

    def embed_batch(self, texts: Sequence[str]) -> list[list[float]]:
        out = []
        for text in texts:
            vec = [0.0] * 128
            for word in re.findall(r"[a-z]+|\d+", text.lower()):
                vec[_h(word) % 128] += 1.0 if word.isalpha() else 0.25
            norm = math.sqrt(sum(x * x for x in vec)) or 1.0
            out.append([x / norm for x in vec])
        return out

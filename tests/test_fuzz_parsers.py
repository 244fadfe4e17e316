"""Hypothesis fuzzing of the prompt parsers, the verifiers and the stored-row decoder.

Invariants: parsers never raise on any text; a detected equation's solution satisfies it; the
verifiers never accept a wrong final value or a JSON object that misses a required key; keys never
collide across scopes; a cached row either decodes whole or reads as absent; and the engine never
serves an answer its checker rejects.
"""

from __future__ import annotations

import json
from fractions import Fraction
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from stepcache_core import InMemoryStore, StepCache
from stepcache_core.store import SCHEMA_VERSION, Entry, _decode, _encode, entry_key
from stepcache_core.tasks.json import JsonObjectTask, detect_json_spec
from stepcache_core.tasks.json import text as jsontext
from stepcache_core.tasks.linear import LinearEquationTask, detect_linear, mathtext
from stepcache_core.tasks.linear.expr import format_fraction
from stepcache_core.tasks.linear.fallback import fallback_lines

from conftest import HashEmbedder, ScriptedBackend
from reliability_workers import linear_backend_answer

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
LINEAR = LinearEquationTask()
JSON_TASK = JsonObjectTask()

# Text that looks like math and JSON often enough to reach deep parser states.
PIECES = st.sampled_from(
    [
        "Solve ",
        "solve for x: ",
        "x",
        "y",
        "=",
        "+",
        "-",
        "*",
        "/",
        "(",
        ")",
        " ",
        "\n",
        "3",
        "0",
        "1.5",
        "-7",
        "1e9",
        "nan",
        "inf",
        "NaN",
        "∞",
        "\\frac{3}{2}",
        "\\(",
        "\\)",
        "$$",
        "^2",
        "\\boxed{5}",
        "{",
        "}",
        "[",
        "]",
        '"name"',
        ":",
        ",",
        "JSON",
        "keys",
        "```json",
        "```",
        "with keys name, age",
        "Return a JSON object",
        "only",
        "decimal",
        "３",
        "\u200b",
        "🙂",
        '"',
        "\\",
        "null",
        "true",
        "99999999999999999999",
        "x = 5",
        "Step 1:",
    ]
)
MATHY = st.lists(PIECES, max_size=30).map("".join)
TEXT = st.one_of(st.text(max_size=300), MATHY)


# ---------------------------------------------------------------------------- linear equations


@FUZZ
@given(TEXT)
def test_detect_linear_never_raises_and_its_solution_satisfies_the_equation(text: str) -> None:
    spec = detect_linear(text)
    if spec is None:
        return
    (a, b), (c, d) = spec.lhs_linear, spec.rhs_linear
    assert a != c
    assert a * spec.solution + b == c * spec.solution + d
    assert LINEAR.integrity("".join(fallback_lines(spec)), spec).ok


NUMBER = st.one_of(
    st.integers(-(10**30), 10**30),
    st.decimals(-1000, 1000, places=3, allow_nan=False, allow_infinity=False),
)


def _num(value: Any) -> str:
    return str(value)


@FUZZ
@given(NUMBER, NUMBER, NUMBER, NUMBER, st.sampled_from("xyzabn"), st.booleans())
def test_detected_solution_matches_exact_arithmetic(
    a: Any, b: Any, c: Any, d: Any, var: str, parens: bool
) -> None:
    lhs = f"{_num(a)}*{var} + ({_num(b)})" if parens else f"{_num(a)}{var} + {_num(b)}"
    rhs = f"{_num(c)}*{var} + ({_num(d)})"
    spec = detect_linear(f"Solve {lhs} = {rhs}")
    fa, fb, fc, fd = (Fraction(str(v)) for v in (a, b, c, d))
    if spec is None:
        return
    assert fa != fc
    assert spec.solution == (fd - fb) / (fa - fc)


@st.composite
def linear_specs(draw: st.DrawFn) -> Any:
    a = draw(st.integers(-50, 50).filter(bool))
    b = draw(st.integers(-(10**12), 10**12))
    c = draw(st.integers(-(10**6), 10**6))
    spec = detect_linear(f"Solve {a}x + ({b}) = {c}")
    assume(spec is not None)
    return spec


@FUZZ
@given(linear_specs(), TEXT)
def test_linear_verifiers_never_raise_on_any_text(spec: Any, text: str) -> None:
    assert isinstance(LINEAR.integrity(text, spec).ok, bool)
    steps = LINEAR.segment(text)
    assert len(LINEAR.verify(steps, spec, spec)) == len(steps)


@FUZZ
@given(linear_specs(), st.fractions(max_denominator=50).filter(bool))
def test_linear_integrity_never_accepts_a_wrong_final_value(spec: Any, delta: Fraction) -> None:
    wrong = spec.solution + delta
    good = "".join(fallback_lines(spec))
    assert LINEAR.integrity(good, spec).ok
    v = spec.variable
    lies = [
        good.replace(f"{v} = {spec.solution_text}", f"{v} = {format_fraction(wrong)}"),
        good + f"{v} = {format_fraction(wrong)}\n",
        f"The answer is \\boxed{{{format_fraction(wrong)}}}",
        f"{v} = {format_fraction(wrong)}",
    ]
    for lie in lies:
        assert not LINEAR.integrity(lie, spec).ok, lie


@FUZZ
@given(TEXT)
@example("\\")
@example("$x = 5\\$")
def test_math_text_readers_never_raise(text: str) -> None:
    try:
        mathtext.latex_to_plain(text)
        mathtext.read_math(text, "x")
        mathtext.find_plain_equations(text, "x")
    except mathtext.MathTextError:
        pass


# ---------------------------------------------------------------------------- JSON objects


@FUZZ
@given(TEXT)
def test_json_parsers_never_raise(text: str) -> None:
    jsontext.find_objects(text)
    jsontext.extract_object(text)
    jsontext.parse_member(text)
    spec = detect_json_spec(text)
    if spec is not None:
        assert spec.keys and len(set(spec.keys)) == len(spec.keys)


KEY = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=10)


@FUZZ
@given(st.lists(KEY, min_size=1, max_size=5, unique=True), TEXT)
def test_json_integrity_never_raises_and_never_accepts_missing_keys(
    keys: list[str], text: str
) -> None:
    spec = detect_json_spec(f"Return a JSON object with keys {', '.join(keys)}.")
    assume(spec is not None)
    assert spec is not None
    check = JSON_TASK.integrity(text, spec)
    if check.ok:
        obj = jsontext.extract_object(text)
        assert obj is not None and set(spec.keys) <= set(obj.value)
    full = {k: "v" for k in spec.keys}
    assert JSON_TASK.integrity(json.dumps(full), spec).ok
    missing = dict(list(full.items())[1:])
    assert not JSON_TASK.integrity(json.dumps(missing), spec).ok
    truncated = json.dumps(full)[:-2]
    assert not JSON_TASK.integrity(truncated, spec).ok
    steps = JSON_TASK.segment(text)
    assert len(JSON_TASK.verify(steps, spec, spec)) == len(steps)


# ---------------------------------------------------------------------------- chat messages


@FUZZ
@given(st.text(max_size=200))
def test_langchain_prompt_parser_never_raises(tail: str) -> None:
    pytest.importorskip("langchain_core")
    from stepcache_langchain._prompt import query_from_prompt

    for prompt in ('[{"lc"' + tail, tail, '[{"lc": 1, "type": "constructor", "id": [' + tail):
        query = query_from_prompt(prompt)
        assert query is None or isinstance(query.text, str)


# ---------------------------------------------------------------------------- keys and rows

SCOPE = st.text(
    alphabet=st.sampled_from(["a", "b", '"', "\\", "\x1f", "\x00", " ", ",", "]"]), max_size=6
)


@FUZZ
@given(st.tuples(SCOPE, SCOPE, SCOPE, SCOPE), st.tuples(SCOPE, SCOPE, SCOPE, SCOPE))
def test_entry_keys_never_collide_across_scopes(left: Any, right: Any) -> None:
    def norm(t: Any) -> tuple[str, ...]:
        return (*t[:3], " ".join(t[3].split()))

    if norm(left) != norm(right):
        assert entry_key(*left) != entry_key(*right)
    else:
        assert entry_key(*left) == entry_key(*right)


JSONISH = st.recursive(
    st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


@FUZZ
@given(st.one_of(st.text(max_size=200), JSONISH.map(json.dumps), st.none()), JSONISH)
def test_decoding_any_row_never_raises(document: Any, meta: Any) -> None:
    entry = _decode("k", document, meta)
    if entry is not None:
        assert all(isinstance(s, str) for s in entry.steps)


@FUZZ
@given(st.text(max_size=50), st.lists(st.text(max_size=30), max_size=5), st.integers(0, 200))
def test_a_row_cut_anywhere_decodes_whole_or_not_at_all(
    prompt: str, steps: list[str], cut: int
) -> None:
    e = Entry(
        key="k",
        namespace="n",
        context="",
        prompt=prompt,
        answer="".join(steps),
        steps=tuple(steps),
        task="t",
        reusable=True,
    )
    document, meta = _encode(e, reusable=True)
    assert meta["stepcache_schema"] == SCHEMA_VERSION
    whole = _decode("k", document, meta)
    assert whole is not None and whole.steps == e.steps and whole.prompt == e.prompt
    cut_doc = document[: min(cut, len(document) - 1)]
    got = _decode("k", cut_doc, meta)
    assert got is None


# ---------------------------------------------------------------------------- the whole engine


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(MATHY, st.text(min_size=1, max_size=80)), min_size=1, max_size=4))
def test_engine_never_crashes_nor_serves_a_rejected_answer(prompts: list[str]) -> None:
    cache = StepCache(InMemoryStore(), embedder=HashEmbedder())
    backend = ScriptedBackend(linear_backend_answer)
    for prompt in prompts + prompts:
        if not prompt.strip():
            continue
        result = cache.generate(prompt, backend)
        spec = detect_linear(prompt)
        if spec is not None and result.verified:
            assert LINEAR.integrity(result.text, spec).ok
        if result.from_cache and result.task == LINEAR.name:
            assert spec is not None and LINEAR.integrity(result.text, spec).ok

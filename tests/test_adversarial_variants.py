"""Metamorphic tests: edits that change a request's meaning are never served from the cached
entry; edits that keep it (the instruction lexicon, casing of filler, whitespace, sentence order,
the benchmark's rewording phrasings) are still reused; a changed spec is served right or not at all.

The grammar of edit kinds and the base requests live in tests/adversarial.py; each edit kind is one
parametrized test, drawn over (base request, seed) by Hypothesis with a fixed derandomized seed,
so a kind fails on its own with its first failing variant in the message. `TestOnRealParts` runs
a fixed sample of every kind on the bundled MiniLM and Chroma on disk.
"""

from __future__ import annotations

import random
from pathlib import Path as FsPath

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from stepcache_core import ChromaStore, MiniLMEmbedder, StepCache
from stepcache_core import Path as P

from adversarial import (
    ALL_BASES,
    EDIT_KINDS,
    KINDS,
    Expect,
    JsonBase,
    LinearBase,
    PerfectBackend,
    Variant,
    judge,
    key_list,
    measure,
    perfect_answer,
    serve,
    table,
    variants_of,
)

CHANGING = [k.name for k in EDIT_KINDS if k.expect is Expect.MODEL_ANSWERS]
PRESERVING = [k.name for k in EDIT_KINDS if k.expect is Expect.REUSE]
SPEC_CHANGES = [k.name for k in EDIT_KINDS if k.expect is Expect.RIGHT]

# Derandomized (a fixed seed), no example database, no shrinking: the same variants every run,
# and a failing kind stops at its first failure instead of spending time minimizing it.
VARIANTS = settings(
    max_examples=10,
    derandomize=True,
    database=None,
    deadline=None,
    phases=(Phase.explicit, Phase.generate),
    suppress_health_check=(HealthCheck.too_slow,),
)


def draw_variant(data: st.DataObject, name: str) -> Variant:
    kind = KINDS[name]
    base = data.draw(st.sampled_from(kind.bases()), label="base")
    seed = data.draw(st.integers(0, 2**16), label="seed")
    variant = kind.make(base, random.Random(seed))
    assert variant.expect is kind.expect and variant.kind == name
    return variant


def assert_handled(variant: Variant) -> None:
    failure = judge(serve(variant))
    assert failure is None, f"[{variant.kind}] {variant.cached!r} -> {variant.prompt!r}: {failure}"


@pytest.mark.parametrize("name", CHANGING)
@VARIANTS
@given(data=st.data())
def test_a_meaning_changing_edit_is_answered_by_the_model(name: str, data: st.DataObject) -> None:
    assert_handled(draw_variant(data, name))


@pytest.mark.parametrize("name", PRESERVING)
@VARIANTS
@given(data=st.data())
def test_a_meaning_preserving_edit_is_reused(name: str, data: st.DataObject) -> None:
    assert_handled(draw_variant(data, name))


@pytest.mark.parametrize("name", SPEC_CHANGES)
@VARIANTS
@given(data=st.data())
def test_a_changed_spec_is_served_right_or_answered_by_the_model(
    name: str, data: st.DataObject
) -> None:
    assert_handled(draw_variant(data, name))


# ------------------------------------------------------------------ the grammar itself


def test_every_base_request_is_cached_verified_with_the_perfect_answer() -> None:
    """The premise of every test above: a base request, answered right, becomes a cached entry."""
    assert sum(isinstance(b, LinearBase) for b in ALL_BASES) >= 10
    assert sum(isinstance(b, JsonBase) for b in ALL_BASES) >= 10
    assert ALL_BASES[0].prompt == "Solve 3x + 5 = 20 for x. Show your steps."
    for base in ALL_BASES:
        variant = Variant("base", base.prompt, base.prompt, Expect.REUSE,
                          perfect_answer(base), perfect_answer(base))  # fmt: skip
        served = serve(variant)
        assert served.first.verified and served.first.text == perfect_answer(base), base.prompt
        assert served.result.path is P.EXACT and not served.backend_prompts


def test_every_edit_kind_applies_and_edits() -> None:
    assert len(CHANGING) >= 40 and len(PRESERVING) >= 8 and SPEC_CHANGES
    assert len(KINDS) == len(EDIT_KINDS)
    for kind in EDIT_KINDS:
        variants = variants_of(kind, draws=2)
        assert variants, kind.name
        for v in variants:
            request, cached = (v.context, v.prompt.strip()), (v.cached_context, v.cached.strip())
            assert request != cached or "whitespace" in kind.name, (kind.name, v.prompt)


def test_the_families_are_both_covered_by_changing_and_preserving_kinds() -> None:
    for family in ("linear", "json"):
        kinds = [k for k in EDIT_KINDS if k.family in (family, None)]
        assert {k.expect for k in kinds} >= {Expect.MODEL_ANSWERS, Expect.REUSE}, family


def test_perfect_answers_are_exact() -> None:
    assert perfect_answer(LinearBase("3x + 5", "21", "x")).endswith("x = 16/3")
    assert perfect_answer(LinearBase("t/4 + 1", "3", "t")).endswith("t = 8")
    assert perfect_answer(LinearBase("2(n + 3)", "16", "n")).endswith("n = 5")
    person = JsonBase("person", (("name", "string"), ("age", "integer")))
    assert '"age": 30' in perfect_answer(person) and '"name": "Sample"' in perfect_answer(person)
    assert key_list(person.keys, 4) == "name (string) and age (integer)"


def test_the_perfect_backend_answers_strict_key_patches_with_the_keys_asked() -> None:
    backend = PerfectBackend({}, {"age": "integer"})
    text = backend.complete('Return exactly these keys: "age", "größe".').text
    assert '"age": 30' in text and '"größe": "Sample"' in text


def test_the_rates_table_reports_every_kind() -> None:
    kinds = [KINDS[CHANGING[0]], KINDS[PRESERVING[0]]]
    rates = measure(kinds, draws=1)
    assert [r.kind for r in rates] == kinds
    assert all(r.total == len(r.kind.bases()) and 0 <= r.ok <= r.total for r in rates)
    text = table(rates)
    assert CHANGING[0] in text and PRESERVING[0] in text and "all reuse" in text


# ------------------------------------------------------------------ on real parts


@pytest.fixture(scope="module")
def real_cache(tmp_path_factory: pytest.TempPathFactory) -> StepCache:
    """The bundled MiniLM and Chroma on disk, shared by the real-parts sample."""
    root: FsPath = tmp_path_factory.mktemp("adversarial")
    return StepCache(ChromaStore(root / "chroma"), embedder=MiniLMEmbedder())


@pytest.mark.slow
class TestOnRealParts:
    """A fixed sample of every kind through the bundled MiniLM and Chroma on disk (one store,
    a namespace per variant, so the sample shares one vector index as a deployment would)."""

    @pytest.mark.parametrize("name", [k.name for k in EDIT_KINDS])
    def test_a_sample_of_each_kind(self, real_cache: StepCache, name: str) -> None:
        kind = KINDS[name]
        variants = variants_of(kind, draws=1)[::4] or variants_of(kind, draws=1)[:1]
        failures = []
        for i, variant in enumerate(variants):
            failure = judge(serve(variant, real_cache, namespace=f"{name}/{i}"))
            if failure is not None:
                failures.append(f"{variant.cached!r} -> {variant.prompt!r}: {failure}")
        assert not failures, f"[{name}] {len(failures)}/{len(variants)}:\n" + "\n".join(failures)

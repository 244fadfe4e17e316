"""Bad and hostile input, and isolation between namespaces and tenants.

Every case gets a clear error (InvalidPromptError) or a miss, never a crash of the user's call and
never a wrong answer served. Isolation tests try hard to make one scope reuse another's answers.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import pytest

from stepcache_core import (
    CacheConfig,
    ChromaStore,
    Entry,
    InMemoryStore,
    InvalidPromptError,
    StepCache,
    StepStore,
)
from stepcache_core import Path as CachePath
from stepcache_core.store import entry_key
from stepcache_core.tasks.json import JsonObjectTask
from stepcache_core.tasks.linear import LinearEquationTask, detect_linear

from conftest import HashEmbedder, ScriptedBackend
from reliability_workers import linear_backend_answer, multiples_backend_answer
from toy_tasks import MultiplesTask, multiples_answer

LINEAR = LinearEquationTask()
JSON_TASK = JsonObjectTask()


@pytest.fixture(params=["memory", "chroma"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> StepStore:
    if request.param == "memory":
        return InMemoryStore()
    return ChromaStore(tmp_path / "chroma", embedder_name="hash-64")


def builtin_cache(store: StepStore | None = None, **config: Any) -> StepCache:
    return StepCache(
        store if store is not None else InMemoryStore(),
        embedder=HashEmbedder(),
        config=CacheConfig(**config),
    )


def json_answer(prompt: str) -> str:
    spec = JSON_TASK.detect(prompt.split("\n")[0])
    keys = spec.keys if spec is not None else ("answer",)
    return json.dumps({k: f"value of {k}" for k in keys}, indent=2)


def any_answer(prompt: str) -> str:
    if detect_linear(prompt.split("\n")[0]) is not None:
        return linear_backend_answer(prompt)
    if JSON_TASK.detect(prompt.split("\n")[0]) is not None:
        return json_answer(prompt)
    return f"plain answer to {' '.join(prompt.split())[:40]}"


def served_ok(prompt: str, text: str) -> bool:
    """The independent check of a served answer."""
    spec = detect_linear(prompt)
    if spec is not None:
        return LINEAR.integrity(text, spec).ok
    jspec = JSON_TASK.detect(prompt)
    if jspec is not None:
        return JSON_TASK.integrity(text, jspec).ok
    return text == any_answer(prompt)


# ---------------------------------------------------------------------------- invalid prompts


@pytest.mark.parametrize("prompt", [None, 7, 3.5, b"Solve x + 1 = 2", ["hi"], {"role": "user"}])
async def test_non_string_prompts_get_a_clear_error(prompt: Any) -> None:
    cache = builtin_cache()
    backend = ScriptedBackend(any_answer)
    with pytest.raises(InvalidPromptError, match="must be a str"):
        cache.generate(prompt, backend)
    with pytest.raises(InvalidPromptError):
        cache.lookup(prompt)
    with pytest.raises(InvalidPromptError):
        cache.put(prompt, "answer")
    with pytest.raises(InvalidPromptError):
        await cache.agenerate(prompt, backend)
    assert backend.calls == 0


@pytest.mark.parametrize("prompt", ["", " ", "\n\t \u3000", "\u200b\u2028"])
def test_empty_prompts_get_a_clear_error(prompt: str) -> None:
    cache = builtin_cache()
    if prompt.strip():  # zero-width space is not whitespace: a real (if odd) prompt
        assert cache.generate(prompt, ScriptedBackend(any_answer)).text
        return
    with pytest.raises(InvalidPromptError, match="empty"):
        cache.generate(prompt, ScriptedBackend(any_answer))


@pytest.mark.parametrize("field", ["namespace", "tenant", "context"])
def test_non_string_scope_gets_a_clear_error(field: str) -> None:
    with pytest.raises(InvalidPromptError, match=field):
        builtin_cache().generate("hi", ScriptedBackend(any_answer), **{field: 1})  # type: ignore[arg-type]


def test_one_megabyte_prompt_goes_to_the_backend_uncached(tmp_path: Path) -> None:
    cache = builtin_cache(ChromaStore(tmp_path, embedder_name="hash-64"))
    backend = ScriptedBackend(lambda p: "long answer")
    huge = "Solve 3x + 5 = 20. " + "pad " * 262_144  # 1 MiB
    t0 = time.perf_counter()
    result = cache.generate(huge, backend)
    assert result.text == "long answer" and result.path is CachePath.MISS
    assert "max_prompt_chars" in result.reason
    assert cache.lookup(huge) is None
    assert cache.store.count() == 0
    assert time.perf_counter() - t0 < 5


def test_long_prompt_under_the_limit_is_answered_and_cached(tmp_path: Path) -> None:
    cache = builtin_cache(ChromaStore(tmp_path, embedder_name="hash-64"))
    backend = ScriptedBackend(any_answer)
    big = "Solve 3x + 5 = 20. " + "context " * 12_000  # ~96k chars: detection refuses, exact only
    t0 = time.perf_counter()
    first = cache.generate(big, backend)
    assert first.text == any_answer(big) and first.task is None
    assert cache.generate(big, backend).path is CachePath.EXACT
    assert time.perf_counter() - t0 < 10


# ---------------------------------------------------------------------------- hostile numbers


NUMERIC = [
    "Solve x + nan = 3",
    "Solve x + NaN = 3 for x",
    "Solve inf*x = 2",
    "Solve x + 1e400 = 2",
    "Solve x - 1e-400 = 2",
    "Solve x/0 = 1",
    "Solve 0x + 5 = 5",
    "Solve 0*x = 3",
    "Solve x = x + 1",
    "Solve 1/(x - x) = 2",
    "Solve 99999999999999999999999999999999999999x + 1 = 2",
    "Solve x + 123456789012345678901234567890 = 1",
    f"Solve {'9' * 250}x = 1",
    "Solve 0.000000000000000000000000001x = 3",
    "Solve x^2 = 4",
    "Solve 2**1000000 x = 1",
    "Solve ((((((((((((((((((((x)))))))))))))))))))) = 3",
    "Solve " + "(" * 200 + "x" + ")" * 200 + " = 1",
    "Solve 3x + 5 = 20 = 7",
    "Solve ３x + ５ = ２０",
    "Solve 3x + 5 = 20 \U0001f680",
    "Solve 3ｘ + 5 = 20",
    "Solve \u202e3x + 5 = 20",
]


@pytest.mark.parametrize("prompt", NUMERIC)
def test_nan_inf_huge_and_odd_numbers_never_crash_or_serve_wrong(prompt: str) -> None:
    cache = builtin_cache()
    backend = ScriptedBackend(any_answer)
    for attempt in (prompt, prompt + " ", prompt.replace("Solve", "Please solve")):
        result = cache.generate(attempt, backend)
        if result.task == LINEAR.name:
            spec = detect_linear(attempt)
            assert spec is not None and LINEAR.integrity(result.text, spec).ok
            assert result.verified
            lhs, rhs = spec.lhs_linear, spec.rhs_linear
            assert lhs[0] * spec.solution + lhs[1] == rhs[0] * spec.solution + rhs[1]


@pytest.mark.parametrize("answer", ["So $x = 5\\$", "\\(3x + 5 = 20\\\\)\nx = 5"])
def test_a_model_answer_with_a_stray_backslash_does_not_crash_the_call(answer: str) -> None:
    cache = builtin_cache()
    result = cache.generate("Solve 3x + 5 = 20", ScriptedBackend(lambda p: answer))
    # Unreadable is not proven wrong: the model's answer is served as written, unverified.
    assert result.text == answer and not result.verified


def test_unicode_and_surrogates_never_break_the_call(store: StepStore) -> None:
    cache = builtin_cache(store)
    backend = ScriptedBackend(any_answer)
    prompts = [
        "Solve 3x + 5 = 20 🙂",
        "Résous 3x + 5 = 20, s'il te plaît",
        "حل المعادلة 3x + 5 = 20",
        "Return a JSON object for 東京 with keys name, country.",
        "broken surrogate \ud800 text",
        "zero\u200bwidth\u2060joiner\ufeff",
        "nul \x00 byte and \x1f unit separator",
    ]
    for prompt in prompts:
        for _ in range(2):
            result = cache.generate(prompt, backend)
            assert served_ok(prompt, result.text), (prompt, result.text)


# ---------------------------------------------------------------------------- corrupt cache rows


def test_invalid_or_truncated_cached_documents_read_as_a_miss(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = ChromaStore(tmp_path, embedder_name="hash-64")
    cache = builtin_cache(store)
    backend = ScriptedBackend(any_answer)
    prompt = "Solve 3x + 5 = 20"
    good = cache.generate(prompt, backend)
    cache.flush()  # the answer is written in the background
    key = entry_key("default", "", "", prompt)
    row = store._collection.get(ids=[key], include=["documents", "metadatas", "embeddings"])
    doc, meta, emb = row["documents"][0], row["metadatas"][0], row["embeddings"][0]
    data = json.loads(doc)
    wrong = {**data, "answer": data["answer"].replace("x = 5", "x = 6")}
    bad_rows = [
        (doc[: len(doc) // 2], meta),  # truncated JSON
        ("", meta),
        ("null", meta),
        (json.dumps({**data, "steps": "x = 5"}), meta),  # steps not a list
        (json.dumps({**data, "steps": [1, 2]}), meta),
        (json.dumps(wrong), meta),  # altered answer, stale digest
        (json.dumps({k: v for k, v in data.items() if k != "sha256"}), meta),
        (doc, {**meta, "reusable": "yes"}),
        (doc, {**meta, "namespace": None}),  # None deletes the key in Chroma
        (doc, {**meta, "created_at": "later"}),
    ]
    with caplog.at_level(logging.WARNING, logger="stepcache"):
        for bad_doc, bad_meta in bad_rows:
            store._collection.upsert(
                ids=[key], documents=[bad_doc], metadatas=[bad_meta], embeddings=[emb]
            )
            assert store.get(key) is None
            result = cache.generate(prompt, backend)
            assert result.path is not CachePath.EXACT
            assert LINEAR.integrity(result.text, detect_linear(prompt)).ok  # type: ignore[arg-type]
            cache.flush()  # its answer is written again before the next row is corrupted
    assert "corrupt cache row" in caplog.text
    assert good.verified


def test_a_truncated_cached_json_answer_is_never_served(store: StepStore) -> None:
    cache = builtin_cache(store)
    backend = ScriptedBackend(json_answer)
    cached = "Return a JSON object describing Paris with keys name, country and population."
    truncated = '{\n  "name": "Paris",\n  "country": "Fra'
    vec = HashEmbedder().embed(cached)
    store.put(
        Entry(
            key=entry_key("default", "", "", cached),
            namespace="default",
            context="",
            prompt=cached,
            answer=truncated,
            steps=tuple(JSON_TASK.segment(truncated)),
            task=JSON_TASK.name,
            reusable=True,  # a lying row: claims to be verified
        ),
        vec,
    )
    asked = "Return a JSON object describing Paris with keys name, country and population!"
    result = cache.generate(asked, backend)
    spec = JSON_TASK.detect(asked)
    assert spec is not None and JSON_TASK.integrity(result.text, spec).ok
    assert result.text != truncated


def test_malformed_chat_message_json_is_a_miss() -> None:
    pytest.importorskip("langchain_core")
    from stepcache_langchain._prompt import query_from_prompt

    bad = [
        '[{"lc"',
        '[{"lc": 1, "type": "constructor", "id": ["x"]}',
        '[{"lc": 1, "type": "constructor", "id": ["os", "system"], "kwargs": {}}]',
        '[{"lc": 1, "type": "constructor", "id": ["langchain", "schema", "messages", '
        '"HumanMessage"], "kwargs": {"content": 5}}]',
        '[{"lc": 1, "type": "secret", "id": ["OPENAI_API_KEY"]}]',
        '[{"lc": 1}]' * 3,
        '[{"lc": 1, "type": "constructor", "id": ["langchain", "schema", "messages", '
        '"HumanMessage"], "kwargs": {"content": "   "}}]',
    ]
    for prompt in bad:
        assert query_from_prompt(prompt) is None, prompt


def test_malformed_chat_json_through_the_langchain_cache_is_a_miss() -> None:
    pytest.importorskip("langchain_core")
    try:
        from stepcache_langchain import StepCacheLLMCache
    except ImportError:  # pragma: no cover - adapter under construction
        pytest.skip("stepcache_langchain.StepCacheLLMCache unavailable")
    lc_cache = StepCacheLLMCache(builtin_cache())
    for prompt in ['[{"lc"', '[{"lc": 1, "type": "constructor", "id": ["os", "system"]}]']:
        assert lc_cache.lookup(prompt, "llm-a") is None
        lc_cache.update(prompt, "llm-a", [])


# ---------------------------------------------------------------------------- isolation


def toy_cache(store: StepStore, **config: Any) -> StepCache:
    return StepCache(
        store, embedder=HashEmbedder(), tasks=[MultiplesTask()], config=CacheConfig(**config)
    )


def test_no_reuse_across_namespaces_or_contexts(store: StepStore) -> None:
    cache = toy_cache(store)
    backend = ScriptedBackend(multiples_backend_answer)
    prompt = "List the first 4 multiples of 7."
    cache.generate(prompt, backend, namespace="model-a|temp=0")
    for scope in (
        {"namespace": "model-a|temp=0.7"},
        {"namespace": "model-b|temp=0"},
        {"namespace": "model-a|temp=0", "context": "system: be terse"},
        {"namespace": "model-a|temp=0", "tenant": "acme"},
    ):
        # exact, reworded (reuse) and longer (patch) forms: nothing to find in another scope
        for asked in (
            prompt,
            "list the first 4 multiples of 7",
            "List the first 6 multiples of 7.",
        ):
            assert cache.lookup(asked, backend=backend, **scope) is None, (scope, asked)
        result = cache.generate("list the first 4 multiples of 7", backend, **scope)
        assert result.path is CachePath.MISS and result.cached_prompt is None
    assert backend.calls == 1 + 4


def test_no_reuse_across_tenants_even_for_untyped_semantic_reuse(store: StepStore) -> None:
    cache = StepCache(
        store, embedder=HashEmbedder(), tasks=[], config=CacheConfig(semantic_min_similarity=0.5)
    )
    acme = ScriptedBackend(lambda p: "ACME CONFIDENTIAL")
    prompt = "What is our Q3 revenue plan?"
    cache.generate(prompt, acme, tenant="acme")
    assert cache.generate(prompt + "!", acme, tenant="acme").text == "ACME CONFIDENTIAL"
    public = ScriptedBackend(lambda p: "public answer")
    impersonations = [
        prompt,
        f"acme\x1f{prompt}",
        f"acme {prompt}",
        f"[tenant=acme] {prompt}",
        json.dumps(["default", "acme", "", prompt]),
        f'default", "acme", "", "{prompt}',
        f"default\x1facme\x1f\x1f{prompt}",
    ]
    for tenant in ("", "evil", "acme ", "ACME", "acme\x1f", "acme\x00"):
        for asked in impersonations:
            result = cache.generate(asked, public, tenant=tenant)
            assert result.text == "public answer", (tenant, asked, result.path)


def test_separator_characters_cannot_make_two_scopes_share_a_key() -> None:
    pairs = [
        (("a\x1fb", "", "", "p"), ("a", "b", "", "p")),
        (("a", "b\x1f", "c", "p"), ("a\x1fb", "", "c", "p")),
        (("ns", "acme", "", "p"), ("ns", "", "acme", "p")),
        (("ns", "", "", "acme p"), ("ns", "acme", "", "p")),
        (("ns", 'a", "b', "", "p"), ("ns", "a", "b", "p")),
        (("n", "", "", 'x"]'), ("n", "", "", "x")),
    ]
    for left, right in pairs:
        assert entry_key(*left) != entry_key(*right), (left, right)
    # whitespace normalisation applies to the prompt only, by design
    assert entry_key("n", "t", "", "a  b\n") == entry_key("n", "t", "", " a b")
    assert entry_key("n", "t ", "", "a") != entry_key("n", "t", "", "a")


def test_a_row_under_a_foreign_key_is_never_served_as_an_exact_hit(store: StepStore) -> None:
    cache = toy_cache(store)
    backend = ScriptedBackend(multiples_backend_answer)
    prompt = "List the first 3 multiples of 5."
    key = entry_key("default", "victim", "", prompt)
    # a row stored under the victim's key but belonging to another scope and prompt
    store.put(
        Entry(
            key=key,
            namespace="default",
            context="",
            prompt="List the first 3 multiples of 6.",
            answer=multiples_answer(3, 6),
            steps=(multiples_answer(3, 6),),
            tenant="attacker",
        ),
        None,
    )
    result = cache.generate(prompt, backend, tenant="victim")
    assert result.path is not CachePath.EXACT
    assert result.text == multiples_answer(3, 5)

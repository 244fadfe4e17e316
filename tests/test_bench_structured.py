"""The `structured` benchmark workload: nested JSON Schema objects, its checker, the
schema-constrained memo backend and a fake-backend run over its arms."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from stepcache_bench.checks import check_answer
from stepcache_bench.fake import FakeModel, HashEmbedder
from stepcache_bench.harness import Integrity, MemoBackend, MemoTable, build_arms, measure
from stepcache_bench.metrics import summarize
from stepcache_bench.run import workloads_for
from stepcache_bench.structured import (
    SCHEMA_CHANGES,
    STRUCTURED_KINDS,
    generate_structured_workload,
    request_schemas,
)
from stepcache_bench.workload import Request, Workload, generate_workload
from stepcache_core import Completion, TaskRegistry


@pytest.fixture(scope="module")
def w42() -> Workload:
    return generate_structured_workload(42)


def _fake_answer(request: Request) -> str:
    return FakeModel().complete_json(request.prompt, json.loads(request.schema)).text


# ---------------------------------------------------------------------------- the workload


def test_counts_per_kind(w42: Workload) -> None:
    assert len(w42.bases) == 10
    assert len(w42.requests) == 10 * len(STRUCTURED_KINDS) * 3 == 210
    assert Counter(r.kind for r in w42.requests) == {kind: 30 for kind in STRUCTURED_KINDS}
    per_base = Counter((r.base_id, r.kind) for r in w42.requests)
    assert set(per_base.values()) == {3}
    assert {r.family for r in (*w42.bases, *w42.requests)} == {"structured"}
    assert {r.workload for r in (*w42.bases, *w42.requests)} == {"structured"}
    prompts = [r.prompt for r in (*w42.bases, *w42.requests)]
    assert len(set(prompts)) == len(prompts)


def test_small_and_invalid_sizes() -> None:
    w = generate_structured_workload(7, bases=2, k=1)
    assert Counter(r.kind for r in w.requests) == {kind: 2 for kind in STRUCTURED_KINDS}
    with pytest.raises(ValueError):
        generate_structured_workload(7, bases=11)
    with pytest.raises(ValueError):
        generate_structured_workload(7, k=4)


def test_deterministic_per_seed(w42: Workload) -> None:
    assert generate_structured_workload(42) == w42
    other = generate_structured_workload(43)
    assert [r.prompt for r in other.requests] != [r.prompt for r in w42.requests]


def _nests(schema: Any) -> bool:
    """An object or an array of objects somewhere below the root."""
    return any(
        sub.get("type") == "object" or sub.get("items", {}).get("type") == "object"
        for sub in schema["properties"].values()
    )


def test_the_schema_task_detects_every_prompt_with_its_schema(w42: Workload) -> None:
    registry = TaskRegistry.with_builtins()
    for r in (*w42.bases, *w42.requests):
        found = registry.detect(r.prompt)
        assert found is not None, r.prompt
        task, spec = found
        assert task.name == "json_schema", r.id
        assert json.loads(spec.identity) == json.loads(r.schema), r.id
        assert _nests(json.loads(r.schema)), r.id


def test_every_prompt_is_answered_validly_by_the_fake_model(w42: Workload) -> None:
    """Constrained (complete_json) and plain (the schema read from the prompt) alike."""
    fake = FakeModel()
    for r in (*w42.bases, *w42.requests):
        assert check_answer(_fake_answer(r), r, reused_other=False).ok, r.id
        verdict = check_answer(fake.complete(r.prompt).text, r, reused_other=False)
        assert verdict.ok, (r.id, verdict.reason)


def test_kinds_are_graded_against_the_new_schema_and_the_stated_values(w42: Workload) -> None:
    """The base's own answer: right for a rewording, wrong for every other kind."""
    bases = {b.id: b for b in w42.bases}
    for r in w42.requests:
        base = bases[r.base_id]
        assert r.core == (r.kind == "subject_change")
        stale = check_answer(_fake_answer(base), r, reused_other=False)
        if r.kind == "rewording":
            assert (r.schema, r.stated) == (base.schema, base.stated)
            assert stale.ok, r.id
        elif r.kind == "subject_change":
            assert r.schema == base.schema and r.stated != base.stated
            assert not stale.ok and "the request states" in stale.reason, r.id
        else:
            assert r.kind in SCHEMA_CHANGES
            assert r.schema != base.schema and r.stated == base.stated
            assert not stale.ok, (r.id, r.detail)


def test_checker_reasons() -> None:
    w = generate_structured_workload(42, bases=1, k=1)
    base = w.bases[0]
    good = json.loads(_fake_answer(base))
    assert check_answer(f"```json\n{json.dumps(good)}\n```", base, reused_other=False).ok
    assert not check_answer("no object here", base, reused_other=False).ok
    pointer, value = base.stated[0]
    wrong = json.loads(json.dumps(good))
    node = wrong
    *parents, last = pointer.strip("/").split("/")
    for part in parents:
        node = node[part]
    node[last] = value.upper() + " II"
    verdict = check_answer(json.dumps(wrong), base, reused_other=False)
    assert not verdict.ok and pointer in verdict.reason
    node[last] = f"  {value.upper()} "  # case and spacing aside
    assert check_answer(json.dumps(wrong), base, reused_other=False).ok
    extra = {**good, "unexpected": 1}
    assert not check_answer(json.dumps(extra), base, reused_other=False).ok
    other = next(r for r in w.requests if r.kind == "subject_change")
    answer = _fake_answer(other)
    assert check_answer(answer, other, reused_other=False).ok
    assert not check_answer(answer, other, reused_other=True).ok  # served from another prompt


def test_workload_all_runs_the_three_workloads() -> None:
    named = workloads_for("all", [42], 1, 1)
    assert [n for n, _ in named] == ["paper", "hard", "structured"]
    assert workloads_for("structured", [42], 1, 1)[0][1] == generate_structured_workload(42, 1, 1)


def test_the_structured_workload_can_be_sized_on_its_own() -> None:
    named = dict(workloads_for("all", [42], 2, 3, sizes={"structured": (1, 2)}))
    assert named["structured"] == generate_structured_workload(42, 1, 2)
    assert named["paper"] == generate_workload(42, 2, 3)  # the others keep --bases and --k


# ---------------------------------------------------------------------------- the backend


class _Recording(FakeModel):
    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str | None]] = []

    def complete(self, prompt: str, max_tokens: int | None = None) -> Completion:
        self.calls.append(("complete", prompt, None))
        return super().complete(prompt, max_tokens)

    def complete_json(
        self, prompt: str, schema: Mapping[str, Any], max_tokens: int | None = None
    ) -> Completion:
        self.calls.append(("complete_json", prompt, json.dumps(schema, sort_keys=True)))
        return super().complete_json(prompt, schema, max_tokens)


def test_memo_backend_constrains_structured_prompts_and_keys_the_memo_by_schema(
    tmp_path: Path,
) -> None:
    w = generate_structured_workload(42, bases=1, k=1)
    base = w.bases[0]
    schema = json.loads(base.schema)
    inner = _Recording()
    memo_file = tmp_path / "memo.jsonl"
    table = MemoTable(memo_file, model="m")
    backend = MemoBackend(inner, table, schemas=request_schemas(w))
    first = backend.complete(base.prompt, 256)
    assert inner.calls == [("complete_json", base.prompt, json.dumps(schema, sort_keys=True))]
    assert backend.complete(base.prompt, 256) == first and len(inner.calls) == 1  # memoized
    backend.complete("Say hello.", 8)  # no schema for this prompt: a plain call
    assert inner.calls[-1] == ("complete", "Say hello.", None)
    other = {"type": "object", "properties": {"/x": {"type": "integer"}}, "required": ["/x"]}
    backend.complete_json(base.prompt, other, 256)  # same prompt, another schema: computed
    assert len(inner.calls) == 3 and inner.calls[-1][2] == json.dumps(other, sort_keys=True)
    assert [c.computed for c in backend.take()] == [True, False, True, True]
    reloaded = MemoTable(memo_file, model="m")
    assert reloaded.loaded == 3
    again = MemoBackend(_Recording(), reloaded, schemas=request_schemas(w))
    assert again.complete(base.prompt, 256) == first
    assert again.complete_json(base.prompt, other, 256).text == json.dumps({"/x": 7})
    rows = [json.loads(line) for line in memo_file.read_text().splitlines()]
    assert ["schema" in row for row in rows] == [True, False, True]


def test_fake_run_stepcache_serves_no_wrong_answer_and_semantic_does(tmp_path: Path) -> None:
    w = generate_structured_workload(42, bases=2, k=1)
    inner = _Recording()
    arms = build_arms(
        inner,
        MemoTable(),
        HashEmbedder(),
        tmp_path,
        max_tokens=256,
        semantic_min_similarity=0.8,
        arms=["no_cache", "semantic", "stepcache"],
        schemas=request_schemas(w),
    )
    integrity = Integrity()
    records = []
    try:
        for b in w.bases:
            for arm in arms:
                arm.warm(b.prompt)
                arm.backend.take()
        for r in w.requests:
            records.extend(measure(arms, r, integrity))
    finally:
        for arm in arms:
            arm.close()
    summary = summarize(records, ["no_cache", "semantic", "stepcache"])
    sc, sem = summary["arms"]["stepcache"], summary["arms"]["semantic"]
    assert summary["arms"]["no_cache"]["correct_task"] == 1.0
    assert sc["correct_task"] == 1.0 and sc["wrong_served"] == 0 and sc["correct_integrity"] == 1.0
    kinds = summary["by_kind"]["stepcache"]
    assert kinds["structured/rewording"]["paths"]["reuse"] == 2
    assert kinds["structured/subject_change"]["paths"]["skip"] == 2
    for kind in SCHEMA_CHANGES:
        assert kinds[f"structured/{kind}"]["paths"]["patch"] == 2, kind
    sem_kinds = summary["by_kind"]["semantic"]
    for kind in (*SCHEMA_CHANGES, "subject_change"):
        assert sem_kinds[f"structured/{kind}"]["wrong_served"] >= 1, kind
    assert sem["wrong_served"] >= len(SCHEMA_CHANGES) + 1
    # every arm's answer to a request came through constrained decoding with its schema
    schemas = request_schemas(w)
    plain = [p for kind, p, _ in inner.calls if kind == "complete" and p in schemas]
    assert plain == []
    asked = {(p, s) for kind, p, s in inner.calls if kind == "complete_json" and p in schemas}
    assert {p for p, _ in asked} >= {r.prompt for r in w.requests if r.kind != "rewording"}
    assert all(s == json.dumps(schemas[p], sort_keys=True) for p, s in asked)


def test_a_bad_size_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    from stepcache_bench.run import main

    for size in (["nope", "1", "1"], ["hard", "0", "1"], ["hard", "two", "1"]):
        with pytest.raises(SystemExit) as exit_info:
            main(
                [
                    "--backend",
                    "fake",
                    "--embedder",
                    "hash",
                    "--size",
                    *size,
                    "--out",
                    "/nonexistent",
                ]
            )
        assert exit_info.value.code == 2
        assert "--size" in capsys.readouterr().err

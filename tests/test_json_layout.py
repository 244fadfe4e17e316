"""A model's JSON answer that fails only the layout its request asks for for certain (one line,
raw JSON) is served laid out as asked, every token as the model wrote it; anything else the
check finds keeps the model's answer as written (never worse than the model)."""

from __future__ import annotations

import json

import pytest

from stepcache_core import CacheConfig, InMemoryStore, Path, Result, StepCache, TaskRegistry
from stepcache_core.tasks.json import JsonObjectTask
from stepcache_core.tasks.json.layout import minified, relaid
from stepcache_core.tasks.json.parse import detect_json_spec

from conftest import HashEmbedder, ScriptedBackend

ONE_LINE = (
    "Output only a JSON object describing a pretend car that has exactly these fields: "
    "make: string, model: string, mileage_km: integer. Put it on one line, minified."
)
RAW = (
    "Give me a JSON object for a fictional hotel with the keys name: string, stars: integer, "
    "has_pool: boolean. No other keys. Raw JSON, no markdown."
)
PRETTY = '{\n  "make": "Toyota",\n  "model": "Corolla  GT",\n  "mileage_km": 120000\n}'


def cache() -> StepCache:
    return StepCache(
        InMemoryStore(),
        embedder=HashEmbedder(),
        tasks=TaskRegistry.with_builtins(),
        config=CacheConfig(max_miss_repairs=0),
    )


def test_minified_keeps_strings_and_escapes_byte_for_byte() -> None:
    text = '{\n  "a b": "x  \\" y\\n",\n  "n": 1.50,\n  "l": [ 1, 2 ]\n}'
    assert minified(text) == '{"a b":"x  \\" y\\n","n":1.50,"l":[1,2]}'
    assert json.loads(minified(text)) == json.loads(text)


def test_a_pretty_printed_answer_to_a_one_line_request_is_served_on_one_line() -> None:
    model = ScriptedBackend(lambda p: PRETTY)
    result = cache().generate(ONE_LINE, model)
    assert result.text == '{"make":"Toyota","model":"Corolla  GT","mileage_km":120000}'
    assert result.verified and result.path is Path.MISS and model.calls == 1
    assert "laid out as the request asks" in result.reason
    assert "".join(s.text for s in result.steps) == result.text


def test_a_fenced_answer_to_a_raw_json_request_loses_only_its_fence_lines() -> None:
    fenced = '```json\n{"name": "Sea View", "stars": 4, "has_pool": true}\n```'
    result = cache().generate(RAW, ScriptedBackend(lambda p: fenced))
    assert result.text == '{"name": "Sea View", "stars": 4, "has_pool": true}'
    assert result.verified


@pytest.mark.parametrize(
    "answer",
    [
        # an extra key: the model may have read the request otherwise; no proof, no change
        '{\n  "make": "Toyota",\n  "model": "Corolla",\n  "mileage_km": 1,\n  "year": 2020\n}',
        # a value of the wrong type is more than layout
        '{\n  "make": "Toyota",\n  "model": "Corolla",\n  "mileage_km": "many"\n}',
        # two objects: not one answer to lay out
        '{"make": "A", "model": "B", "mileage_km": 1}\n{\n "make": "C"\n}',
    ],
)
def test_an_answer_with_more_than_a_layout_problem_is_served_as_written(answer: str) -> None:
    result = cache().generate(ONE_LINE, ScriptedBackend(lambda p: answer))
    assert result.text == answer
    assert "laid out" not in result.reason


def test_a_request_with_words_the_task_does_not_read_keeps_the_models_layout() -> None:
    prompt = ONE_LINE + " Indent it like the example in our style guide."
    spec = detect_json_spec(prompt)
    assert spec is not None and not spec.understood
    assert relaid(PRETTY, spec) is None
    result = cache().generate(prompt, ScriptedBackend(lambda p: PRETTY))
    assert result.text == PRETTY and not result.verified


def test_a_request_without_a_layout_rule_is_never_relaid() -> None:
    prompt = ONE_LINE.replace(" Put it on one line, minified.", "")
    spec = detect_json_spec(prompt)
    assert spec is not None and not spec.compact
    assert JsonObjectTask().relayout(PRETTY, spec) is None
    assert cache().generate(prompt, ScriptedBackend(lambda p: PRETTY)).text == PRETTY


def test_streamed_steps_join_to_the_relaid_answer() -> None:
    items = list(cache().stream(ONE_LINE, ScriptedBackend(lambda p: PRETTY)))
    result = items[-1]
    assert isinstance(result, Result) and result.text.startswith('{"make":"Toyota"')
    assert "".join(i.text for i in items[:-1] if not isinstance(i, Result)) == result.text

"""The JSON task understands a request in full or not at all: key lists read as written, masks
that cover exactly the keys, no example read as a schema, no value constraint or note read as a
key-set or layout rule, and a model's answer replaced only when it is proven wrong."""

from __future__ import annotations

import itertools

import pytest

from stepcache_bench.workload import _FILLERS, _JSON_TEMPLATES, _json_prompt, _subject_phrase
from stepcache_core import InMemoryStore, StepCache
from stepcache_core.tasks.json import JsonObjectTask, detect_json_spec

from conftest import HashEmbedder, ScriptedBackend

TASK = JsonObjectTask()


# ------------------------------------------------------------------ 1. key lists as written


@pytest.mark.parametrize(
    ("prompt", "keys"),
    [
        (
            "Give me a JSON object for a fictional person with the fields name, age and "
            "properties. No other keys.",
            ("name", "age", "properties"),
        ),
        ("JSON object for a flight with the keys from, to and value.", ("from", "to", "value")),
        ("A JSON object with the fields type, name and key.", ("type", "name", "key")),
        (
            "Give me a JSON object with the keys größe, user.id and zip-code.",
            ("größe", "user.id", "zip-code"),
        ),
        ('Give me a JSON object with the keys "zip  code" and "name".', ("zip  code", "name")),
        (
            "Create a pretend product as JSON. Use these keys:\n- value (number)\n- type (string)",
            ("value", "type"),
        ),
    ],
)
def test_a_key_list_is_read_as_written(prompt: str, keys: tuple[str, ...]) -> None:
    spec = detect_json_spec(prompt)
    assert spec is not None and spec.keys == keys


def test_whitespace_inside_a_quoted_key_is_part_of_the_key() -> None:
    one = detect_json_spec('A JSON object with the keys "zip code" and "name".')
    two = detect_json_spec('A JSON object with the keys "zip  code" and "name".')
    assert one is not None and two is not None and one.keys != two.keys


@pytest.mark.parametrize(
    "prompt",
    [
        "JSON object with the keys name, no and city.",  # 'no' is never a bare key
        "A JSON object with the fields name, age and value of the person.",  # key or prose?
        "Create a pretend product as JSON. Use these keys:\n- name\n- all of them strings",
        # two lists: is `data` a key of the object, or the one above it?
        "A JSON object with the keys name and age. Nest it under a top-level key `data`.",
        # after the item its "and" joined, the list has ended: the next word is prose
        "A JSON object with the keys name, age and city, quickly.",
        "A JSON object with the keys `name`, `age` and `city`, respectively.",
        "A JSON object with the keys name and age, city.",
        # bullets nested under a key: the keys of an inner object, not of this one
        "Create a person as JSON. Use these keys:\n- name\n- address\n  - street\n  - city",
        "Create a person as JSON. Use these keys:\n- name\n- address:\n- street\n- city",
    ],
)
def test_a_key_list_with_words_that_may_be_prose_is_refused(prompt: str) -> None:
    assert detect_json_spec(prompt) is None


@pytest.mark.parametrize("word", ["please", "thanks", "thank you", "kindly", "ok"])
def test_a_polite_word_after_the_last_key_is_no_key(word: str) -> None:
    spec = detect_json_spec(f"A JSON object with the keys name, age, city, {word}.")
    assert spec is not None and spec.keys == ("name", "age", "city")


# ------------------------------------------------------------------ 2. masks cover the keys


def test_the_key_list_mask_stops_before_the_words_that_follow_it() -> None:
    bench = (
        "Return a JSON object representing a hypothetical person, with fields name: string, "
        "age: integer, city: string and no other fields."
    )
    composed = (
        "Give me a JSON object for a made-up person with the keys name (string), age (integer) "
        "and city (string). No other keys."
    )
    a, b = detect_json_spec(bench), detect_json_spec(composed)
    assert a is not None and b is not None and a.keys == b.keys
    assert TASK.residue(bench, a) == TASK.residue(composed, b) == ("person",)


def test_every_benchmark_template_has_the_residue_of_its_subject() -> None:
    keys = (("name", "string"), ("age", "integer"), ("city", "string"), ("email", "string"))
    for template, filler, style in itertools.product(range(len(_JSON_TEMPLATES)), _FILLERS, (0, 1)):
        prompt = _json_prompt(template, _subject_phrase(filler, "person"), keys, style)
        spec = detect_json_spec(prompt)
        assert spec is not None and spec.keys == tuple(k for k, _ in keys), prompt
        assert TASK.residue(prompt, spec) == ("person",), prompt


# ------------------------------------------------------------------ 3. no misread rules


def test_an_example_object_is_not_a_schema() -> None:
    example = '{"name": "Ann", "properties": {"height": {"type": "tall"}}, "id": 3}'
    spec = detect_json_spec(
        f"Give me a JSON object for a person with the keys name and age. For example: {example}"
    )
    assert spec is not None and spec.keys == ("name", "age")
    schema = (
        '{"type": "object", "properties": {"name": {"type": "string"}, '
        '"age": {"type": "integer"}}, "required": ["name", "age"]}'
    )
    real = detect_json_spec(f"Return a JSON object matching this schema: {schema}")
    assert real is not None and real.keys == ("name", "age")
    assert real.value_schema("age") == {"type": "integer"}


def test_at_least_about_a_value_does_not_allow_other_keys() -> None:
    value = detect_json_spec(
        "Give me a JSON object for a person with the keys name and age. The age must be at "
        "least 18."
    )
    assert value is not None and value.forbid_extra
    keys = detect_json_spec("Give me a JSON object for a person with at least the keys name, age.")
    assert keys is not None and not keys.forbid_extra


def test_a_one_line_note_is_not_a_one_line_object() -> None:
    spec = detect_json_spec(
        "Write a JSON object for a hypothetical hotel containing the keys name (string), stars "
        "(integer) and city (string). Add a one-line note on how to check the answer."
    )
    assert spec is not None and not spec.compact
    wanted = detect_json_spec(
        "Return a JSON object for a cat with keys name, age. Put it on one line."
    )
    assert wanted is not None and wanted.compact
    unclear = "Return a JSON object for a cat with keys name, age. Keep the bio on one line."
    assert detect_json_spec(unclear) is None


# ------------------------------------------------------------------ 4. never worse than the model

TYPED = "Give me a JSON object for a person with the keys name (string) and age (integer)."


@pytest.mark.parametrize(
    ("answer", "proof"),
    [
        ('{"name": "Ann", "age": "thirty"}', True),  # a stated type broken, keys as asked
        ('{"name": "Ann"}', True),  # a requested key left out; every key it has was asked
        ('{"nom": "Ann"}', False),  # a key not asked for: it may have read another list
        ('{"name": "Ann", "age": 30, "city": "Oslo"}', False),  # an extra key
        ('{"name": "Ann", "age": "thirty", "city": "Oslo"}', False),  # extra key and bad value
        ('```json\n{"name": "Ann", "age": 30}\n```', None),  # right: no failure at all
    ],
)
def test_only_a_left_out_key_or_a_value_breaking_its_type_proves_an_answer_wrong(
    answer: str, proof: bool | None
) -> None:
    spec = detect_json_spec(TYPED)
    assert spec is not None
    check = TASK.integrity(answer, spec)
    assert check.ok is (proof is None)
    assert check.wrong is bool(proof) and TASK.proven_wrong(answer, spec, check) is bool(proof)


def test_an_empty_value_for_an_untyped_key_or_a_layout_is_no_proof() -> None:
    untyped = detect_json_spec("Give me a JSON object for a person with the keys name and age.")
    assert untyped is not None
    empty = TASK.integrity('{"name": "", "age": 3}', untyped)
    assert not empty.ok and not TASK.proven_wrong('{"name": "", "age": 3}', untyped, empty)
    raw = detect_json_spec(TYPED + " Raw JSON, no code fences.")
    fenced = '```json\n{"name": "Ann", "age": "x"}\n```'
    assert raw is not None and raw.bare
    check = TASK.integrity(fenced, raw)
    assert not check.ok and not TASK.proven_wrong(fenced, raw, check)


def test_a_model_answer_with_other_keys_is_served_unchanged() -> None:
    """The model read 'properties' as a key; so do we: its answer is verified as written. An
    answer with a key we did not ask for is served as the model wrote it, never trimmed."""
    cache = StepCache(InMemoryStore(), embedder=HashEmbedder(), tasks=[JsonObjectTask()])
    right = '{"name": "Ann", "age": 30, "properties": {"tall": true}}'
    first = cache.generate(
        "Give me a JSON object for a person with the fields name, age and properties.",
        ScriptedBackend(lambda p: right),
    )
    assert first.text == right and first.verified
    extra = '{"name": "Ann", "age": 30, "nickname": "An"}'
    second = cache.generate(
        "Give me a JSON object for a pet with the keys name and age.",
        ScriptedBackend(lambda p: extra),
    )
    assert second.text == extra and not second.verified


def test_a_proven_wrong_answer_is_repaired_in_its_wrong_value_only() -> None:
    cache = StepCache(InMemoryStore(), embedder=HashEmbedder(), tasks=[JsonObjectTask()])
    wrong = '{\n  "name": "Ann",\n  "age": "thirty"\n}'
    backend = ScriptedBackend(lambda p: wrong if p == TYPED else '{"age": 30}')
    result = cache.generate(TYPED, backend)
    assert result.verified and backend.calls == 2
    assert result.text == '{\n  "name": "Ann",\n  "age": 30\n}'

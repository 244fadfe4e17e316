"""JSON text: extracting the one object from a reply, member steps, exact round-trips."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stepcache_core.tasks.json.text import (
    extract_object,
    find_objects,
    parse_member,
    render_member,
    set_comma,
)

FIXTURES = Path(__file__).resolve().parent / "fixtures"


def json_rows() -> list[dict[str, Any]]:
    path = FIXTURES / "qwen2.5-coder-0.5b-answers.jsonl"
    if not path.exists():
        pytest.skip(f"fixture file missing: {path}")
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [r for r in rows if r["family"] == "json"]


FENCED = '```json\n{\n  "name": "Alice",\n  "age": 30,\n  "city": "New York"\n}\n```'


def test_fenced_object_splits_into_prefix_members_suffix() -> None:
    obj = extract_object(FENCED)
    assert obj is not None
    assert obj.value == {"name": "Alice", "age": 30, "city": "New York"}
    assert obj.steps() == [
        "```json\n{",
        '\n  "name": "Alice",',
        '\n  "age": 30,',
        '\n  "city": "New York"',
        "\n}\n```",
    ]


@pytest.mark.parametrize(
    "text",
    [
        '{"a": 1, "b": [1, 2]}',
        'Here is the object:\n```json\n{"a": 1, "b": [1, 2]}\n```\nHope it helps!',
        'Sure! {"a": 1, "b": [1, 2]} -- done.',
        '```\n{"a": 1, "b": [1, 2]}\n```',
        '~~~json\n{"a": 1,\n "b": [1, 2]}\n~~~',
        '  \n{ "a" : 1 , "b" : [1, 2] }  \n',
        'Use {placeholders} in prose, then: {"a": 1, "b": [1, 2]}',
    ],
)
def test_extraction_reads_fences_and_prose_around_the_object(text: str) -> None:
    obj = extract_object(text)
    assert obj is not None
    assert obj.value == {"a": 1, "b": [1, 2]}
    assert "".join(obj.steps()) == text
    assert len(obj.steps()) == 4


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ('```json\n{\n  "a": 1,\n  "b": [1, 2,', "truncated"),
        ('{"a": 1,}', "expected a quoted key"),
        ("{'a': 1}", "no JSON object"),
        ('{"a": NaN}', "invalid"),
        ('{"a": 1 "b": 2}', "expected ','"),
        ('{"a": 1}\n{"b": 2}', "2 JSON objects"),
        ('[{"a": 1}, {"a": 2}]', "JSON array"),
        ('[\n  {"a": 1}\n]', "JSON array"),
        ("no json here", "no JSON object"),
        ("", "no JSON object"),
    ],
)
def test_invalid_truncated_or_ambiguous_text_is_not_extractable(text: str, reason: str) -> None:
    assert extract_object(text) is None
    assert reason in find_objects(text).problem


def test_nested_values_and_duplicates() -> None:
    text = '{"a": {"x": [1, {"y": null}]}, "b": "}", "a": 2}'
    obj = extract_object(text)
    assert obj is not None
    assert obj.keys == ["a", "b", "a"]
    assert obj.duplicates == ["a"]
    assert obj.value == {"a": 2, "b": "}"}


def test_empty_object_is_prefix_and_suffix() -> None:
    obj = extract_object("Result: {} ok")
    assert obj is not None
    assert obj.steps() == ["Result: {", "} ok"]


def test_member_steps_parse_back_to_key_and_value() -> None:
    obj = extract_object(FENCED)
    assert obj is not None
    members = [parse_member(s) for s in obj.steps()[1:-1]]
    assert [(m.key, m.value) for m in members if m] == [
        ("name", "Alice"),
        ("age", 30),
        ("city", "New York"),
    ]
    assert members[1] is not None and members[1].value_text == "30"
    assert parse_member("```json\n{") is None
    assert parse_member("\n}\n```") is None
    assert parse_member('"a": 1, "b": 2') is None
    assert parse_member('"a": [1, 2') is None


def test_set_comma_and_render_member() -> None:
    assert set_comma('\n  "a": 1,', comma=False) == '\n  "a": 1'
    assert set_comma('\n  "a": 1', comma=True) == '\n  "a": 1,'
    rendered = render_member("tags", ["x", {"k": 1}], "\n  ", comma=True)
    assert rendered == '\n  "tags": [\n    "x",\n    {\n      "k": 1\n    }\n  ],'
    assert render_member("é", "ü", " ", comma=False, compact=True) == ' "é": "ü"'
    obj = extract_object("{" + rendered.rstrip(",") + "\n}")
    assert obj is not None and obj.value == {"tags": ["x", {"k": 1}]}


def test_fixture_answers_extract_except_the_truncated_ones() -> None:
    rows = json_rows()
    assert len(rows) == 20
    for row in rows:
        obj = extract_object(row["output"])
        if row["finish_reason"] == "length":
            assert obj is None
            assert "truncated" in find_objects(row["output"]).problem
            continue
        assert obj is not None, row["output"]
        assert "".join(obj.steps()) == row["output"]
        assert obj.prefix == "```json\n{" and obj.suffix == "\n}\n```"
    extractable = [r for r in rows if extract_object(r["output"]) is not None]
    assert len(extractable) == 16


# ------------------------------------------------------------------------------ properties

_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**6), 10**6),
    st.floats(allow_nan=False, allow_infinity=False, width=32),
    st.text(max_size=8),
)
_values = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=6,
)
_objects = st.dictionaries(st.text(max_size=6), _values, max_size=6)
_prose = st.text(alphabet=st.characters(blacklist_characters="{[]}\"'`"), max_size=20)


@settings(max_examples=300, deadline=None)
@given(_objects, _prose, _prose, st.sampled_from([None, 0, 2, 4]), st.booleans(), st.booleans())
def test_any_object_in_any_prose_round_trips(
    value: dict[str, Any], before: str, after: str, indent: int | None, fence: bool, ascii_: bool
) -> None:
    body = json.dumps(value, indent=indent, ensure_ascii=ascii_)
    text = f"{before}```json\n{body}\n```{after}" if fence else f"{before}{body}{after}"
    obj = extract_object(text)
    assert obj is not None
    assert obj.value == value
    steps = obj.steps()
    assert "".join(steps) == text
    assert len(steps) == len(value) + 2
    for step, (key, val) in zip(steps[1:-1], value.items(), strict=True):
        member = parse_member(step)
        assert member is not None
        assert (member.key, member.value) == (key, val)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=60))
def test_scanning_arbitrary_text_never_crashes(text: str) -> None:
    scan = find_objects(text)
    obj = extract_object(text)
    assert (obj is None) == bool(scan.problem)
    if obj is not None:
        assert "".join(obj.steps()) == text

"""Segmentation: exact round-trips (Hypothesis) and boundaries on real model answers."""

from __future__ import annotations

import json
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from stepcache_core import segment_text, stitch_steps

FIXTURES = Path(__file__).resolve().parent / "fixtures"


def fixture_rows() -> list[dict[str, object]]:
    path = FIXTURES / "qwen2.5-coder-0.5b-answers.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


_pieces = st.sampled_from(
    [
        "1. ",
        "2) ",
        "Step 3: ",
        "- ",
        "* ",
        "```",
        "```python",
        "\\[",
        "\\]",
        "$$",
        "\n",
        "\n\n",
        "   ",
        "x = 5",
        "3x + 5 = 20",
        "**Bold**",
        "text",
        "\t",
        "\r\n",
        "# Title",
        "é🚀",
    ]
)


@settings(max_examples=400, deadline=None)
@given(st.lists(st.one_of(_pieces, st.text(max_size=12)), max_size=40))
def test_stitching_unchanged_steps_reproduces_the_text(parts: list[str]) -> None:
    text = "".join(parts)
    steps = segment_text(text)
    assert stitch_steps(steps) == text
    assert all(steps), "no empty steps"


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(_pieces, st.text(max_size=12)), max_size=40), st.data())
def test_steps_before_the_last_never_change_as_text_arrives(
    parts: list[str], data: st.DataObject
) -> None:
    """Streaming relies on it: a step followed by another is final, whatever is written next."""
    text = "".join(parts)
    cut = data.draw(st.integers(0, len(text)))
    settled = segment_text(text[:cut])[:-1]
    assert segment_text(text)[: len(settled)] == settled


def test_enumerations_fences_and_display_math_are_boundaries() -> None:
    text = (
        "To solve it:\n\n"
        "1. Subtract 5:\n   \\[\n   3x = 15\n   \\]\n"
        "2. Divide by 3:\n   x = 5\n\n"
        "```python\nx = 15 / 3\n\nprint(x)\n```\n"
        "Step 3: done\n"
        "- a bullet\n"
        "So x = 5."
    )
    steps = segment_text(text)
    assert steps[0] == "To solve it:\n\n"
    assert steps[1].startswith("1. Subtract 5:") and "3x = 15" in steps[1]
    assert steps[2] == "2. Divide by 3:\n   x = 5\n\n"
    assert steps[3] == "```python\nx = 15 / 3\n\nprint(x)\n```\n"
    assert steps[4:] == ["Step 3: done\n", "- a bullet\n", "So x = 5."]


def test_plain_lines_without_markers_are_one_step_each() -> None:
    assert segment_text("3x + 5 = 20\n3x = 15\nx = 5") == ["3x + 5 = 20\n", "3x = 15\n", "x = 5"]


def test_display_math_block_stays_whole_when_unindented() -> None:
    steps = segment_text("We get\n\\[\nx = 5\n\\]\nDone.")
    assert "\\[\nx = 5\n\\]\n" in "".join(steps)
    assert any(s.startswith("\\[") and s.rstrip().endswith("\\]") for s in steps)


def test_every_fixture_answer_round_trips_and_splits_into_steps() -> None:
    rows = fixture_rows()
    assert len(rows) == 60
    for row in rows:
        output = str(row["output"])
        steps = segment_text(output)
        assert stitch_steps(steps) == output
        if row["family"] == "math":
            assert len(steps) >= 3, output[:80]

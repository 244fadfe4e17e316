"""Prompt-difference analysis: rewording, constants, and core-meaning changes."""

from __future__ import annotations

import pytest

from stepcache_core import DeltaKind
from stepcache_core.delta import analyze

BASE = "Solve 3x + 5 = 20 for x. Show your steps."


@pytest.mark.parametrize(
    "other",
    [
        "Is x = 4 a solution of 3x + 5 = 20?",
        "Check whether x = 5 solves 3x + 5 = 20.",
        "Graph the line 3x + 5 = 20.",
        "Solve 3x + 5 = 20 for x. Answer in French.",
        "Solve 3x + 5 = 20 for x. Only give the final answer, no steps.",
        "Prove that 3x + 5 = 20 has exactly one solution.",
        "Write a Python function that solves 3x + 5 = 20.",
    ],
)
def test_core_meaning_changes_are_flagged(other: str) -> None:
    delta = analyze(BASE, other)
    assert delta.core, delta
    assert delta.reason


@pytest.mark.parametrize(
    ("a", "b"),
    [
        (
            "Output only a JSON object for a person with fields name, age.",
            "Output only a YAML document for a person with fields name, age.",
        ),
        ("Give me JSON for a park. Keys: name, area.", "Give me XML for a park. Keys: name, area."),
        ("Return a JSON object with keys a, b.", "Return a CSV row with columns a, b."),
    ],
)
def test_output_format_changes_are_core(a: str, b: str) -> None:
    assert analyze(a, b).core


def test_rewording_and_constants_are_not_core() -> None:
    reworded = analyze(BASE, "Find the value of x if 3x + 5 = 20. Explain step by step.")
    assert not reworded.core and DeltaKind.REWORDING in reworded.kinds
    numbers = analyze(BASE, "Solve 3x + 7 = 22 for x. Show your steps.")
    assert numbers.kinds == frozenset({DeltaKind.CONSTANTS})
    same = analyze(BASE, BASE)
    assert same.kinds == frozenset()

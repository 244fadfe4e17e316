"""Core-meaning changes that the old text blacklist caught are still caught by the closed-world
rule (another question, format or language leaves words in the residue), and rewordings of the
lexicon and constant changes are still not core changes."""

from __future__ import annotations

import pytest

from stepcache_core import JsonObjectTask, LinearEquationTask
from stepcache_core.tasks.understanding import residue_change

LINEAR = LinearEquationTask()
JSON = JsonObjectTask()
BASE = "Solve 3x + 5 = 20 for x. Show your steps."


def _linear_change(cached: str, new: str) -> str:
    """Why `new` may not reuse `cached` ('' when it may): no spec, or another residue."""
    a, b = LINEAR.detect(cached), LINEAR.detect(new)
    if a is None or b is None:
        return "not a linear-equation request"
    return residue_change(LINEAR.residue(cached, a), LINEAR.residue(new, b))


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
    assert _linear_change(BASE, other)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        (
            "Output only a JSON object for a person with fields name, age.",
            "Output only a YAML document for a person with fields name, age.",
        ),
        ("Give me JSON for a park. Keys: name, area.", "Give me XML for a park. Keys: name, area."),
        ("Return a JSON object with keys name, age.", "Return a CSV row with columns name, age."),
    ],
)
def test_output_format_changes_are_core(a: str, b: str) -> None:
    spec_a, spec_b = JSON.detect(a), JSON.detect(b)
    assert spec_a is not None
    assert spec_b is None or residue_change(JSON.residue(a, spec_a), JSON.residue(b, spec_b))


def test_rewording_and_constants_are_not_core() -> None:
    assert not _linear_change(BASE, "Find the value of x if 3x + 5 = 20. Go step by step.")
    assert not _linear_change(BASE, "Solve 3x + 7 = 22 for x. Show your steps.")
    assert not _linear_change(BASE, BASE)

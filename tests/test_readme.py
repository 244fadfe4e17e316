"""The README's Python examples run exactly as written, each in a fresh process and directory."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"

#: Sections whose code is a fragment to read, not a program. None: every example runs as shown.
FRAGMENTS: set[str] = set()
#: Sections that must hold a runnable example, and what its output must show.
REQUIRED = {
    "With the core API": ["miss", "reuse"],  # the second request reuses the first one's steps
    "With LangChain": ["'path': 'reuse'"],
    "With LlamaIndex": ["'path': 'reuse'"],
    "Two processes on one store directory": ["first miss", "second exact"],
    "Why was my request not reused?": [
        "miss - no cached request of this task nearby",
        "skip - the request's other words differ: added 'integers'",
    ],
    "Add your own task": [
        "miss   verified=True",
        "reuse  verified=True",
        "patch  verified=True  'The answer is 7000 m.'",
        "added 'rounded to the nearest 10'",  # the residue differs: the model answers
        "'The answer is 300 cm.'",  # the model's false arithmetic, proven wrong and repaired
        "(3 × 100 = 30 is false) and was repaired",
        "verified=False 'That is forty millimetres.'",  # unreadable: served as written
    ],
}
#: Sections whose examples run the local LLM (marked `model`); the others run in every test run.
USE_THE_MODEL = {"With the core API", "With LangChain", "With LlamaIndex"}


def python_blocks(markdown: str, language: str = "python") -> list[tuple[str, str]]:
    """(section heading, code) for every ```python (or other `language`) block, in order."""
    blocks: list[tuple[str, str]] = []
    section = ""
    lines = markdown.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        heading = re.match(r"#{1,6}\s+(.*\S)", line)
        if heading:
            section = heading.group(1)
        fence = re.match(rf"(\s*)(`{{3,}})\s*{language}\s*$", line)
        if fence:
            body: list[str] = []
            i += 1
            while i < len(lines) and lines[i].strip() != fence.group(2):
                body.append(lines[i])
                i += 1
            blocks.append((section, "\n".join(body) + "\n"))
        i += 1
    return blocks


BLOCKS = python_blocks(README.read_text(encoding="utf-8"))
#: Shell commands of the README that this test does not run, and why: `make` runs the whole set-up
#: and suite (CI runs it), `chroma run` starts a server that runs until stopped (the Python
#: example beside it starts and stops one instead).
NOT_RUN = {"make": "the whole set-up and suite", "chroma": "a server that runs until stopped"}
COMMANDS = [
    line.split("#", 1)[0].strip()
    for _, block in python_blocks(README.read_text(encoding="utf-8"), "bash")
    for line in block.splitlines()
    if line.split("#", 1)[0].strip()
]


def test_readme_has_the_examples() -> None:
    sections = [s for s, _ in BLOCKS]
    for required in REQUIRED:
        assert sections.count(required) == 1, f"README: one python example under '{required}'"
    unknown = set(sections) - FRAGMENTS - set(REQUIRED)
    assert not unknown, f"README python blocks not covered by this test: {sorted(unknown)}"


@pytest.mark.parametrize(
    "section, code",
    [
        pytest.param(s, c, id=s, marks=[pytest.mark.model] if s in USE_THE_MODEL else [])
        for s, c in BLOCKS
        if s not in FRAGMENTS
    ],
)
def test_readme_example_runs_as_written(section: str, code: str, tmp_path: Path) -> None:
    env = dict(os.environ, HF_HUB_OFFLINE="1", ANONYMIZED_TELEMETRY="False")
    script = tmp_path / "example.py"
    script.write_text(code, encoding="utf-8")
    done = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    report = f"--- stdout\n{done.stdout}\n--- stderr\n{done.stderr[-4000:]}"
    assert done.returncode == 0, f"'{section}' example failed\n{report}"
    assert done.stdout.strip(), f"'{section}' example printed nothing\n{report}"
    for expected in REQUIRED.get(section, []):
        assert expected in done.stdout, f"'{section}' output lacks {expected!r}\n{report}"


def test_readme_commands_are_run_or_named() -> None:
    assert COMMANDS, "the README shows shell commands"
    for command in COMMANDS:
        first = command.split()[0]
        assert first == "stepcache" or first in NOT_RUN, f"README command not tested: {command}"


@pytest.mark.parametrize(
    "command", [c for c in COMMANDS if c.split()[0] == "stepcache"], ids=lambda c: c
)
def test_readme_stepcache_command_runs_as_written(command: str, tmp_path: Path) -> None:
    """Each `stepcache` command shown, on a default store (`$STEPCACHE_HOME/chroma`) holding an
    entry and counts."""
    from stepcache_core import ChromaStore

    store = ChromaStore(tmp_path / "chroma")
    store.add_counters("default", "", {"requests": 1, "path.miss": 1})
    env = dict(os.environ, STEPCACHE_HOME=str(tmp_path), ANONYMIZED_TELEMETRY="False")
    args = [sys.executable, "-m", "stepcache_cli", *command.split()[1:]]
    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{command}\n{done.stdout}\n{done.stderr[-2000:]}"
    assert done.stdout.strip(), f"{command} printed nothing"

"""Text <-> ordered steps.

Steps partition the text exactly: ``"".join(segment(text)) == text`` for every string. A step starts
at every unindented line: a paragraph's first line, an enumeration item ("1.", "Step 2:", "- ") or
a plain line such as ``3x = 15``. Indented lines (an item's body, nested bullets) belong to the step
above them; fenced code blocks (```) and display math (``\\[ ... \\]``, ``$$ ... $$``) are kept
whole; blank lines stay at the end of the step they follow.
"""

from __future__ import annotations

import re

_FENCE = re.compile(r"^\s*(```|~~~)")
_DISPLAY_OPEN = re.compile(r"^\s*(\\\[|\$\$)")


def _display_closes(line: str, opener: str) -> bool:
    closer = r"\]" if opener == r"\[" else "$$"
    body = line.strip()
    # An opener line closes itself when the closer also appears after the opener.
    return body.endswith(closer) and len(body) > len(opener)


def _units(text: str) -> list[tuple[str, bool]]:
    """Group lines into atomic units (text, starts at column 0); a fence or display math is one."""
    lines = text.splitlines(keepends=True)
    units: list[tuple[str, bool]] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        fence = _FENCE.match(line)
        display = _DISPLAY_OPEN.match(line)
        block = [line]
        i += 1
        if fence:
            mark = fence.group(1)
            while i < len(lines):
                block.append(lines[i])
                i += 1
                if lines[i - 1].strip().startswith(mark):
                    break
        elif display and not _display_closes(line, display.group(1)):
            closer = r"\]" if display.group(1) == r"\[" else "$$"
            while i < len(lines):
                block.append(lines[i])
                i += 1
                if closer in lines[i - 1]:
                    break
        units.append(("".join(block), not line[:1].isspace()))
    return units


def segment_text(text: str) -> list[str]:
    """Split `text` into ordered steps whose concatenation is exactly `text`."""
    if not text:
        return []
    steps: list[str] = []
    current = ""
    for unit, col0 in _units(text):
        if col0 and unit.strip() and current.strip():
            steps.append(current)
            current = ""
        current += unit
    if current:
        steps.append(current)
    return steps


def stitch_steps(steps: list[str]) -> str:
    """Join steps back into one text (the inverse of `segment_text`)."""
    return "".join(steps)

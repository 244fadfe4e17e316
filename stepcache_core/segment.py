"""Text <-> ordered steps.

Steps partition the text exactly: ``"".join(segment(text)) == text`` for every string. Boundaries are
paragraphs (blank lines), enumerations ("1.", "2)", "Step 3:", "- ", "* ", "**Step 1**") at the start of
an unindented line, and, in a paragraph without enumerations, each unindented line. Fenced code blocks
(```) and display math (``\\[ ... \\]``, ``$$ ... $$``) are kept whole; indented lines belong to the
step above them. Blank lines stay at the end of the step they follow.
"""

from __future__ import annotations

import re

_MARKER = re.compile(
    r"^(?:\d{1,3}[.)]\s|[-*+•]\s|\*\*\s*step\s*\d+|step\s*\d+\s*[:.)]|#{1,6}\s|\*\*\d{1,3}[.)])",
    re.IGNORECASE,
)
_FENCE = re.compile(r"^\s*(```|~~~)")
_DISPLAY_OPEN = re.compile(r"^\s*(\\\[|\$\$)")


def _display_closes(line: str, opener: str) -> bool:
    closer = r"\]" if opener == r"\[" else "$$"
    body = line.strip()
    # An opener line closes itself when the closer also appears after the opener.
    return body.endswith(closer) and len(body) > len(opener)


def _units(text: str) -> list[tuple[str, bool]]:
    """Group lines into atomic units: (text, starts_at_column_0). Fences and display math are one unit."""
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
    units = _units(text)
    # Paragraphs: runs of units separated by blank lines (blank lines stay with the paragraph before).
    paragraphs: list[list[tuple[str, bool]]] = [[]]
    for unit, col0 in units:
        blank = unit.strip() == ""
        if not blank and paragraphs[-1] and paragraphs[-1][-1][0].strip() == "":
            paragraphs.append([])
        paragraphs[-1].append((unit, col0))
    steps: list[str] = []
    for para in paragraphs:
        if not para:
            continue
        has_marker = any(col0 and _MARKER.match(u) for u, col0 in para)
        current = ""
        for unit, col0 in para:
            starts = col0 and unit.strip() != "" and (
                not has_marker or bool(_MARKER.match(unit)) or _FENCE.match(unit) is not None
            )
            if starts and current.strip():
                steps.append(current)
                current = ""
            current += unit
        if current:
            steps.append(current)
    return steps


def stitch_steps(steps: list[str]) -> str:
    """Join steps back into one text (the inverse of `segment_text`)."""
    return "".join(steps)

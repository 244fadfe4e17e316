"""Layout: a model's JSON answer laid out the way the request asks, nothing else changed.

A request that asks, for certain, for the object on one line ("put it on one line, minified") or
for raw JSON ("no code fences") is answered by a model that sometimes pretty-prints or fences
anyway. Such an answer is wrong in its layout alone, and that layout is the one thing the cache
may change: whitespace between the object's tokens and the fence lines. Every key, value, string,
number (as written) and word of prose stays as the model wrote it.
"""

from __future__ import annotations

from stepcache_core.tasks.json.spec import JsonSpec
from stepcache_core.tasks.json.text import find_objects
from stepcache_core.tasks.json.verify import FENCE_LINE

__all__ = ["minified", "relaid"]


def minified(object_text: str) -> str:
    """`object_text` (one JSON object as written) without the whitespace between its tokens;
    strings, escapes included, are kept byte for byte."""
    out: list[str] = []
    in_string = False
    escaped = False
    for ch in object_text:
        if in_string:
            out.append(ch)
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
            out.append(ch)
        elif ch not in " \t\r\n":
            out.append(ch)
    return "".join(out)


def relaid(text: str, spec: JsonSpec) -> str | None:
    """`text` with its one object on one line when the request asks for that, and without fence
    lines when it asks for raw JSON. None unless the request states its layout for certain
    (`JsonSpec.layout_certain`: other words may say more about it), when `text` is not exactly
    one object, or when nothing changes. The caller checks the result before serving it."""
    if not spec.layout_certain:
        return None
    scan = find_objects(text)
    if scan.problem or len(scan.objects) != 1:
        return None
    obj = scan.objects[0]
    new = text
    if spec.compact:
        new = text[: obj.start] + minified(text[obj.start : obj.end]) + text[obj.end :]
    if spec.bare:
        new = FENCE_LINE.sub("", new).strip()
    return new if new != text else None

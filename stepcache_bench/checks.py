"""The benchmark's own answer checker, independent of StepCache's verifiers.

- math: the final value for the request's variable is read from the answer (the last
  ``\\boxed{...}``, else the last ``v = number`` / ``v is number``; LaTeX fractions understood)
  and compared with the solution sympy computed when the workload was generated. A decimal counts
  when it equals the solution to the digits shown (7/3 as 2.33).
- json: the first JSON object in the answer (code fences allowed) must parse, have exactly the
  required keys, and every value must have the declared JSON type (an integer-valued float counts as
  an integer, as in JSON Schema; booleans are never numbers).
- structured: the first JSON object in the answer must validate against the request's own JSON
  Schema (jsonschema, draft 2020-12, with its format checks: the new schema's keys, nesting and
  enums), and hold every value the request's prose states at its JSON Pointer (case and spacing
  aside). A structured core change (another subject) is also wrong when built from a cached
  answer to another prompt.
- core-meaning changes have no ground truth of the same kind: they are correct when the served
  answer was generated for this request, i.e. not built from a cached answer to another question.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from typing import Any

from jsonschema import Draft202012Validator

from stepcache_bench.workload import Request


@dataclass(frozen=True, slots=True)
class Verdict:
    ok: bool
    reason: str = ""


# ---------------------------------------------------------------------------- math

_LATEX_DELIMS = re.compile(r"\\\(|\\\)|\\\[|\\\]|\$\$?")
_NUMBER = r"-?\s*\d+(?:\.\d+)?(?:\s*/\s*-?\s*\d+(?:\.\d+)?)?"


def _braced(text: str, start: int) -> tuple[str, int] | None:
    """The contents of the {...} group opening at `start` (nested braces), and the end index."""
    if start >= len(text) or text[start] != "{":
        return None
    depth = 0
    for i in range(start, len(text)):
        if text[i] == "{":
            depth += 1
        elif text[i] == "}":
            depth -= 1
            if depth == 0:
                return text[start + 1 : i], i + 1
    return None


def _defrac(text: str) -> str:
    """``\\frac{a}{b}`` (also dfrac/tfrac, nested) -> ``(a)/(b)``; other LaTeX noise removed."""
    text = text.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac")
    while True:
        i = text.find("\\frac")
        if i < 0:
            break
        num = _braced(text, i + 5)
        den = _braced(text, num[1]) if num else None
        if num is None or den is None:
            text = text[:i] + text[i + 5 :]
            continue
        text = text[:i] + f"({num[0]})/({den[0]})" + text[den[1] :]
    for noise in ("\\left", "\\right", "\\,", "\\!", "\\;", "\\quad", "**", "\\text{", "\\mathbf{"):
        text = text.replace(noise, " " if noise in ("\\quad",) else "")
    return text.replace("−", "-").replace("\\cdot", "*").replace("\\times", "*")


def parse_value(text: str) -> tuple[Fraction, int | None] | None:
    """A plain number, fraction or ``(a)/(b)``; returns (value, decimals shown or None if exact)."""
    src = text.replace(" ", "").rstrip(".,;")
    while src.startswith("(") and src.endswith(")") and src.count("(") == 1:
        src = src[1:-1]
    m = re.fullmatch(r"(-?)\(?(-?\d+(?:\.\d+)?)\)?(?:/\(?(-?\d+(?:\.\d+)?)\)?)?", src)
    if m is None:
        return None
    try:
        num = Fraction(Decimal(m.group(2)))
        den = Fraction(Decimal(m.group(3))) if m.group(3) else Fraction(1)
    except (InvalidOperation, ValueError):
        return None
    if den == 0:
        return None
    value = num / den * (-1 if m.group(1) else 1)
    decimals = None
    if m.group(3) is None and "." in m.group(2):
        decimals = len(m.group(2).split(".")[1])
    return value, decimals


def final_answer(text: str, variable: str) -> tuple[Fraction, int | None] | None:
    """The final value an answer gives for `variable`, or None when it states none."""
    plain = _defrac(text)
    boxed: list[str] = []
    for m in re.finditer(r"\\boxed\s*", plain):
        got = _braced(plain, m.end())
        if got is not None:
            boxed.append(got[0])
    if boxed:
        body = boxed[-1]
        body = re.sub(rf"^\s*{re.escape(variable)}\s*=", "", body)
        value = parse_value(_LATEX_DELIMS.sub("", body))
        if value is not None:
            return value
    plain = _LATEX_DELIMS.sub(" ", plain)
    v = re.escape(variable)
    pattern = re.compile(
        rf"(?<![A-Za-z0-9_]){v}\s*(?:=|is|equals)\s*(-?\s*\(?{_NUMBER}\)?(?:\s*/\s*\(?{_NUMBER}\)?)?)"
        r"(?!\.?\d|[A-Za-z(]|\s*[-+*/^(]\s*[\d(A-Za-z])"
    )
    found = None
    for m in pattern.finditer(plain):
        value = parse_value(m.group(1))
        if value is not None:
            found = value
    return found


def check_math(text: str, request: Request) -> Verdict:
    assert request.variable is not None and request.solution is not None
    got = final_answer(text, request.variable)
    if got is None:
        return Verdict(False, f"no final value for {request.variable}")
    value, decimals = got
    if decimals is None:
        ok = value == request.solution
    else:
        ok = abs(value - request.solution) <= Fraction(1, 2 * 10**decimals)
    want = request.solution
    return Verdict(ok, "" if ok else f"final {request.variable} = {value}, expected {want}")


# ---------------------------------------------------------------------------- json

_DECODER = json.JSONDecoder()


def first_object(text: str) -> dict[str, Any] | None:
    """The first JSON object that parses in `text` (fences and prose around it allowed)."""
    for m in re.finditer(r"\{", text):
        try:
            value, _ = _DECODER.raw_decode(text, m.start())
        except ValueError:
            continue
        if isinstance(value, dict):
            return value
    return None


def _type_ok(value: Any, kind: str) -> bool:
    if kind == "string":
        return isinstance(value, str)
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "integer":
        if isinstance(value, bool):
            return False
        return isinstance(value, int) or (isinstance(value, float) and value.is_integer())
    if kind == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if kind == "array":
        return isinstance(value, list)
    if kind == "object":
        return isinstance(value, dict)
    raise ValueError(f"unknown JSON type {kind!r}")


def check_json(text: str, request: Request) -> Verdict:
    obj = first_object(text)
    if obj is None:
        return Verdict(False, "no JSON object")
    want = set(request.keys)
    got = set(obj)
    if got != want:
        return Verdict(False, f"keys {sorted(got)} != {sorted(want)}")
    for key, kind in request.types:
        if not _type_ok(obj[key], kind):
            return Verdict(False, f"{key!r} is not a {kind}: {obj[key]!r}")
    return Verdict(True)


# ---------------------------------------------------------------------------- structured


def _at_pointer(value: Any, pointer: str) -> tuple[bool, Any]:
    """The value at RFC 6901 `pointer` in `value`, and whether there is one."""
    for raw in pointer.split("/")[1:]:
        part = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return False, None
    return True, value


def _same_text(a: Any, b: str) -> bool:
    return isinstance(a, str) and " ".join(a.split()).casefold() == " ".join(b.split()).casefold()


def check_structured(text: str, request: Request) -> Verdict:
    obj = first_object(text)
    if obj is None:
        return Verdict(False, "no JSON object")
    schema = json.loads(request.schema)
    validator = Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)
    errors = sorted(validator.iter_errors(obj), key=lambda e: list(e.absolute_path))
    if errors:
        where = "/" + "/".join(map(str, errors[0].absolute_path))
        return Verdict(False, f"{where}: {errors[0].message}")
    for pointer, want in request.stated:
        found, got = _at_pointer(obj, pointer)
        if not found or not _same_text(got, want):
            return Verdict(False, f"{pointer} is {got!r}, the request states {want!r}")
    return Verdict(True)


# ---------------------------------------------------------------------------- the rule


def check_answer(text: str, request: Request, *, reused_other: bool) -> Verdict:
    """Grade one served answer. `reused_other`: built from a cached answer to another prompt."""
    if request.family == "structured":
        if request.core and reused_other:
            return Verdict(False, "another subject served from another prompt's answer")
        return check_structured(text, request)
    if request.core:
        if reused_other:
            return Verdict(False, "core-meaning change served from another question's answer")
        return Verdict(True, "core-meaning change answered for this request")
    if request.family == "math":
        return check_math(text, request)
    return check_json(text, request)

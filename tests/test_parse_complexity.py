"""Parsing prompts and answers takes linear time: adversarial inputs at 10 KB, 100 KB and 1 MB.

Each case times one entry point at growing sizes and fails when ten times the input costs more
than `RATIO` times the CPU time (linear growth gives ~10, quadratic ~100). Only ratios are
compared, never absolute times, with a floor under tiny timings; CPU time, not wall time, so other
processes on a loaded machine do not count. Every size after the first runs in a forked child that
is killed when far over its limit, so a quadratic parse fails in seconds instead of hanging.
Prompts are tested up to `CacheConfig.max_prompt_chars` (the engine never parses a longer one).
Linear only thanks to their own caps, tested at 1 MB: `detect_linear` (`MAX_PROMPT_CHARS`) and
renumbering a cached step (`MAX_RENUMBER_CHARS`).
"""

from __future__ import annotations

import gc
import multiprocessing
import re
import time
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stepcache_core import CacheConfig, segment_text
from stepcache_core.tasks.json.parse import _BULLETS, _ITEM_SRC, detect_json_spec
from stepcache_core.tasks.json.text import find_objects
from stepcache_core.tasks.linear.mathtext import MATH_SPAN, _trim_run, read_math
from stepcache_core.tasks.linear.parse import detect_linear
from stepcache_core.tasks.linear.renumber import MAX_RENUMBER_CHARS
from stepcache_core.tasks.linear.transfer import renumbering_for
from stepcache_core.tasks.understanding import SHARED_LEXICON, Mask, residue

#: Allowed time ratio for a tenfold input (linear: ~10; quadratic: ~100).
RATIO = 30
#: Timings under this many seconds count as this much (timer noise).
FLOOR = 0.01
#: Extra CPU seconds a step may take (allocator and garbage-collector noise).
MARGIN = 0.1
#: A child still running after this many times its CPU limit (plus `KILL_AFTER` s) is killed.
KILL_FACTOR, KILL_AFTER = 3, 2.0

KB, MB = 1_000, 1_000_000
PROMPT_CAP = CacheConfig().max_prompt_chars


def _fill(unit: str, size: int) -> str:
    return (unit * (size // len(unit) + 1))[:size]


def _timed(parse: Callable[[str], object], text: str) -> float:
    """CPU seconds of `parse(text)`, garbage collection off (a full collection in a forked child
    walks the parent's whole heap: noise, not the parse's cost)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        start = time.process_time()
        parse(text)
        return time.process_time() - start
    finally:
        if enabled:
            gc.enable()


def _child(parse: Callable[[str], object], text: str, out: Any) -> None:
    out.put(_timed(parse, text))


def assert_linear(
    parse: Callable[[str], object], make: Callable[[int], str], sizes: list[int]
) -> None:
    """`parse(make(n))` for each size; each step may cost at most RATIO times the previous one."""
    ctx = multiprocessing.get_context("fork")
    previous = min(_timed(parse, make(sizes[0])) for _ in range(2))
    figures = [f"{sizes[0]:,} chars: {previous:.3f} s"]
    for size, smaller in zip(sizes[1:], sizes, strict=False):
        text = make(size)
        limit = RATIO * (size // smaller) / 10 * max(previous, FLOOR) + MARGIN
        out = ctx.SimpleQueue()
        child = ctx.Process(target=_child, args=(parse, text, out))
        child.start()
        child.join(KILL_FACTOR * limit + KILL_AFTER)
        if child.is_alive():
            child.kill()
            child.join()
            figures.append(f"{size:,} chars: > {KILL_FACTOR * limit + KILL_AFTER:.1f} s (killed)")
            pytest.fail("superlinear parse: " + "; ".join(figures))
        assert child.exitcode == 0, f"the parse failed at {size:,} chars"
        elapsed = out.get()
        figures.append(f"{size:,} chars: {elapsed:.3f} s")
        assert elapsed <= limit, f"superlinear parse (limit {limit:.2f} s): " + "; ".join(figures)
        previous = elapsed
    print("; ".join(figures))  # shown with pytest -s


ANSWER_SIZES = [10 * KB, 100 * KB, MB]
PROMPT_SIZES = [10 * KB, PROMPT_CAP]


def _read(text: str) -> object:
    return read_math.__wrapped__(text, "x")


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda n: _fill("\\(", n), id="unclosed-paren-spans"),
        pytest.param(lambda n: _fill("\\[", n), id="unclosed-bracket-spans"),
        pytest.param(lambda n: _fill("$$", n), id="unclosed-dollar-spans"),
        pytest.param(lambda n: _fill("$ a", n), id="dollar-then-newline-free-text"),
        pytest.param(lambda n: "(" * n + "x = 5", id="open-parens-before-equation"),
        pytest.param(lambda n: "x = 5" + ")" * n, id="close-parens-after-equation"),
        pytest.param(lambda n: _fill("```", n), id="unclosed-fences"),
        pytest.param(lambda n: _fill("x = 1 + ", n), id="one-long-equation-run"),
    ],
)
def test_read_math_is_linear(make: Callable[[int], str]) -> None:
    assert_linear(_read, make, ANSWER_SIZES)


def _json(text: str) -> object:
    return detect_json_spec.__wrapped__("Return a JSON object.\n" + text)


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda n: _fill("keys ", n), id="key-nouns-on-one-line"),
        pytest.param(lambda n: _fill("key:a ", n), id="many-key-lists"),
        pytest.param(lambda n: _fill("with a, ", n), id="with-lists"),
        pytest.param(lambda n: _fill("has a, b ", n), id="lists-before-a-noun"),
        pytest.param(lambda n: _fill("for a b ", n), id="subjects"),
        pytest.param(lambda n: _fill('{"a": 1} ', n), id="many-objects"),
        pytest.param(lambda n: _fill("{ ", n), id="open-braces"),
    ],
)
def test_json_detection_is_linear_up_to_the_prompt_cap(make: Callable[[int], str]) -> None:
    assert_linear(_json, make, PROMPT_SIZES)


def test_linear_detection_is_linear_thanks_to_its_prompt_cap() -> None:
    assert_linear(detect_linear.__wrapped__, lambda n: _fill("\\(x = ", n), ANSWER_SIZES)


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda n: _fill('{"a": 1}', n), id="objects"),
        pytest.param(lambda n: _fill('{"a": ', n), id="truncated-object"),
        pytest.param(lambda n: _fill("{ \n", n), id="open-braces"),
    ],
)
def test_json_object_extraction_is_linear(make: Callable[[int], str]) -> None:
    assert_linear(find_objects, make, ANSWER_SIZES)


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda n: _fill("```\n", n), id="fences"),
        pytest.param(lambda n: _fill("\\[\n", n), id="display-math"),
        pytest.param(lambda n: _fill("1. a\n  b\n", n), id="items"),
    ],
)
def test_segmentation_is_linear(make: Callable[[int], str]) -> None:
    assert_linear(segment_text, make, ANSWER_SIZES)


def _renumber(step: str) -> object:
    cached = detect_linear("Solve 3x + 5 = 20 for x.")
    new = detect_linear("Solve 3x + 7 = 22 for x.")
    assert cached is not None and new is not None
    renumbering = renumbering_for(cached, new)
    assert renumbering is not None
    return renumbering.rewrite(step)


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda n: _fill("We subtract 5 and the value is 5 ", n), id="loose-numbers"),
        pytest.param(lambda n: _fill("\\(3x - 5 = 20 - 5\\) ", n), id="negative-terms"),
    ],
)
def test_renumbering_a_cached_step_is_linear_thanks_to_its_cap(make: Callable[[int], str]) -> None:
    """Quadratic below `MAX_RENUMBER_CHARS`; longer steps are not renumbered."""
    assert_linear(_renumber, lambda n: make(n) + " \\(3x + 5 = 20\\)", ANSWER_SIZES)


def test_steps_up_to_the_cap_are_renumbered_longer_ones_are_not() -> None:
    step = "Subtract 5 from both sides: \\(3x = 15\\). "
    padded = step + " " * (MAX_RENUMBER_CHARS - len(step))
    assert _renumber(padded) == "Subtract 7 from both sides: \\(3x = 15\\). " + padded[len(step) :]
    assert _renumber(padded + " ") is None


def test_residue_is_linear() -> None:
    def masked_residue(text: str) -> object:
        masks = [Mask(i, i + 1, "v") for i in range(0, len(text), 16)]
        return residue(text, masks, SHARED_LEXICON)

    assert_linear(
        masked_residue, lambda n: _fill("a-b.c, 1.2,3 please thank you ", n), ANSWER_SIZES
    )


_SPAN_PIECES = ["\\(", "\\)", "\\[", "\\]", "$", "$$", "\n", "x", "=", " ", "\\", "(", ")", "]"]


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(_SPAN_PIECES), max_size=16).map("".join))
def test_the_linear_math_span_scan_finds_what_the_pattern_finds(text: str) -> None:
    fast = [(m.span(), m.groups()) for m in MATH_SPAN.finditer(text)]
    assert fast == [(m.span(), m.groups()) for m in MATH_SPAN.pattern.finditer(text)]


def _trim_run_by_recount(run: str, start: int) -> tuple[str, int]:
    """The former `_trim_run` (a recount per stripped character), the reference."""
    changed = True
    while changed and run:
        changed = False
        stripped = run.lstrip(" \t*/)·×÷")
        start += len(run) - len(stripped)
        run = stripped.rstrip(" \t*(")
        if run.count("(") > run.count(")") and run.startswith("("):
            run, start, changed = run[1:], start + 1, True
        elif run.count(")") > run.count("(") and run.endswith(")"):
            run, changed = run[:-1], True
    return run, start


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet=" \t*/)·×÷(x=5+", max_size=14), st.integers(0, 5))
def test_trimming_a_run_keeps_its_former_result(run: str, start: int) -> None:
    assert _trim_run(run, start) == _trim_run_by_recount(run, start)


_KEY_NOUN = r"(?:fields?|keys?|properties|property|attributes?|members|entries)"
_BULLETS_FROM_EACH_NOUN = re.compile(  # the former pattern, the reference
    rf"\b{_KEY_NOUN}\b[^\n]*:[ \t]*\n"
    rf"(?P<items>(?:[ \t]*(?:[-*•]|\d+[.)])[ \t]+{_ITEM_SRC}[^\n]*(?:\n|$))+)",
    re.I,
)
_BULLET_PIECES = ["keys", "Fields", "key", " ", ":", "\n", "- ", "1. ", "name", "(int)", ",", "\t"]


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(_BULLET_PIECES), max_size=16).map("".join))
def test_bullet_key_lists_are_found_as_before(text: str) -> None:
    found = [m.span("items") for m in _BULLETS.finditer(text)]
    assert found == [m.span("items") for m in _BULLETS_FROM_EACH_NOUN.finditer(text)]

"""Byte-bounded memos: the budget holds, least recently used entries go first, threads are safe, and
the parsers of prompts and answers hold a bounded amount of memory however many long texts pass."""

from __future__ import annotations

import gc
import threading
import tracemalloc
from collections.abc import Callable, Iterable

import pytest

from stepcache_core.memo import ENTRY_SHARE, ByteBoundedMemo, approx_size, byte_bounded_memo
from stepcache_core.tasks.json.parse import detect_json_spec
from stepcache_core.tasks.linear.mathtext import read_math
from stepcache_core.tasks.linear.parse import detect_linear

MB = 1 << 20
#: Retained memory may exceed a memo's budget by this factor (what its size estimate misses).
SLACK = 1.15
#: The byte budget of each memo of parsed prompts and answers.
BUDGET = 8 * MB


def counting(budget: int, entries: int = 1000) -> tuple[ByteBoundedMemo[[str], str], list[str]]:
    calls: list[str] = []

    @byte_bounded_memo(max_bytes=budget, max_entries=entries)
    def upper(text: str) -> str:
        calls.append(text)
        return text.upper()

    return upper, calls


def test_approx_size_counts_nested_objects_once() -> None:
    text = "x" * 10_000
    assert approx_size(text) >= 10_000
    assert approx_size((text, text, [text])) < 2 * approx_size(text)  # shared: counted once
    assert approx_size({"k": ("a" * 5_000, "b" * 5_000)}) >= 10_000
    assert approx_size(["y" * 1_000] * 1, limit=10) > 10  # stops early, still over the limit


def test_the_byte_budget_holds_and_results_stay_right() -> None:
    upper, calls = counting(budget=200_000)
    texts = [f"{i:05d}" + "a" * 2_000 for i in range(300)]  # ~4 KB per entry, ~1.2 MB in all
    for text in texts:
        assert upper(text) == text.upper()
    info = upper.cache_info()
    assert 0 < info.bytes <= 200_000
    assert info.entries < len(texts)
    assert len(calls) == len(texts)


def test_an_entry_over_its_share_of_the_budget_is_served_not_stored() -> None:
    upper, calls = counting(budget=80_000)
    big = "b" * (80_000 // ENTRY_SHARE)
    assert upper(big) == big.upper() and upper(big) == big.upper()
    assert len(calls) == 2 and upper.cache_info().entries == 0


def test_least_recently_used_goes_first() -> None:
    upper, calls = counting(budget=1 << 30, entries=3)
    for text in ("a", "b", "c", "a", "d"):  # "a" was used again: "b" is the oldest
        upper(text)
    calls.clear()
    upper("a"), upper("c"), upper("d")
    assert calls == []
    upper("b")
    assert calls == ["b"]
    info = upper.cache_info()
    assert info.entries == 3 and info.hits == 4


def test_cache_clear_forgets_everything() -> None:
    upper, calls = counting(budget=1 << 20)
    upper("a")
    upper.cache_clear()
    upper("a")
    assert calls == ["a", "a"]
    assert upper.cache_info().entries == 1 and upper.cache_info().hits == 0


def test_a_raising_call_is_not_memoized() -> None:
    calls: list[int] = []

    @byte_bounded_memo(max_bytes=1 << 20)
    def fail(n: int) -> int:
        calls.append(n)
        raise ValueError(n)

    for _ in range(2):
        with pytest.raises(ValueError):
            fail(1)
    assert calls == [1, 1]


def test_threads_share_one_memo_safely() -> None:
    upper, _ = counting(budget=50_000, entries=64)
    errors: list[BaseException] = []

    def work(seed: int) -> None:
        try:
            for i in range(400):
                text = f"{(seed * 7 + i) % 97}-" + "z" * ((i * 13) % 900)
                assert upper(text) == text.upper()
        except BaseException as exc:  # collected, asserted empty in the main thread
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(seed,)) for seed in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    info = upper.cache_info()
    assert 0 < info.bytes <= 50_000 and info.entries <= 64
    assert info.hits + info.misses == 8 * 400


def test_invalid_budgets_are_refused() -> None:
    with pytest.raises(ValueError):
        byte_bounded_memo(max_bytes=0)(str)


def _retained_after(parse: Callable[[str], object], texts: Iterable[str]) -> int:
    """Bytes still allocated after `parse` has seen every text (the memo's content); `texts` is
    lazy, so a text the memo does not keep is freed and not counted."""
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for text in texts:
            parse(text)
        gc.collect()
        return tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()


def test_reading_many_long_answers_holds_bounded_memory() -> None:
    """Before: `lru_cache(8192)` kept every answer and its reading (300 long answers grew RSS by
    162 MB; here 120 answers of 100 KB, ~12 MB). Now the memo holds at most its budget."""
    read_math.cache_clear()
    texts = (f"Answer {i}: " + "z" * 100_000 for i in range(120))
    retained = _retained_after(lambda t: read_math(t, "x"), texts)
    read_math.cache_clear()
    assert retained <= SLACK * BUDGET, f"{retained / MB:.1f} MB retained"
    assert read_math.max_bytes == BUDGET


def test_one_huge_answer_is_not_memoized() -> None:
    read_math.cache_clear()
    huge = (" ".join(["1"] * 60_000) for _ in range(1))  # ~5 MB of reading, over its share
    retained = _retained_after(lambda t: read_math(t, "x"), huge)
    assert retained < MB, f"{retained / MB:.1f} MB retained"
    assert read_math.cache_info().entries == 0


@pytest.mark.parametrize(
    "parse",
    [detect_linear, detect_json_spec],
    ids=["detect_linear", "detect_json_spec"],
)
def test_prompt_memos_are_bounded_in_bytes(parse: ByteBoundedMemo[[str], object]) -> None:
    """Before: 4,096 prompts of up to 100 KB each were kept whole (~400 MB; here 120, ~12 MB)."""
    parse.cache_clear()
    texts = (f"Prompt {i}: " + "z" * 100_000 for i in range(120))
    retained = _retained_after(parse, texts)
    parse.cache_clear()
    assert retained <= SLACK * BUDGET, f"{retained / MB:.1f} MB retained"
    assert parse.max_bytes == BUDGET

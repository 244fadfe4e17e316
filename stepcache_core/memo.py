"""A memo bounded in bytes: `byte_bounded_memo`, an LRU for parses of prompts and answers.

`functools.lru_cache` bounds entries only: 8,192 memoized readings of 100 KB answers hold
gigabytes (300 long answers grew RSS by 162 MB). This memo keeps the least recently used entries
whose estimated size (arguments plus result, `approx_size`) stays under a byte budget, never stores
one entry over an eighth of the budget (a huge text cannot flush the memo), and is thread-safe.
"""

from __future__ import annotations

import sys
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from functools import update_wrapper
from typing import Generic, ParamSpec, TypeVar

__all__ = ["ByteBoundedMemo", "MemoInfo", "approx_size", "byte_bounded_memo"]

P = ParamSpec("P")
R = TypeVar("R")

#: An entry may use at most this fraction of the memo's budget (1/8).
ENTRY_SHARE = 8


def approx_size(obj: object, limit: int | None = None) -> int:
    """Bytes held by `obj` and what it references (containers, slots, ``__dict__``), each object
    counted once; the walk stops once the total passes `limit` (the result is then > limit)."""
    seen: set[int] = set()
    stack = [obj]
    total = 0
    while stack:
        item = stack.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        total += sys.getsizeof(item)
        if limit is not None and total > limit:
            return total
        if isinstance(item, (str, bytes, int, float, bool)) or item is None:
            continue
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, (tuple, list, set, frozenset)):
            stack.extend(item)
        else:
            for cls in type(item).__mro__:
                slots = cls.__dict__.get("__slots__", ())
                for name in (slots,) if isinstance(slots, str) else slots:
                    if hasattr(item, name) and name not in ("__dict__", "__weakref__"):
                        stack.append(getattr(item, name))
            if hasattr(item, "__dict__") and not isinstance(item, type):
                stack.append(vars(item))
    return total


@dataclass(frozen=True, slots=True)
class MemoInfo:
    """Hits, misses, stored entries and their estimated bytes."""

    hits: int
    misses: int
    entries: int
    bytes: int
    max_bytes: int


class ByteBoundedMemo(Generic[P, R]):
    """`func` memoized on its (hashable) arguments under a byte budget; see the module docstring.

    `max_entries` also bounds the entry count. A call that raises is not memoized. Two threads
    that miss on the same arguments at once both call `func` (the memo never holds its lock while
    `func` runs); the first result is kept."""

    def __init__(self, func: Callable[P, R], max_bytes: int, max_entries: int) -> None:
        if max_bytes < 1 or max_entries < 1:
            raise ValueError("max_bytes and max_entries must be >= 1")
        self.__wrapped__ = func
        self.max_bytes, self.max_entries = max_bytes, max_entries
        self._data: OrderedDict[Hashable, tuple[R, int]] = OrderedDict()
        self._bytes = self._hits = self._misses = 0
        self._lock = threading.Lock()
        update_wrapper(self, func)

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        key: Hashable = (args, tuple(sorted(kwargs.items()))) if kwargs else args
        with self._lock:
            found = self._data.get(key)
            if found is not None:
                self._data.move_to_end(key)
                self._hits += 1
                return found[0]
            self._misses += 1
        value = self.__wrapped__(*args, **kwargs)
        limit = self.max_bytes // ENTRY_SHARE
        size = approx_size(key, limit)
        if size <= limit:
            size += approx_size(value, limit - size)
        if size > limit:
            return value
        with self._lock:
            if key not in self._data:
                self._data[key] = (value, size)
                self._bytes += size
                while self._bytes > self.max_bytes or len(self._data) > self.max_entries:
                    _, (_, dropped) = self._data.popitem(last=False)
                    self._bytes -= dropped
        return value

    def cache_clear(self) -> None:
        """Forget every entry and reset the counters."""
        with self._lock:
            self._data.clear()
            self._bytes = self._hits = self._misses = 0

    def cache_info(self) -> MemoInfo:
        with self._lock:
            return MemoInfo(self._hits, self._misses, len(self._data), self._bytes, self.max_bytes)


def byte_bounded_memo(
    max_bytes: int, max_entries: int = 4096
) -> Callable[[Callable[P, R]], ByteBoundedMemo[P, R]]:
    """Decorator: memoize a function under a byte budget (and at most `max_entries` entries)."""

    def wrap(func: Callable[P, R]) -> ByteBoundedMemo[P, R]:
        return ByteBoundedMemo(func, max_bytes, max_entries)

    return wrap

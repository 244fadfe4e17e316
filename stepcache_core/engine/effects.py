"""The effects the request flow yields: everything it needs done outside itself, as plain data.

The flow (`engine.flow`) decides; the drivers (`engine.drivers`) carry out each effect and send
its result back. Backend work is `Call` and `Patch`. Cache I/O (`Read`, `Embed`, `Nearest`,
`Settle`) degrades to a miss: when it fails the driver logs it, counts it as degraded and sends
None. `Recall`, `Forget` and `Store` touch the write-behind writer's in-process state.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from typing import Any

from stepcache_core.store import Entry
from stepcache_core.tasks.base import Assemble, PatchRequest, Task
from stepcache_core.types import Result


@dataclass(frozen=True, slots=True)
class Call:
    """Ask the backend to complete `prompt`; with `assemble`, its verified steps may be streamed
    as they are written (`task` None: an untyped answer, streamed unverified as it comes).
    Answered with the `Completion`."""

    prompt: str
    max_tokens: int | None
    assemble: Assemble | None = None
    task: Task[Any] | None = None
    spec: Any = None


@dataclass(frozen=True, slots=True)
class Patch:
    """Run a task's patch plan, which may call the backend. Answered with its step outcomes."""

    task: Task[Any]
    request: PatchRequest[Any]


@dataclass(frozen=True, slots=True)
class Read:
    """Read these keys from the store. Answered with the entries found, by key (None: failed)."""

    keys: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Embed:
    """Embed the prompt. Answered with its vector (None: failed)."""

    prompt: str


@dataclass(frozen=True, slots=True)
class Nearest:
    """The nearest cached requests to `vector` in one scope, of `task` (None: of any task).
    Answered with the neighbours, nearest first (None: failed)."""

    vector: Any
    namespace: str
    tenant: str
    context: str
    task: str | None
    limit: int


@dataclass(frozen=True, slots=True)
class Settle:
    """Wait (a bounded time) until the answers being written in the background have landed, so
    a search reads this process's own writes. Answered with None."""


@dataclass(frozen=True, slots=True)
class Recall:
    """Snapshot the writer's in-process state for a request: the entry under `key` not yet
    written (or None), and the keys of the latest reusable entries of `shapes`, most specific
    shape first, without repeats and without `key`. Answered with that pair."""

    key: str
    shapes: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Forget:
    """Drop `key` from the shape index of `shapes` (its entry is gone from the store)."""

    shapes: tuple[str, ...]
    key: str


@dataclass(frozen=True, slots=True)
class Store:
    """Store a served answer off the request path (embedding it first unless `vector` is
    given); once written, a reusable entry is indexed under `shapes`. Answered with None."""

    entry: Entry
    shapes: tuple[str, ...]
    vector: Any


CacheIo = Read | Embed | Nearest | Settle
WriterState = Recall | Forget | Store
Effect = Call | Patch | CacheIo | WriterState
Flow = Generator[Effect, Any, Result | None]

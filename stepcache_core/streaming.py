"""Step streaming on top of `StepCache.generate`: each served step as soon as it is final.

Reused steps arrive at once, before the backend is asked to patch the rest; patched and generated
steps while the backend is still writing, each once whole and verified. The last item is the
`Result`. The steps always join to its text.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

from stepcache_core.types import Result, StepOutcome

StepOrResult = StepOutcome | Result
_DONE = object()


def stream_steps(run: Callable[[Callable[[StepOutcome], None]], Result]) -> Iterator[StepOrResult]:
    """Run `run(on_step)` in a worker thread and yield its steps as they come, then the result."""
    items: queue.Queue[Any] = queue.Queue()
    outcome: dict[str, Any] = {}

    def work() -> None:
        try:
            outcome["result"] = run(items.put)
        except BaseException as exc:  # re-raised in the caller's thread
            outcome["error"] = exc
        finally:
            items.put(_DONE)

    worker = threading.Thread(target=work, name="stepcache-stream", daemon=True)
    worker.start()
    while (item := items.get()) is not _DONE:
        yield item
    worker.join()
    if "error" in outcome:
        raise outcome["error"]
    yield outcome["result"]


async def astream_steps(
    run: Callable[[Callable[[StepOutcome], None]], Awaitable[Result]],
) -> AsyncIterator[StepOrResult]:
    """Async `stream_steps`: `run(on_step)` is a coroutine on the running loop."""
    items: asyncio.Queue[StepOutcome] = asyncio.Queue()
    task = asyncio.ensure_future(run(items.put_nowait))
    try:
        while not task.done() or not items.empty():
            if not items.empty():
                yield items.get_nowait()
                continue
            getter = asyncio.ensure_future(items.get())
            await asyncio.wait({getter, task}, return_when=asyncio.FIRST_COMPLETED)
            if getter.done():
                yield getter.result()
            else:
                getter.cancel()
        yield task.result()
    finally:
        if not task.done():
            task.cancel()

"""The engine fails cleanly: a malformed backend answer is a `BackendError` after one call, no
internal error calls the backend twice for one request, a cancelled or failed call stores
nothing, oversized answers are served unparsed and uncached, failures warn once per interval,
and a default store that cannot be opened serves every call uncached."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from stepcache_core import (
    Backend,
    BackendError,
    CacheConfig,
    ChromaStore,
    Completion,
    Embedder,
    Entry,
    InMemoryStore,
    Result,
    StepCache,
    StepOutcome,
    StoreError,
)
from stepcache_core import Path as CachePath
from stepcache_core.store import Neighbour, entry_key

from conftest import HashEmbedder, ScriptedBackend
from toy_tasks import MultiplesSpec, MultiplesTask, multiples_answer

TYPED = "List the first 3 multiples of 4."
UNTYPED = "What is the capital of France?"


def right(prompt: str) -> str:
    """Answers the toy task correctly (full lists and continuations), anything else plainly."""
    import re

    m = re.search(r"first (\d+) multiples of (\d+)(?: from (\d+))?", prompt)
    if not m:
        return f"An answer to: {prompt}"
    n, k = int(m.group(1)), int(m.group(2))
    return multiples_answer(n, k, int(m.group(3) or 1))


def make_cache(store: Any = None, embedder: Embedder | None = None, **config: Any) -> StepCache:
    return StepCache(
        store if store is not None else InMemoryStore(),
        embedder=embedder if embedder is not None else HashEmbedder(),
        tasks=[MultiplesTask()],
        config=CacheConfig(**config),
    )


# --- 1. A backend answer of the wrong type ---------------------------------------------------


class Returns(Backend):
    """A buggy backend: returns `value`, whatever it is; counts its calls."""

    name = "returns"

    def __init__(self, value: object) -> None:
        self.value = value
        self.calls = 0

    def complete(self, prompt: str, max_tokens: int | None = None) -> Completion:
        self.calls += 1
        return self.value  # type: ignore[return-value]


MALFORMED = [
    pytest.param("4 x 1 = 4\n", "a str", id="str"),
    pytest.param(None, "a NoneType", id="None"),
    pytest.param({"text": "4 x 1 = 4\n"}, "a dict", id="dict"),
    pytest.param(Completion(None), "text is a NoneType", id="text-None"),  # type: ignore[arg-type]
    pytest.param(Completion(123), "text is a int", id="text-int"),  # type: ignore[arg-type]
    pytest.param(Completion("x", None), "prompt_tokens is a NoneType", id="tokens-None"),  # type: ignore[arg-type]
]


def _generate(cache: StepCache, prompt: str, backend: Backend, how: str) -> Result:
    steps: list[StepOutcome] = []
    if how == "sync":
        return cache.generate(prompt, backend)
    if how == "sync-streaming":
        return cache.generate(prompt, backend, on_step=steps.append)
    if how == "stream":
        *_, last = cache.stream(prompt, backend)
        assert isinstance(last, Result)
        return last
    if how == "async":
        return asyncio.run(cache.agenerate(prompt, backend))
    assert how == "async-streaming"
    return asyncio.run(cache.agenerate(prompt, backend, on_step=steps.append))


HOW = ["sync", "sync-streaming", "stream", "async", "async-streaming"]


@pytest.mark.parametrize("how", HOW)
@pytest.mark.parametrize("prompt", [TYPED, UNTYPED])
@pytest.mark.parametrize(("value", "named"), MALFORMED)
def test_a_malformed_backend_answer_is_a_backend_error_after_one_call(
    value: object, named: str, prompt: str, how: str
) -> None:
    cache = make_cache()
    backend = Returns(value)
    with pytest.raises(BackendError, match=named):
        _generate(cache, prompt, backend, how)
    assert backend.calls == 1
    cache.flush()
    assert cache.store.count() == 0  # nothing of it cached


def test_a_malformed_patch_answer_is_a_backend_error_after_one_call() -> None:
    cache = make_cache()
    cache.generate(TYPED, ScriptedBackend(right))
    cache.flush()
    backend = Returns(Completion(None))  # type: ignore[arg-type]
    with pytest.raises(BackendError, match="text is a NoneType"):
        cache.generate("List the first 5 multiples of 4.", backend)  # a patch of the cached list
    assert backend.calls == 1
    cache.flush()
    assert cache.store.count() == 1


# --- 2. No internal error calls the backend twice; nothing half-written ----------------------


class BuggyTask(MultiplesTask):
    """The toy task with a bug in one method once `armed`."""

    def __init__(self, stage: str) -> None:
        self.stage = stage
        self.armed = False

    def _bug(self, name: str) -> None:
        if self.armed and self.stage == name:
            raise RuntimeError(f"bug in {name}")

    def shapes(self, prompt: str, spec: MultiplesSpec) -> Sequence[str]:
        self._bug("shapes")
        return super().shapes(prompt, spec)

    def compare(self, *args: Any) -> Any:
        self._bug("compare")
        return super().compare(*args)

    def segment(self, text: str) -> list[str]:
        self._bug("segment")
        return super().segment(text)

    def verify(self, *args: Any) -> Any:
        self._bug("verify")
        return super().verify(*args)

    def integrity(self, text: str, spec: MultiplesSpec) -> Any:
        self._bug("integrity")
        return super().integrity(text, spec)

    def proven_wrong(self, *args: Any) -> bool:
        self._bug("proven_wrong")
        return super().proven_wrong(*args)

    def kept_prefix(self, *args: Any) -> int:
        self._bug("kept_prefix")
        return super().kept_prefix(*args)

    def stitch(self, steps: Sequence[str]) -> str:
        self._bug("stitch")
        return super().stitch(steps)

    def patch(self, *args: Any) -> Any:
        self._bug("patch")
        return super().patch(*args)

    def fallback(self, *args: Any) -> Any:
        self._bug("fallback")
        return super().fallback(*args)


STAGES = [
    "shapes",
    "compare",
    "segment",
    "verify",
    "integrity",
    "proven_wrong",
    "kept_prefix",
    "stitch",
    "patch",
    "fallback",
]

#: An exact repeat, a patch of the cached list, a skip to a full generation, a full generation
#: the model gets wrong (repaired by the fallback), an untyped prompt.
REQUESTS = [
    TYPED,
    "List the first 5 multiples of 4.",
    "List the first 3 multiples of 7.",
    "List the first 4 multiples of 9.",
    UNTYPED,
]


def wrong_for_nine(prompt: str) -> str:
    return "1 x 9 = 10\n" if "multiples of 9" in prompt else right(prompt)


def _check_each_request_asks_each_prompt_once(
    cache: StepCache, backend: ScriptedBackend, asked: Callable[[str], Result]
) -> None:
    for prompt in REQUESTS:
        before = backend.calls
        result = asked(prompt)
        sent = backend.prompts[before:]
        assert len(sent) == len(set(sent)), (prompt, sent)  # no prompt asked twice
        assert result.backend_calls == len(sent)
        assert isinstance(result.text, str) and result.text
        cache.flush()


@pytest.mark.parametrize("asynchronous", [False, True], ids=["sync", "async"])
@pytest.mark.parametrize("stage", STAGES)
def test_a_task_bug_at_any_stage_never_calls_the_backend_twice(
    stage: str, asynchronous: bool
) -> None:
    task = BuggyTask(stage)
    cache = StepCache(InMemoryStore(), embedder=HashEmbedder(), tasks=[task])
    cache.put(TYPED, multiples_answer(3, 4))
    task.armed = True
    backend = ScriptedBackend(wrong_for_nine)

    def asked(prompt: str) -> Result:
        if asynchronous:
            return asyncio.run(cache.agenerate(prompt, backend))
        return cache.generate(prompt, backend)

    _check_each_request_asks_each_prompt_once(cache, backend, asked)


def test_an_error_after_the_model_answered_serves_that_answer(
    caplog: pytest.LogCaptureFixture,
) -> None:
    task = BuggyTask("integrity")
    cache = StepCache(InMemoryStore(), embedder=HashEmbedder(), tasks=[task])
    task.armed = True
    backend = ScriptedBackend(right)
    result = cache.generate(TYPED, backend)
    assert backend.calls == 1 and result.backend_calls == 1
    assert result.text == multiples_answer(3, 4) and result.path is CachePath.MISS
    assert "bug in integrity" in result.reason and not result.verified
    assert "internal error" in caplog.text
    cache.flush()
    assert cache.store.count() == 0


class FailingStore(InMemoryStore):
    """An in-memory store whose `stage` operation fails."""

    def __init__(self, stage: str) -> None:
        super().__init__()
        self.stage = stage

    def get_many(self, keys: Sequence[str]) -> dict[str, Entry]:
        if self.stage == "get_many":
            raise ConnectionError("store down")
        return super().get_many(keys)

    def nearest(self, *args: Any, **kwargs: Any) -> list[Neighbour]:
        if self.stage == "nearest":
            raise ConnectionError("store down")
        return super().nearest(*args, **kwargs)

    def put(self, entry: Entry, vector: Sequence[float] | None) -> None:
        if self.stage == "put":
            raise ConnectionError("store down")
        super().put(entry, vector)


class FailingEmbedder(HashEmbedder):
    def embed_batch(self, texts: Sequence[str]) -> list[list[float]]:
        raise RuntimeError("embedder down")


@pytest.mark.parametrize("stage", ["get_many", "nearest", "put", "embed", "hand-off"])
def test_a_cache_failure_at_any_stage_never_calls_the_backend_twice(
    stage: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = make_cache(FailingStore(stage), FailingEmbedder() if stage == "embed" else None)
    if stage == "hand-off":  # the background writer refuses the entry (e.g. at shutdown)

        def refuse(*args: object) -> None:
            raise RuntimeError("cannot schedule new futures after shutdown")

        monkeypatch.setattr(cache._writer, "store_behind", refuse)
    backend = ScriptedBackend(wrong_for_nine)
    _check_each_request_asks_each_prompt_once(
        cache, backend, lambda prompt: cache.generate(prompt, backend)
    )


class Interrupted(Backend):
    """Writes part of an answer (when it streams), then the call is interrupted by `error`."""

    name = "interrupted"

    def __init__(self, error: BaseException) -> None:
        self.error = error
        self.calls = 0

    def complete(self, prompt: str, max_tokens: int | None = None) -> Completion:
        self.calls += 1
        raise self.error

    def complete_streaming(
        self, prompt: str, max_tokens: int | None, on_text: Callable[[str], None]
    ) -> Completion:
        self.calls += 1
        on_text("A first line.\nPart of a sec")  # a whole first step and part of the next
        raise self.error


@pytest.mark.parametrize(
    "error", [KeyboardInterrupt(), asyncio.CancelledError(), TimeoutError("model timed out")]
)
@pytest.mark.parametrize("prompt", ["List the first 5 multiples of 4.", "List the first 3 of 7."])
def test_an_interrupted_or_failed_call_stores_nothing(prompt: str, error: BaseException) -> None:
    cache = make_cache()
    cache.generate(TYPED, ScriptedBackend(right))
    cache.flush()
    cached = cache.store.get(entry_key("default", "", "", TYPED))
    backend = Interrupted(error)
    streamed: list[StepOutcome] = []
    with pytest.raises(type(error)):
        cache.generate(prompt, backend, on_step=streamed.append)
    assert backend.calls == 1 and streamed  # it was interrupted mid-answer
    cache.flush()
    assert cache.store.count() == 1  # only the entry stored before
    assert cache.store.get(entry_key("default", "", "", TYPED)) == cached
    assert cache.store.get(entry_key("default", "", "", prompt)) is None


def test_a_cancelled_async_call_stores_nothing() -> None:
    cache = make_cache()
    started = asyncio.Event()

    class Hanging(Backend):
        name = "hanging"

        def complete(self, prompt: str, max_tokens: int | None = None) -> Completion:
            raise AssertionError("the async path is used")

        async def acomplete(self, prompt: str, max_tokens: int | None = None) -> Completion:
            started.set()
            await asyncio.sleep(3600)
            return Completion(right(prompt))

    async def run() -> None:
        call = asyncio.ensure_future(cache.agenerate(TYPED, Hanging()))
        await started.wait()
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call

    asyncio.run(run())
    cache.flush()
    assert cache.store.count() == 0
    assert cache.generate(TYPED, ScriptedBackend(right)).path is CachePath.MISS


class TwoCallTask(MultiplesTask):
    """A patch plan that asks the backend twice: a plan first, then the continuation."""

    def patch(self, request: Any, generate: Any) -> Any:
        generate("Plan the rest of the list.", request.max_tokens)
        return super().patch(request, generate)


def test_a_cancelled_async_patch_makes_no_further_backend_call() -> None:
    """The patch plan runs in a worker thread that cancellation cannot stop: its in-flight call
    is cancelled and it may call the backend no more, while the application keeps running."""
    cache = StepCache(InMemoryStore(), embedder=HashEmbedder(), tasks=[TwoCallTask()])
    cache.put(TYPED, multiples_answer(3, 4))
    prompts: list[str] = []

    class Slow(Backend):
        name = "slow"

        def complete(self, prompt: str, max_tokens: int | None = None) -> Completion:
            raise AssertionError("the async path is used")

        async def acomplete(self, prompt: str, max_tokens: int | None = None) -> Completion:
            prompts.append(prompt)
            await asyncio.sleep(0.5)
            return Completion(right(prompt))

    async def run() -> None:
        call = asyncio.ensure_future(cache.agenerate("List the first 5 multiples of 4.", Slow()))
        while not prompts:
            await asyncio.sleep(0.01)
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
        await asyncio.sleep(1.5)  # the application runs on; the plan's thread would call again

    asyncio.run(run())
    assert prompts == ["Plan the rest of the list."]
    cache.flush()
    assert cache.store.count() == 1


# --- 3. Answer size cap -----------------------------------------------------------------------


def test_max_answer_chars_is_validated() -> None:
    from stepcache_core import ConfigError

    assert CacheConfig().max_answer_chars == 100_000
    for bad in (0, -1, 2.5, None, True):
        with pytest.raises(ConfigError, match="max_answer_chars"):
            CacheConfig(max_answer_chars=bad)  # type: ignore[arg-type]


class CountingTask(MultiplesTask):
    """Records the length of every text it parses."""

    def __init__(self) -> None:
        self.parsed: list[int] = []

    def segment(self, text: str) -> list[str]:
        self.parsed.append(len(text))
        return super().segment(text)

    def integrity(self, text: str, spec: MultiplesSpec) -> Any:
        self.parsed.append(len(text))
        return super().integrity(text, spec)


LONG = "List the first 40 multiples of 4."  # its answer is 441 characters


@pytest.mark.parametrize("how", HOW)
@pytest.mark.parametrize("prompt", [LONG, "Write forty lines about the sea."])
def test_an_oversized_answer_is_served_as_written_never_parsed_or_cached(
    prompt: str, how: str
) -> None:
    task = CountingTask()
    cache = StepCache(
        InMemoryStore(),
        embedder=HashEmbedder(),
        tasks=[task],
        config=CacheConfig(max_answer_chars=300),
    )
    answer = right(prompt) if "multiples" in prompt else "The sea is wide.\n" * 40
    backend = ScriptedBackend(lambda p: answer)
    for round_ in (1, 2):
        result = _generate(cache, prompt, backend, how)
        assert result.text == answer and len(answer) > 300
        assert "".join(s.text for s in result.steps) == answer
        assert result.path is CachePath.MISS and not result.verified
        assert "max_answer_chars (300)" in result.reason
        assert max(task.parsed, default=0) <= 300  # never parsed
        cache.flush()
        assert cache.store.count() == 0  # never cached: the repeat asks the model again
        assert backend.calls == round_ and cache.stats()["oversized"] == round_


def test_an_answer_at_the_cap_is_cached() -> None:
    answer = multiples_answer(40, 4)
    cache = make_cache(max_answer_chars=len(answer))
    result = cache.generate(LONG, ScriptedBackend(right))
    assert result.verified and cache.stats()["oversized"] == 0
    cache.flush()
    assert cache.store.count() == 1


def test_put_does_not_store_an_oversized_answer() -> None:
    cache = make_cache(max_answer_chars=300)
    assert cache.put(LONG, multiples_answer(40, 4)) is None
    assert cache.store.count() == 0 and cache.stats()["oversized"] == 1
    assert cache.put(TYPED, multiples_answer(3, 4)) is not None


def test_an_oversized_patch_continuation_is_a_failed_attempt() -> None:
    cache = make_cache(max_answer_chars=300)
    cache.generate(TYPED, ScriptedBackend(right))
    cache.flush()
    rambling = ScriptedBackend(lambda p: "5 x 4 = 20\n" * 100)  # 1,100 characters
    result = cache.generate("List the first 5 multiples of 4.", rambling)
    assert result.path is CachePath.PATCH and result.fallback_used
    assert result.text == multiples_answer(5, 4)
    assert cache.stats()["oversized"] == rambling.calls == 3  # the patch and two repairs


# --- 4. One warning per kind of failure and interval ------------------------------------------


class DownStore(InMemoryStore):
    def get_many(self, keys: Sequence[str]) -> dict[str, Entry]:
        raise ConnectionError("store down")

    def nearest(self, *args: Any, **kwargs: Any) -> list[Neighbour]:
        raise ConnectionError("store down")

    def put(self, entry: Entry, vector: Sequence[float] | None) -> None:
        raise ConnectionError("store down")


def _warnings(caplog: pytest.LogCaptureFixture, what: str) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelno == logging.WARNING and r.getMessage().startswith(f"stepcache: {what} failed")
    ]


def test_an_outage_warns_once_per_kind_and_interval(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    caplog.set_level(logging.WARNING, logger="stepcache")
    now = [1000.0]
    cache = make_cache(DownStore())
    monkeypatch.setattr(cache._warnings, "_clock", lambda: now[0])
    backend = ScriptedBackend(right)
    prompts = [f"List the first {n} multiples of 4." for n in range(3, 9)]
    for prompt in prompts:
        assert cache.generate(prompt, backend).text == right(prompt)
        cache.flush()
    assert backend.calls == len(prompts)
    assert cache.stats()["degraded"] >= 3 * len(prompts)
    for what in ("exact lookup", "similarity search", "store write"):
        assert len(_warnings(caplog, what)) == 1, what
    now[0] += 61.0  # the next interval: one more line each, saying how many were left out
    cache.generate("List the first 9 multiples of 4.", backend)
    cache.flush()
    lookups = _warnings(caplog, "exact lookup")
    assert len(lookups) == 2 and "5 more like it" in lookups[1]


def test_internal_errors_warn_once_per_interval(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="stepcache")
    task = BuggyTask("integrity")
    task.armed = True
    cache = StepCache(InMemoryStore(), embedder=HashEmbedder(), tasks=[task])
    backend = ScriptedBackend(right)
    for n in range(3, 8):
        cache.generate(f"List the first {n} multiples of 4.", backend)
    internal = [r for r in caplog.records if "internal error" in r.getMessage()]
    assert len(internal) == 1 and cache.stats()["degraded"] == 5


# --- 5. A default store that cannot be opened -------------------------------------------------


def _damaged(tmp_path: Path) -> Path:
    path = tmp_path / "cache"
    path.mkdir()
    (path / "chroma.sqlite3").write_bytes(bytes(range(256)) * 64)  # not a database
    return path


def test_a_damaged_default_store_warns_once_and_serves_every_call_uncached(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="stepcache")
    path = _damaged(tmp_path)
    cache = StepCache(path=path, embedder=HashEmbedder(), tasks=[MultiplesTask()])
    opened = [r.getMessage() for r in caplog.records if "cannot open" in r.getMessage()]
    assert len(opened) == 1 and str(path) in opened[0] and "move it away" in opened[0]
    backend = ScriptedBackend(right)
    for _ in range(3):
        result = cache.generate(TYPED, backend)
        assert result.text == multiples_answer(3, 4) and result.path is CachePath.MISS
        cache.flush()
    assert backend.calls == 3 and cache.stats()["entries"] is None
    assert len(_warnings(caplog, "exact lookup")) == 1


def test_a_damaged_store_given_explicitly_still_raises(tmp_path: Path) -> None:
    path = _damaged(tmp_path)
    with pytest.raises(StoreError, match="move it away"):
        StepCache(ChromaStore(path, embedder_name="hash-64"), embedder=HashEmbedder())

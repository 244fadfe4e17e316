"""Arms, the memoizing backend and the per-request measurement loop.

The memo table and its file live in `stepcache_bench.memo`; the arms and the measurement loop
stay here with `MemoBackend` as one accounting scheme: the latency an arm is charged is computed
from the memo's own timings inside `serve_timed`.

Greedy decoding is deterministic, so a backend call for an identical (prompt, max_tokens, schema)
is computed once per seed (schema: the JSON Schema of a schema-constrained call, else none):
`MemoBackend` stores its Completion and measured seconds, and every arm that makes the same call
is charged those seconds and tokens. An arm's latency for a request is its own
measured wall time minus the real time spent inside the memo (lookups or the one real call) plus
the memoized backend seconds of the calls it made: five arms cost about one arm of model time.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stepcache_bench.checks import check_answer
from stepcache_bench.memo import Memo, MemoTable, schema_key
from stepcache_bench.workload import Request
from stepcache_core import (
    Backend,
    CacheConfig,
    ChromaStore,
    Completion,
    Embedder,
    Entry,
    MiniLMEmbedder,
    StepCache,
    TaskRegistry,
)
from stepcache_core.store import entry_key

ARMS: tuple[str, ...] = (
    "no_cache",
    "exact",
    "langchain_exact",
    "semantic",
    "gptcache",
    "gptcache_cos08",
    "stepcache",
    "stepcache_no_fallback",
)
# GPTCache's own similarity_threshold per GPTCache arm. Its faiss store returns the squared L2
# distance d, SearchDistanceEvaluation scores 4 - d (max_distance 4.0) and the adapter serves when
# score >= 4 * similarity_threshold; on unit vectors d = 2 - 2 cos, so the threshold t means
# cos >= 2t - 1: 0.8 (its default) is cos >= 0.6, and 0.9 is cos >= 0.8.
GPTCACHE_THRESHOLDS: dict[str, float] = {"gptcache": 0.8, "gptcache_cos08": 0.9}
PATHS: tuple[str, ...] = ("exact", "reuse", "patch", "skip", "miss")
NAMESPACE = "bench"


# ---------------------------------------------------------------------------- memo backend


@dataclass(frozen=True, slots=True)
class Call:
    """One backend call an arm made: what it is charged, and what it really cost here."""

    charged_s: float
    real_s: float
    prompt_tokens: int
    completion_tokens: int
    computed: bool  # this call ran the model (the first of its key in this seed)


class MemoBackend(Backend):
    """One arm's view of the shared memo table; records the calls the arm makes.

    `schemas` maps a request's prompt to the JSON Schema its answer is constrained to, the way
    an app asks for structured output: `complete` of such a prompt decodes with the backend's
    `complete_json` for every arm alike. A `complete_json` call (a StepCache patch) keeps its
    own schema."""

    def __init__(
        self,
        inner: Backend,
        table: MemoTable,
        *,
        simulated_seconds: Callable[[Completion], float] | None = None,
        schemas: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> None:
        self.inner = inner
        self.table = table
        self.name = inner.name
        self._simulated = simulated_seconds
        self._schemas: Mapping[str, Mapping[str, Any]] = schemas or {}
        self._calls: list[Call] = []

    def complete(self, prompt: str, max_tokens: int | None = None) -> Completion:
        return self._memoized(prompt, max_tokens, self._schemas.get(prompt))

    def complete_json(
        self, prompt: str, schema: Mapping[str, Any], max_tokens: int | None = None
    ) -> Completion:
        return self._memoized(prompt, max_tokens, schema)

    def _memoized(
        self, prompt: str, max_tokens: int | None, schema: Mapping[str, Any] | None
    ) -> Completion:
        t0 = time.perf_counter()
        key = (prompt, max_tokens, schema_key(schema))
        memo = self.table.get(key)
        computed = memo is None
        if memo is None:
            t1 = time.perf_counter()
            if schema is None:
                completion = self.inner.complete(prompt, max_tokens)
            else:
                completion = self.inner.complete_json(prompt, schema, max_tokens)
            seconds = time.perf_counter() - t1
            if self._simulated is not None:
                seconds = self._simulated(completion)
            memo = Memo(completion, seconds)
            self.table.put(key, memo)
        real = time.perf_counter() - t0
        c = memo.completion
        self._calls.append(Call(memo.seconds, real, c.prompt_tokens, c.completion_tokens, computed))
        return c

    def take(self) -> list[Call]:
        calls, self._calls = self._calls, []
        return calls

    @property
    def pending(self) -> int:
        """Calls made since the last `take`."""
        return len(self._calls)


# ---------------------------------------------------------------------------- embedders


class ArmEmbedder(Embedder):
    """Per-arm embedder over one shared model: its own LRU, so no arm embeds for another."""

    def __init__(self, shared: Embedder) -> None:
        self._shared = shared
        self.name = shared.name
        self._cache: dict[str, list[float]] = {}

    def embed_batch(self, texts: Sequence[str]) -> list[list[float]]:
        missing = [t for t in dict.fromkeys(texts) if t not in self._cache]
        if missing:
            fresh = self._shared_batch(missing)
            self._cache.update(zip(missing, fresh, strict=True))
        return [self._cache[t] for t in texts]

    def _shared_batch(self, texts: list[str]) -> list[list[float]]:
        shared = self._shared
        if isinstance(shared, MiniLMEmbedder):
            return shared.encode_uncached(texts)  # the shared model, not its LRU
        return shared.embed_batch(texts)


# ---------------------------------------------------------------------------- arms


@dataclass(frozen=True, slots=True)
class Served:
    text: str
    path: str  # exact | reuse | patch | skip | miss
    from_cache: bool  # the served answer was built from a cached answer
    cached_prompt: str | None = None
    fallback_used: bool = False
    verified: bool | None = None
    timings: dict[str, float] = field(default_factory=dict)  # StepCache's own stage timings


def _norm(prompt: str) -> str:
    return " ".join(prompt.split())


class Arm(ABC):
    name: str = "arm"

    def __init__(self, backend: MemoBackend, max_tokens: int | None) -> None:
        self.backend = backend
        self.max_tokens = max_tokens

    def warm(self, prompt: str) -> None:
        """Cache a base prompt before evaluation (default: serve it)."""
        self.serve(prompt)

    @abstractmethod
    def serve(self, prompt: str) -> Served: ...

    def settle(self) -> None:
        """Finish work the arm does after answering (between requests, untimed)."""
        return None

    def close(self) -> None:
        """Finish pending work (before the arm's store is deleted)."""
        return None


class NoCacheArm(Arm):
    name = "no_cache"

    def warm(self, prompt: str) -> None:
        return None

    def serve(self, prompt: str) -> Served:
        c = self.backend.complete(prompt, self.max_tokens)
        return Served(c.text, "miss", False)


class ExactArm(Arm):
    """An exact-match cache (whitespace-normalised prompt), on the same Chroma store."""

    name = "exact"

    def __init__(self, backend: MemoBackend, max_tokens: int | None, store: ChromaStore) -> None:
        super().__init__(backend, max_tokens)
        self.store = store

    def serve(self, prompt: str) -> Served:
        key = entry_key(NAMESPACE, "", "", prompt)
        hit = self.store.get(key)
        if hit is not None:
            return Served(hit.answer, "exact", True, hit.prompt)
        c = self.backend.complete(prompt, self.max_tokens)
        entry = Entry(
            key=key, namespace=NAMESPACE, context="", prompt=prompt, answer=c.text, steps=(c.text,)
        )
        self.store.put(entry, None)
        return Served(c.text, "miss", False)


class SemanticArm(Arm):
    """Whole-response semantic cache (GPTCache / LangChain style): the nearest cached prompt at
    or above `min_similarity` (cosine) serves its stored answer. Same embedder and store type as
    StepCache."""

    name = "semantic"

    def __init__(
        self,
        backend: MemoBackend,
        max_tokens: int | None,
        store: ChromaStore,
        embedder: Embedder,
        min_similarity: float,
    ) -> None:
        super().__init__(backend, max_tokens)
        self.store = store
        self.embedder = embedder
        self.min_similarity = min_similarity

    def serve(self, prompt: str) -> Served:
        vector = self.embedder.embed(prompt)
        found = self.store.nearest(vector, NAMESPACE, "", "", None, 1)
        if found and found[0].similarity >= self.min_similarity:
            e = found[0].entry
            path = "exact" if _norm(e.prompt) == _norm(prompt) else "reuse"
            return Served(e.answer, path, True, e.prompt)
        c = self.backend.complete(prompt, self.max_tokens)
        entry = Entry(
            key=entry_key(NAMESPACE, "", "", prompt),
            namespace=NAMESPACE,
            context="",
            prompt=prompt,
            answer=c.text,
            steps=(c.text,),
            reusable=True,
        )
        self.store.put(entry, vector)
        return Served(c.text, "miss", False)


class StepCacheArm(Arm):
    def __init__(self, name: str, backend: MemoBackend, cache: StepCache) -> None:
        super().__init__(backend, cache.config.max_tokens)
        self.name = name
        self.cache = cache

    def close(self) -> None:
        self.cache.flush()

    def warm(self, prompt: str) -> None:
        self.serve(prompt)
        self.settle()

    def settle(self) -> None:
        self.cache.flush()  # served answers are stored in the background

    def serve(self, prompt: str) -> Served:
        r = self.cache.generate(prompt, self.backend, namespace=NAMESPACE)
        path = r.path.value
        return Served(
            r.text,
            path,
            path in ("exact", "reuse", "patch"),
            r.cached_prompt,
            r.fallback_used,
            r.verified,
            dict(r.timings),
        )


# ---------------------------------------------------------------------------- measurement


@dataclass(slots=True)
class Record:
    """One arm's answer to one evaluation request, graded."""

    arm: str
    seed: int
    request_id: str
    family: str
    kind: str
    core: bool
    path: str
    latency_s: float
    overhead_s: float
    backend_s: float
    prompt_tokens: int
    completion_tokens: int
    calls: int
    calls_computed: int
    correct_task: bool
    reason: str
    integrity: bool | None  # None: no task recognises the request
    from_cache: bool
    reused_other: bool
    wrong_served: bool
    fallback_used: bool
    answer: str = field(repr=False, default="")
    timings: dict[str, float] = field(default_factory=dict)
    workload: str = "paper"

    def as_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__slots__}


class Integrity:
    """The tasks' own stitched-output integrity check, on a fresh registry."""

    def __init__(self) -> None:
        self.registry = TaskRegistry.with_builtins()

    def __call__(self, prompt: str, text: str) -> bool | None:
        found = self.registry.detect(prompt)
        if found is None:
            return None
        task, spec = found
        return bool(task.integrity(text, spec).ok)


@dataclass(frozen=True, slots=True)
class Timed:
    """One arm's answer to one request, with the backend calls it made and its wall time."""

    served: Served
    wall_s: float
    calls: list[Call]


def serve_timed(arm: Arm, request: Request) -> Timed:
    """Serve `request` with `arm` and time it; the arm's background writes land afterwards."""
    arm.backend.take()
    t0 = time.perf_counter()
    served = arm.serve(request.prompt)
    wall = time.perf_counter() - t0
    arm.settle()
    return Timed(served, wall, arm.backend.take())


def grade(arm: Arm, request: Request, timed: Timed, integrity: Integrity) -> Record:
    """The record of one timed answer: latency charged from the memo, graded by the checkers."""
    served, calls = timed.served, timed.calls
    real = sum(c.real_s for c in calls)
    charged = sum(c.charged_s for c in calls)
    overhead = max(timed.wall_s - real, 0.0)
    reused_other = served.from_cache and (
        served.cached_prompt is None or _norm(served.cached_prompt) != _norm(request.prompt)
    )
    verdict = check_answer(served.text, request, reused_other=reused_other)
    return Record(
        arm=arm.name,
        seed=request.seed,
        request_id=request.id,
        family=request.family,
        kind=request.kind,
        core=request.core,
        path=served.path,
        latency_s=overhead + charged,
        overhead_s=overhead,
        backend_s=charged,
        prompt_tokens=sum(c.prompt_tokens for c in calls),
        completion_tokens=sum(c.completion_tokens for c in calls),
        calls=len(calls),
        calls_computed=sum(c.computed for c in calls),
        correct_task=verdict.ok,
        reason=verdict.reason,
        integrity=integrity(request.prompt, served.text),
        from_cache=served.from_cache,
        reused_other=reused_other,
        wrong_served=served.from_cache and not verdict.ok,
        fallback_used=served.fallback_used,
        answer=served.text,
        timings=served.timings,
        workload=request.workload,
    )


def measure(arms: Sequence[Arm], request: Request, integrity: Integrity) -> list[Record]:
    """Serve `request` with every arm, then grade the answers. Grading parses the prompt with the
    tasks' own (memoized) detection, so it runs only after every arm has served: no arm finds the
    request's detection cached by the grading of another arm's answer."""
    timed = [serve_timed(arm, request) for arm in arms]
    return [grade(arm, request, t, integrity) for arm, t in zip(arms, timed, strict=True)]


def build_arms(
    backend: Backend,
    table: MemoTable,
    embedder: Embedder,
    store_dir: Path,
    *,
    max_tokens: int,
    semantic_min_similarity: float,
    simulated_seconds: Callable[[Completion], float] | None = None,
    arms: Sequence[str] = ARMS,
    schemas: Mapping[str, Mapping[str, Any]] | None = None,
) -> list[Arm]:
    """Fresh arms for one seed, each with its own Chroma store under `store_dir`; `schemas`:
    the prompts answered with schema-constrained decoding (see `MemoBackend`)."""

    def memo() -> MemoBackend:
        return MemoBackend(backend, table, simulated_seconds=simulated_seconds, schemas=schemas)

    def store(name: str) -> ChromaStore:
        return ChromaStore(
            store_dir / name, collection=f"bench-{name}", embedder_name=embedder.name
        )

    from stepcache_bench.baselines import GPTCacheArm, LangChainExactArm

    out: list[Arm] = []
    for name in arms:
        if name == "no_cache":
            out.append(NoCacheArm(memo(), max_tokens))
        elif name == "langchain_exact":
            out.append(LangChainExactArm(memo(), max_tokens))
        elif name in GPTCACHE_THRESHOLDS:
            out.append(
                GPTCacheArm(
                    name,
                    memo(),
                    max_tokens,
                    store_dir / name,
                    ArmEmbedder(embedder),
                    GPTCACHE_THRESHOLDS[name],
                )
            )
        elif name == "exact":
            out.append(ExactArm(memo(), max_tokens, store(name)))
        elif name == "semantic":
            out.append(
                SemanticArm(
                    memo(), max_tokens, store(name), ArmEmbedder(embedder), semantic_min_similarity
                )
            )
        elif name in ("stepcache", "stepcache_no_fallback"):
            config = CacheConfig(max_tokens=max_tokens, fallback=name == "stepcache")
            cache = StepCache(
                store(name),
                embedder=ArmEmbedder(embedder),
                tasks=TaskRegistry.with_builtins(),
                config=config,
            )
            out.append(StepCacheArm(name, memo(), cache))
        else:
            raise ValueError(f"unknown arm {name!r}")
    return out

"""`stepcache scale`: lookup latency, insert rate, memory and disk against cache size.

    stepcache scale                       # 1k, 10k, 100k cached requests (~10-30 min here)
    stepcache scale --sizes 1000 10000    # smaller

One embedded Chroma store (on disk, in a temporary directory unless --store-dir) is filled with
synthetic requests through `ChromaStore.put` (the engine's own write path: the vector into the
scope's collection, then the entry's row into the main collection),
with random unit vectors (384 dimensions, like MiniLM) from a cheap deterministic embedder, so the
model's embedding cost is not part of the figures. At each size it times `StepCache.lookup`:

- nearest: a prompt that is not cached (exact-key miss, embedding, nearest-neighbour query in
  the scope's vector collection, template decisions) -- the path every new request takes;
- exact: a cached prompt (exact-key hit).

Filling 100k entries one upsert at a time takes over an hour here (tens of ms per Chroma upsert),
so the bulk of each fill is batched (the store's own upserts, captured by a wrapper around the
chromadb client given to `ChromaStore(client=...)`, sent 2,000 at a time) and
the last `--single` entries of each size are inserted one `put` at a time: that is the insert rate
reported (`bulk_insert_per_s` is the batched rate). Reports p50/p99 of both lookups, resident
memory (RSS) of this process and the store's size on disk; checks the target "nearest p50 at
the largest size <= 2x that at the smallest".
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")

from stepcache_bench.metrics import percentile
from stepcache_core import CacheConfig, ChromaStore, Embedder, Entry, StepCache
from stepcache_core.store import entry_key

NAMESPACE = "scale"
DIM = 384
_WORDS = [
    "invoice",
    "summary",
    "translate",
    "weather",
    "recipe",
    "travel",
    "budget",
    "email",
    "draft",
    "meeting",
    "notes",
    "poem",
    "python",
    "error",
    "stack",
    "trace",
    "customer",
    "refund",
    "policy",
    "shipping",
    "order",
    "status",
    "password",
    "reset",
    "holiday",
    "plan",
    "garden",
    "tomato",
    "soil",
    "quarterly",
    "report",
    "marketing",
    "slogan",
    "onboarding",
    "checklist",
]


class RandomUnitEmbedder(Embedder):
    """A deterministic random unit vector per text (seeded by its hash): microseconds, no model."""

    name = "random-unit-384"

    def __init__(self) -> None:
        self.calls = 0

    def embed_batch(self, texts: Sequence[str]) -> list[list[float]]:
        self.calls += 1
        out = []
        for text in texts:
            rng = random.Random(hashlib.sha256(text.encode()).digest())
            vec = [rng.gauss(0.0, 1.0) for _ in range(DIM)]
            norm = sum(x * x for x in vec) ** 0.5
            out.append([x / norm for x in vec])
        return out


def synthetic_prompt(i: int) -> str:
    rng = random.Random(i)
    words = " ".join(rng.choice(_WORDS) for _ in range(8))
    return f"Request {i}: please help with {words}."


def _entry(i: int) -> Entry:
    prompt = synthetic_prompt(i)
    answer = f"Synthetic answer {i}. " + "Step. " * 20
    return Entry(
        key=entry_key(NAMESPACE, "", "", prompt),
        namespace=NAMESPACE,
        context="",
        prompt=prompt,
        answer=answer,
        steps=(answer,),
        task=None,
        reusable=True,
    )


def _disk_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def _rss() -> int:
    import psutil  # type: ignore[import-untyped]

    return int(psutil.Process().memory_info().rss)


class _Collection:
    """A Chroma collection whose upserts can be captured and sent later in one batch."""

    def __init__(self, real: Any) -> None:
        self._real = real
        self.capturing = False
        self.rows: dict[str, list[Any]] = {}

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    def upsert(self, **kwargs: Any) -> Any:
        if not self.capturing:
            return self._real.upsert(**kwargs)
        for name, values in kwargs.items():
            self.rows.setdefault(name, []).extend(values)
        return None

    def flush(self) -> None:
        if self.rows:
            self._real.upsert(**self.rows)
        self.rows = {}


class _Client:
    """Wraps a chromadb client so that `ChromaStore(client=...)` gets `_Collection`s.

    The store opens several collections (main rows, scope registry, one per scope for vectors);
    each is wrapped once, and `capture`/`flush` apply to all of them.
    """

    def __init__(self, real: Any) -> None:
        self._real = real
        self.collections: dict[str, _Collection] = {}
        self.capturing = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    def _wrap(self, real: Any) -> _Collection:
        wrapped = self.collections.get(real.name)
        if wrapped is None:
            wrapped = self.collections[real.name] = _Collection(real)
        wrapped.capturing = self.capturing
        return wrapped

    def get_or_create_collection(self, *args: Any, **kwargs: Any) -> _Collection:
        return self._wrap(self._real.get_or_create_collection(*args, **kwargs))

    def get_collection(self, *args: Any, **kwargs: Any) -> _Collection:
        return self._wrap(self._real.get_collection(*args, **kwargs))

    def capture(self, on: bool) -> None:
        self.capturing = on
        for collection in self.collections.values():
            collection.capturing = on

    def flush(self) -> None:
        """Send the captured upserts, vectors before rows (the store's own write order)."""
        for collection in sorted(self.collections.values(), key=lambda c: c.name == _MAIN):
            collection.flush()


_MAIN = f"scale-{RandomUnitEmbedder.name}"  # the main collection of the store `run` makes


def _bulk_put(
    store: ChromaStore,
    client: _Client,
    entries: Any,
    embedder: Embedder,
    bar: Any,
    batch: int = 2000,
) -> None:
    """`store.put` every entry, its upserts sent to Chroma `batch` at a time."""
    pending = 0
    client.capture(True)
    try:
        for e in entries:
            store.put(e, embedder.embed(e.prompt))
            pending += 1
            if pending == batch:
                client.flush()
                if bar is not None:
                    bar.update(pending)
                pending = 0
        client.flush()
        if bar is not None and pending:
            bar.update(pending)
    finally:
        client.capture(False)


def run(
    sizes: Sequence[int], lookups: int, store_dir: Path, progress: bool, single: int = 200
) -> dict[str, Any]:
    import chromadb
    from chromadb.config import Settings

    embedder = RandomUnitEmbedder()
    store_dir.mkdir(parents=True, exist_ok=True)
    client = _Client(
        chromadb.PersistentClient(
            path=str(store_dir), settings=Settings(anonymized_telemetry=False)
        )
    )
    store = ChromaStore(client=client, collection="scale", embedder_name=embedder.name)
    # The synthetic requests are of no task: with semantic reuse on (at a similarity random
    # vectors never reach), a lookup of a new prompt embeds and searches like any request a task
    # recognises; with it off, the engine would answer it from the exact key alone.
    cache = StepCache(store, embedder=embedder, config=CacheConfig(semantic_min_similarity=1.0))
    rows: list[dict[str, Any]] = []
    filled = 0
    bar: Any = None
    if progress:
        from tqdm import tqdm  # type: ignore[import-untyped]

        bar = tqdm(total=max(sizes), unit="req", desc="filling")
    for size in sorted(sizes):
        n_new = size - filled
        # Bulk fill: every entry still goes through ChromaStore.put (its exact encoding), whose
        # upserts are captured and sent to Chroma in batches; then `single` more entries are
        # inserted one put at a time to measure the engine's real write path at this size.
        bulk = max(n_new - single, 0)
        t0 = time.perf_counter()
        _bulk_put(store, client, (_entry(i) for i in range(filled, filled + bulk)), embedder, bar)
        bulk_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        for i in range(filled + bulk, size):
            e = _entry(i)
            store.put(e, embedder.embed(e.prompt))
            if bar is not None:
                bar.update(1)
        single_s = time.perf_counter() - t0
        filled = size
        rng = random.Random(size)
        near: list[float] = []
        exact: list[float] = []
        for j in range(lookups):
            miss_prompt = f"New request {size}-{j}: " + " ".join(
                rng.choice(_WORDS) for _ in range(8)
            )
            searches = embedder.calls
            t1 = time.perf_counter()
            got = cache.lookup(miss_prompt, namespace=NAMESPACE)
            near.append(time.perf_counter() - t1)
            assert got is None and embedder.calls == searches + 1  # it embedded and searched
            hit_prompt = synthetic_prompt(rng.randrange(size))
            t1 = time.perf_counter()
            hit = cache.lookup(hit_prompt, namespace=NAMESPACE)
            exact.append(time.perf_counter() - t1)
            assert hit is not None and hit.path.value == "exact"
        rows.append(
            {
                "size": size,
                "count": store.count(),
                "lookup_nearest_ms": {
                    "p50": 1e3 * percentile(near, 50),
                    "p99": 1e3 * percentile(near, 99),
                },
                "lookup_exact_ms": {
                    "p50": 1e3 * percentile(exact, 50),
                    "p99": 1e3 * percentile(exact, 99),
                },
                "insert_per_s": (n_new - bulk) / single_s if single_s > 0 else None,
                "bulk_insert_per_s": bulk / bulk_s if bulk and bulk_s > 0 else None,
                "inserted": n_new,
                "rss_mb": _rss() / 1e6,
                "disk_mb": _disk_bytes(store_dir) / 1e6,
            }
        )
        line = json.dumps(rows[-1])
        if bar is not None:
            bar.write(line)
        else:
            print(line, file=sys.stderr, flush=True)
    if bar is not None:
        bar.close()
    first, last = rows[0], rows[-1]
    ratio = last["lookup_nearest_ms"]["p50"] / first["lookup_nearest_ms"]["p50"]
    return {
        "sizes": rows,
        "target": {
            "lookup_p50_ratio": {
                "measured": ratio,
                "target": f"<= 2.0 (nearest-lookup p50 at {last['size']} vs {first['size']})",
                "pass": ratio <= 2.0,
            }
        },
    }


def print_table(result: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(title="StepCache scale (embedded Chroma on disk, random unit vectors)")
    for h in (
        "cached requests",
        "nearest p50",
        "nearest p99",
        "exact p50",
        "exact p99",
        "insert rate",
        "RSS",
        "disk",
    ):
        t.add_column(h, justify="right")
    for r in result["sizes"]:
        t.add_row(
            f"{r['size']:,}",
            f"{r['lookup_nearest_ms']['p50']:.2f} ms",
            f"{r['lookup_nearest_ms']['p99']:.2f} ms",
            f"{r['lookup_exact_ms']['p50']:.2f} ms",
            f"{r['lookup_exact_ms']['p99']:.2f} ms",
            f"{r['insert_per_s']:.0f}/s",
            f"{r['rss_mb']:.0f} MB",
            f"{r['disk_mb']:.0f} MB",
        )
    Console().print(t)
    tg = result["target"]["lookup_p50_ratio"]
    print(
        f"lookup p50 ratio {tg['measured']:.2f} (target {tg['target']}): "
        f"{'pass' if tg['pass'] else 'MISS'}"
    )


def markdown(result: dict[str, Any]) -> str:
    lines = [
        "## Scale",
        "",
        f"- Command: `{result['command']}`; date {result['date']}; "
        f"duration {result['duration_s'] / 60:.1f} min",
        "- One embedded Chroma store on disk, filled through `ChromaStore.put` with synthetic "
        "requests and random 384-d unit vectors; lookups through `StepCache.lookup`.",
        "",
        "| cached requests | nearest p50 | nearest p99 | exact p50 | exact p99 | insert rate "
        "| RSS | disk |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in result["sizes"]:
        lines.append(
            f"| {r['size']:,} | {r['lookup_nearest_ms']['p50']:.2f} ms "
            f"| {r['lookup_nearest_ms']['p99']:.2f} ms | {r['lookup_exact_ms']['p50']:.2f} ms "
            f"| {r['lookup_exact_ms']['p99']:.2f} ms | {r['insert_per_s']:.0f}/s "
            f"| {r['rss_mb']:.0f} MB | {r['disk_mb']:.0f} MB |"
        )
    tg = result["target"]["lookup_p50_ratio"]
    lines += [
        "",
        f"Target: nearest-lookup p50 {tg['target']}: measured {tg['measured']:.2f}x, "
        f"{'pass' if tg['pass'] else '**miss**'}.",
        "",
    ]
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="stepcache scale",
        description="StepCache lookup latency and footprint vs cache size",
    )
    p.add_argument("--sizes", type=int, nargs="+", default=[1_000, 10_000, 100_000])
    p.add_argument("--lookups", type=int, default=300, help="timed lookups of each kind per size")
    p.add_argument(
        "--single",
        type=int,
        default=200,
        help="entries inserted one put at a time at each size (timed insert rate)",
    )
    p.add_argument("--store-dir", type=Path, default=None, help="Chroma directory (default: temp)")
    p.add_argument("--out", type=Path, default=None, help="write scale.json and scale.md here")
    p.add_argument("--no-progress", action="store_true")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    started = time.perf_counter()
    tmp = args.store_dir is None
    store_dir: Path = args.store_dir or Path(tempfile.mkdtemp(prefix="stepcache-scale-"))
    try:
        result = run(
            args.sizes,
            args.lookups,
            store_dir,
            not args.no_progress and sys.stderr.isatty(),
            args.single,
        )
    finally:
        if tmp:
            shutil.rmtree(store_dir, ignore_errors=True)
    result["command"] = "python -m stepcache_bench.scale " + " ".join(argv)
    result["date"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    result["duration_s"] = time.perf_counter() - started
    print_table(result)
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "scale.json").write_text(json.dumps(result, indent=2) + "\n")
        (args.out / "scale.md").write_text(markdown(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

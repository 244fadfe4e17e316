"""`stepcache scale`: lookup latency, insert rate, memory and disk against cache size.

    stepcache scale                       # 1k, 10k, 100k cached requests (~10-30 min here)
    stepcache scale --sizes 1000 10000    # smaller
    stepcache scale --server --sizes 1000 10000 100000 1000000   # through a Chroma server

One Chroma store (on disk, in a temporary directory unless --store-dir) is filled with
synthetic requests through `ChromaStore.put` (the engine's own write path: the vector into the
scope's collection, then the entry's row into the main collection),
with random unit vectors (384 dimensions, like MiniLM) from a cheap deterministic embedder, so the
model's embedding cost is not part of the figures. The store is embedded in this process
(`chromadb.PersistentClient`) by default; with --server it lives in a local Chroma server
(`chroma run` on 127.0.0.1, started by `ChromaServer`) reached with `chromadb.HttpClient`.
At each size it times `StepCache.lookup`:

- nearest: a prompt that is not cached (exact-key miss, embedding, nearest-neighbour query in
  the scope's vector collection, template decisions) -- the path every new request takes;
- exact: a cached prompt (exact-key hit).

Filling 100k entries one upsert at a time takes over an hour here (tens of ms per Chroma upsert),
so the bulk of each fill is batched: 2,000 entries at a time (fewer if Chroma's max batch size is
lower), one get of their keys answers the read each put makes first, and the store's own
upserts are captured by a wrapper around the chromadb client given to `ChromaStore(client=...)`
and sent together. The last `--single` entries of each size are inserted one `put` at a time:
that is the insert rate reported (`bulk_insert_per_s` is the batched rate, `fill_s` the fill's
wall time). Reports p50/p99 of both lookups, the 1-minute load average as the lookups end,
resident memory (RSS) of this process and, with --server, of the server (with its children),
and the store's size on disk; checks the target "nearest p50 at the largest size <= 2x that at
the smallest".
"""

from __future__ import annotations

import argparse
import contextlib
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

import numpy as np

os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")

from stepcache_bench.metrics import percentile
from stepcache_core import CacheConfig, ChromaStore, Embedder, Entry, StepCache
from stepcache_core.chroma_server import ChromaServer
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
            seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")
            vec = np.random.default_rng(seed).standard_normal(DIM)
            out.append((vec / np.linalg.norm(vec)).tolist())
        return out


def synthetic_prompt(i: int) -> str:
    rng = random.Random(i)
    words = " ".join(rng.choice(_WORDS) for _ in range(8))
    return f"Request {i}: please help with {words}."


def _entry(i: int, registry: str) -> Entry:
    """Cached request `i`, as the engine stores an untyped answer judged by `registry`."""
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
        registry=registry,
    )


def _disk_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def _rss(pid: int | None = None) -> int:
    """Resident memory of this process alone, or of process `pid` with all its children."""
    import psutil  # type: ignore[import-untyped]

    if pid is None:
        return int(psutil.Process().memory_info().rss)
    proc = psutil.Process(pid)
    total = int(proc.memory_info().rss)
    for child in proc.children(recursive=True):
        with contextlib.suppress(psutil.NoSuchProcess):
            total += int(child.memory_info().rss)
    return total


class _Collection:
    """A Chroma collection whose upserts can be captured and sent later in batches.

    While capturing, a `get` of ids all in `prefetched` (the rows one batched get returned for
    the keys about to be written) is answered from it instead of one request per put.
    """

    def __init__(self, real: Any, max_batch: int) -> None:
        self._real = real
        self._max_batch = max_batch
        self.capturing = False
        self.rows: dict[str, list[Any]] = {}
        self.prefetched: dict[str, dict[str, Any]] | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    @property
    def name(self) -> str:
        return str(self._real.name)

    def upsert(self, **kwargs: Any) -> Any:
        if not self.capturing:
            return self._real.upsert(**kwargs)
        for name, values in kwargs.items():
            self.rows.setdefault(name, []).extend(values)
        return None

    def get(self, *args: Any, **kwargs: Any) -> Any:
        known = self.prefetched
        ids: list[str] = kwargs.get("ids") or []
        if (
            not self.capturing
            or known is None
            or args
            or not ids
            or set(kwargs) != {"ids", "include"}
            or kwargs["include"] != ["metadatas"]
            or any(i not in known for i in ids)
        ):
            return self._real.get(*args, **kwargs)
        hits = [i for i in ids if known[i]]
        return {"ids": hits, "metadatas": [known[i]["metadata"] for i in hits]}

    def prefetch(self, ids: Sequence[str]) -> None:
        """One batched get of `ids`, kept for the per-put gets that follow."""
        known: dict[str, dict[str, Any]] = {i: {} for i in ids}
        for start in range(0, len(ids), self._max_batch):
            got = self._real.get(
                ids=list(ids[start : start + self._max_batch]), include=["metadatas"]
            )
            for i, meta in zip(got["ids"], got["metadatas"], strict=True):
                known[i] = {"metadata": meta}
        self.prefetched = known

    def flush(self) -> None:
        rows, self.rows = self.rows, {}
        self.prefetched = None
        n = len(rows.get("ids", []))
        for start in range(0, n, self._max_batch):
            self._real.upsert(**{k: v[start : start + self._max_batch] for k, v in rows.items()})


class _Client:
    """Wraps a chromadb client so that `ChromaStore(client=...)` gets `_Collection`s.

    The store opens several collections (main rows, scope registry, one per scope for vectors);
    each is wrapped once, and `capture`/`flush` apply to all of them.
    """

    def __init__(self, real: Any) -> None:
        self._real = real
        self.collections: dict[str, _Collection] = {}
        self.capturing = False
        limit = getattr(real, "get_max_batch_size", None)
        #: The most rows Chroma takes in one request (None: the client does not say).
        self.chroma_max_batch = int(limit()) if limit is not None else None
        #: Rows per upsert or get request this wrapper sends: at most Chroma's limit.
        self.max_batch = min(_BATCH, self.chroma_max_batch or _BATCH)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    def _wrap(self, real: Any) -> _Collection:
        wrapped = self.collections.get(real.name)
        if wrapped is None:
            wrapped = self.collections[real.name] = _Collection(real, self.max_batch)
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

    def prefetch(self, keys: Sequence[str]) -> None:
        """Fetch the main rows of `keys` in one request for the puts about to write them."""
        self.collections[_MAIN].prefetch(keys)


_MAIN = f"scale-{RandomUnitEmbedder.name}"  # the main collection of the store `run` makes
_BATCH = 2000  # entries per batch of the bulk fill


def _bulk_put(
    store: ChromaStore,
    client: _Client,
    first: int,
    stop: int,
    embedder: Embedder,
    registry: str,
    bar: Any,
) -> None:
    """`store.put` entries `first`..`stop`-1, their Chroma requests sent a batch at a time: one
    get of the batch's keys (the rows each put reads first), then its captured upserts."""
    for start in range(first, stop, _BATCH):
        entries = [_entry(i, registry) for i in range(start, min(start + _BATCH, stop))]
        vectors = embedder.embed_batch([e.prompt for e in entries])
        client.prefetch([e.key for e in entries])
        client.capture(True)
        try:
            for e, v in zip(entries, vectors, strict=True):
                store.put(e, v)
        finally:
            client.capture(False)
        client.flush()
        if bar is not None:
            bar.update(len(entries))


def run(
    sizes: Sequence[int],
    lookups: int,
    store_dir: Path,
    progress: bool,
    single: int = 200,
    server: bool = False,
) -> dict[str, Any]:
    """Fill and time one store; `server` puts it behind a local `chroma run` (in
    `store_dir`/data, its log beside) reached over HTTP, instead of embedded in this process."""
    store_dir.mkdir(parents=True, exist_ok=True)
    if not server:
        return _run(sizes, lookups, store_dir, progress, single, None)
    data = store_dir / "data"
    with ChromaServer(data, log_path=store_dir / "chroma-server.log") as chroma:
        return _run(sizes, lookups, data, progress, single, chroma)


def _run(
    sizes: Sequence[int],
    lookups: int,
    store_dir: Path,
    progress: bool,
    single: int,
    chroma: ChromaServer | None,
) -> dict[str, Any]:
    import chromadb
    from chromadb.config import Settings

    embedder = RandomUnitEmbedder()
    settings = Settings(anonymized_telemetry=False)
    if chroma is None:
        real = chromadb.PersistentClient(path=str(store_dir), settings=settings)
    else:
        real = chromadb.HttpClient(host=chroma.host, port=chroma.port, settings=settings)
    client = _Client(real)
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
        _bulk_put(store, client, filled, filled + bulk, embedder, cache.tasks.identity, bar)
        bulk_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        for i in range(filled + bulk, size):
            e = _entry(i, cache.tasks.identity)
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
        load = os.getloadavg()[0]  # the machine's 1-min load average as the lookups end
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
                "fill_s": bulk_s + single_s,
                "load_1min": load,
                "rss_mb": _rss() / 1e6,
                "server_rss_mb": _rss(chroma.pid) / 1e6 if chroma is not None else None,
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
        "mode": "embedded" if chroma is None else "server",
        "max_batch": client.max_batch,
        "chroma_max_batch": client.chroma_max_batch,
        "sizes": rows,
        "target": {
            "lookup_p50_ratio": {
                "measured": ratio,
                "target": f"<= 2.0 (nearest-lookup p50 at {last['size']} vs {first['size']})",
                "pass": ratio <= 2.0,
            }
        },
    }


def _size_cells(r: dict[str, Any]) -> list[str]:
    """One size's row up to the insert rate: size, lookup p50/p99 (nearest, exact), insert rate."""
    return [
        f"{r['size']:,}",
        f"{r['lookup_nearest_ms']['p50']:.2f} ms",
        f"{r['lookup_nearest_ms']['p99']:.2f} ms",
        f"{r['lookup_exact_ms']['p50']:.2f} ms",
        f"{r['lookup_exact_ms']['p99']:.2f} ms",
        f"{r['insert_per_s']:.0f}/s",
    ]


def print_table(result: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    server = result["mode"] == "server"
    where = "Chroma server on 127.0.0.1" if server else "embedded Chroma on disk"
    t = Table(title=f"StepCache scale ({where}, random unit vectors)")
    for h in (
        "cached requests",
        "nearest p50",
        "nearest p99",
        "exact p50",
        "exact p99",
        "insert rate",
        "RSS",
        *(["server RSS"] if server else []),
        "disk",
    ):
        t.add_column(h, justify="right")
    for r in result["sizes"]:
        server_rss = [f"{r['server_rss_mb']:.0f} MB"] if server else []
        t.add_row(
            *_size_cells(r),
            f"{r['rss_mb']:.0f} MB",
            *server_rss,
            f"{r['disk_mb']:.0f} MB",
        )
    Console().print(t)
    tg = result["target"]["lookup_p50_ratio"]
    print(
        f"lookup p50 ratio {tg['measured']:.2f} (target {tg['target']}): "
        f"{'pass' if tg['pass'] else 'MISS'}"
    )


def markdown(result: dict[str, Any]) -> str:
    server = result["mode"] == "server"
    if server:
        where = (
            "A local Chroma server (`chroma run` on 127.0.0.1, reached with `chromadb.HttpClient`)"
            f" on disk; its requests sent at most {result['max_batch']} rows at a time"
        )
        head = (
            "| cached requests | nearest p50 | nearest p99 | exact p50 | exact p99 | insert rate "
            "| bulk fill rate | fill time | load | RSS client | RSS server | disk |"
        )
    else:
        where = "One embedded Chroma store on disk"
        head = (
            "| cached requests | nearest p50 | nearest p99 | exact p50 | exact p99 | insert rate "
            "| RSS | disk |"
        )
    lines = [
        f"## Scale ({result['mode']})",
        "",
        f"- Command: `{result['command']}`; date {result['date']}; "
        f"duration {result['duration_s'] / 60:.1f} min",
        f"- {where}; filled through `ChromaStore.put` with synthetic "
        "requests and random 384-d unit vectors; lookups through `StepCache.lookup`.",
        "",
        head,
        "|---" * head.count("|", 1) + "|",
    ]
    for r in result["sizes"]:
        cells = _size_cells(r)
        if server:
            bulk = r["bulk_insert_per_s"]
            cells += [
                f"{bulk:.0f}/s" if bulk else "-",
                f"{r['fill_s'] / 60:.1f} min",
                f"{r['load_1min']:.1f}",
                f"{r['rss_mb']:.0f} MB",
                f"{r['server_rss_mb']:.0f} MB",
            ]
        else:
            cells.append(f"{r['rss_mb']:.0f} MB")
        cells.append(f"{r['disk_mb']:.0f} MB")
        lines.append("| " + " | ".join(cells) + " |")
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
    p.add_argument(
        "--server",
        action="store_true",
        help="run the store in a local Chroma server (chroma run) reached over HTTP",
    )
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
            args.server,
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

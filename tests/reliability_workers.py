"""Child-process code for the reliability tests (importable by `spawn` workers and subprocesses).

Not a test module: it has no tests, only functions that run in other processes.
"""

from __future__ import annotations

import json
import math
import os
import random
import re
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")

from stepcache_core import CacheConfig, ChromaStore, Entry, StepCache
from stepcache_core.store import entry_key

from conftest import HashEmbedder, ScriptedBackend
from toy_tasks import MultiplesTask, multiples_answer

NAMESPACE = "mp"
CRASH_DIM = 16


# ---------------------------------------------------------------------------- answers


def multiples_backend_answer(prompt: str) -> str:
    """A correct backend for MultiplesTask prompts (full lists and continuations)."""
    m = re.search(r"first (\d+) multiples of (\d+)(?: from (\d+))?", prompt)
    if not m:
        return f"free text answer to: {' '.join(prompt.split())}"
    return multiples_answer(int(m.group(1)), int(m.group(2)), int(m.group(3) or 1))


def linear_backend_answer(prompt: str) -> str:
    """A correct backend for linear-equation prompts: the exact-arithmetic solution."""
    from stepcache_core.tasks.linear import detect_linear
    from stepcache_core.tasks.linear.fallback import fallback_lines

    spec = detect_linear(prompt.split("\n")[0])
    if spec is None:
        return "I cannot solve that."
    return "".join(fallback_lines(spec))


# ---------------------------------------------------------------------------- workloads


def owned_ks(worker: int) -> list[int]:
    return [11 + 10 * worker, 12 + 10 * worker, 13 + 10 * worker]


def seed_prompts(worker: int) -> list[str]:
    return [f"List the first 4 multiples of {k}." for k in owned_ks(worker)] + [
        f"Tell me something nice, worker {worker}."
    ]


def borrow_prompts(worker: int, workers: int) -> list[str]:
    out: list[str] = []
    for other in range(workers):
        if other == worker:
            continue
        out += seed_prompts(other)  # exact hits on another process's entries
        for k in owned_ks(other):
            # same words, other text: the seed is the nearest neighbour and every step verifies
            out.append(f"list the first 4 multiples of {k}{'!?;:'[worker % 4]}")  # reuse
            out.append(f"List the first {5 + worker} multiples of {k}.")  # patch
    own = owned_ks(worker)[0]
    out.append(f"List the first 4 multiples of {own + 100}.")  # new work while others write
    return out


def linear_seed_prompts(worker: int) -> list[str]:
    return [f"Solve {2 + worker}x + {3 + i} = {20 + 5 * i} for x." for i in range(2)]


def linear_borrow_prompts(worker: int, workers: int) -> list[str]:
    out: list[str] = []
    for other in range(workers):
        if other == worker:
            continue
        out += linear_seed_prompts(other)
        out += [f"Find x: {2 + other}x + {3 + i} = {20 + 5 * i}" for i in range(2)]
    return out


def run_worker(
    port: int, worker: int, workers: int, threads: int, out_dir: str, task_kind: str, barrier: Any
) -> None:
    """One process of the shared-cache test: seed, wait for every process, borrow, report."""
    if task_kind == "multiples":
        cache = StepCache(
            ChromaStore(host="127.0.0.1", port=port, embedder_name="hash-64"),
            embedder=HashEmbedder(),
            tasks=[MultiplesTask()],
        )
        backend = ScriptedBackend(multiples_backend_answer)
        seeds, borrows = seed_prompts(worker), borrow_prompts(worker, workers)
    else:
        cache = StepCache(
            ChromaStore(host="127.0.0.1", port=port, embedder_name="hash-64-linear"),
            embedder=HashEmbedder(),
            config=CacheConfig(),
        )
        backend = ScriptedBackend(linear_backend_answer)
        seeds, borrows = linear_seed_prompts(worker), linear_borrow_prompts(worker, workers)
    lock = threading.Lock()
    records: list[dict[str, Any]] = []

    def ask(prompt: str, phase: str) -> None:
        result = cache.generate(prompt, backend, namespace=NAMESPACE)
        with lock:
            records.append(
                {
                    "phase": phase,
                    "prompt": prompt,
                    "path": result.path.value,
                    "text": result.text,
                    "cached_prompt": result.cached_prompt,
                    "verified": result.verified,
                    "from_cache": result.from_cache,
                    "steps": [s.text for s in result.steps],
                }
            )

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(lambda p: ask(p, "seed"), seeds))
    cache.flush(timeout=60)  # answers served by reuse are stored in the background
    barrier.wait(timeout=120)
    rng = random.Random(worker)
    rng.shuffle(borrows)
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(lambda p: ask(p, "borrow"), borrows))
    stats = cache.stats()
    Path(out_dir, f"worker-{worker}.json").write_text(
        json.dumps({"worker": worker, "records": records, "degraded": stats["degraded"]})
    )


# ---------------------------------------------------------------------------- crash writer


def crash_entry(seed: int, i: int) -> tuple[Entry, list[float]]:
    """The i-th entry a crash writer stores: its step count is written in its prompt."""
    rng = random.Random(seed * 1_000_003 + i)
    n = rng.randint(1, 12)
    prompt = f"crash {seed} {i} steps {n}"
    steps = tuple(
        f"step {j + 1}/{n} of {seed}-{i}: {'x' * rng.randint(0, 400)}\n" for j in range(n)
    )
    vec = [rng.gauss(0, 1) for _ in range(CRASH_DIM)]
    norm = math.sqrt(sum(x * x for x in vec)) or 1.0
    entry = Entry(
        key=entry_key("crash", "", "", prompt),
        namespace="crash",
        context="",
        prompt=prompt,
        answer="".join(steps),
        steps=steps,
        task="t",
        reusable=True,
    )
    return entry, [x / norm for x in vec]


def crash_writer(path: str, port: int, seed: int) -> None:
    """Write entries forever (embedded at `path` when port is 0, else to a server)."""
    if port:
        store = ChromaStore(host="127.0.0.1", port=port, embedder_name="crash")
    else:
        store = ChromaStore(path, embedder_name="crash")
    print("ready", flush=True)
    i = 0
    while True:
        entry, vec = crash_entry(seed, i)
        store.put(entry, vec)
        i += 1
        if i % 25 == 0:
            print(f"wrote {i}", flush=True)


if __name__ == "__main__":  # python reliability_workers.py crash PATH PORT SEED
    if sys.argv[1] == "crash":
        crash_writer(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))

"""`stepcache bench`: the paper-shaped benchmark on a real local model, five arms in one run.

    stepcache bench --quick            # one seed, 2 base prompts per family (~5 min here)
    stepcache bench                    # seeds 42 43 44, 10 bases per family (~1-2 h here)
    stepcache bench --backend fake --embedder hash   # seconds: develop the harness itself

Writes results.json (every figure), records.jsonl (every graded answer), benchmark.md and PNG plots
to --out; prints a table with ratios to the no-cache arm. The committed run (`make bench-full`):

    stepcache bench --workload all --memo-file bench/memo.jsonl.gz --docs docs --readme README.md

replays the committed memo of model answers (computing and appending only new prompts) and writes
docs/results/<workload>.json and all.json, docs/benchmark.md, docs/img/*.png and README's headline,
every figure rendered from that JSON.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import platform
import shlex
import shutil
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from stepcache_bench.hard import generate_hard_workload
from stepcache_bench.harness import ARMS, Integrity, Record, build_arms, measure
from stepcache_bench.memo import MemoTable
from stepcache_bench.metrics import comparison, summarize, targets, targets_v1
from stepcache_bench.structured import (
    STRUCTURED_KINDS,
    generate_structured_workload,
    request_schemas,
)
from stepcache_bench.workload import DEFAULT_SEEDS, Workload, expected_count, generate_workload
from stepcache_core import Backend, Embedder, MiniLMEmbedder

log = logging.getLogger("stepcache.bench")

QUICK_BASES = 2
WORKLOADS: tuple[str, ...] = ("paper", "hard", "structured")
_GENERATORS = {
    "paper": generate_workload,
    "hard": generate_hard_workload,
    "structured": generate_structured_workload,
}


def workloads_for(
    name: str,
    seeds: Sequence[int],
    bases: int,
    k: int,
    sizes: Mapping[str, tuple[int, int]] | None = None,
) -> list[tuple[str, Workload]]:
    """(workload name, workload) per seed: `paper`, `hard` (the same bases, grammar variants),
    `structured` (nested JSON Schema objects) or `all` (the three, each served by fresh arms).

    `sizes` gives a workload its own (bases, k) (a workload missing from it: `bases` and `k`), so
    one run can hold the paper workload whole and the others at the size the model time allows."""
    names = WORKLOADS if name == "all" else (name,)
    out = []
    for seed in seeds:
        for n in names:
            b, kk = (sizes or {}).get(n, (bases, k))
            out.append((n, _GENERATORS[n](seed, b, kk)))
    return out


def _sizes(p: argparse.ArgumentParser, given: list[list[str]]) -> dict[str, tuple[int, int]]:
    """`--size WORKLOAD BASES K` arguments as {workload: (bases, k)}; bad ones are usage errors."""
    sizes = {}
    for name, bases, k in given:
        if (
            name not in WORKLOADS
            or not (bases.isdigit() and k.isdigit())
            or 0 in (int(bases), int(k))
        ):
            p.error(
                f"--size {name} {bases} {k}: expected one of {', '.join(WORKLOADS)} and two "
                "positive integers"
            )
        sizes[name] = (int(bases), int(k))
    return sizes


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="stepcache bench",
        description="Reproduce the StepCache paper's benchmark on a local model: no cache, "
        "exact-match, semantic and StepCache arms on the same requests.",
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help=f"one seed (42), {QUICK_BASES} base prompts per family (about 5 minutes)",
    )
    p.add_argument(
        "--seeds",
        type=int,
        nargs="+",
        default=None,
        help=f"workload seeds (default {' '.join(map(str, DEFAULT_SEEDS))})",
    )
    p.add_argument(
        "--bases", type=int, default=None, help="base prompts per family (default 10; --quick: 2)"
    )
    p.add_argument("--k", type=int, default=3, help="variants per perturbation kind (default 3)")
    p.add_argument(
        "--size",
        nargs=3,
        action="append",
        metavar=("WORKLOAD", "BASES", "K"),
        default=[],
        help="one workload's own base prompts per family and variants per kind "
        "(repeatable; default: --bases and --k), e.g. --size structured 5 2",
    )
    p.add_argument(
        "--workload",
        choices=(*WORKLOADS, "all"),
        default="paper",
        help="paper: the paper-shaped workload (default); hard: the same bases with variants "
        "from the correctness grammar; structured: objects matching nested JSON Schemas, "
        "answered with schema-constrained decoding; all: the three, reported on their own "
        "and together",
    )
    p.add_argument(
        "--backend",
        choices=("llamacpp", "fake"),
        default="llamacpp",
        help="llamacpp: the local model (default); fake: a simulated model for "
        "developing the harness",
    )
    p.add_argument(
        "--model",
        default=None,
        help="GGUF file for llamacpp (default: the bundled Qwen2.5-Coder-0.5B)",
    )
    p.add_argument("--threads", type=int, default=2, help="llama.cpp CPU threads (default 2)")
    p.add_argument(
        "--max-tokens",
        type=int,
        default=256,
        help="backend token cap for every arm's generations (default 256)",
    )
    p.add_argument(
        "--semantic-min-similarity",
        type=float,
        default=0.8,
        help="cosine similarity at or above which the semantic cache serves the nearest "
        "cached answer (default 0.8, GPTCache's and LangChain's default)",
    )
    p.add_argument(
        "--embedder",
        choices=("minilm", "hash"),
        default="minilm",
        help="minilm: the bundled all-MiniLM-L6-v2 (default); hash: a cheap fake",
    )
    p.add_argument("--arms", nargs="+", choices=ARMS, default=list(ARMS), help="arms to run")
    p.add_argument(
        "--out", type=Path, default=None, help="output directory (default bench-results/<UTC time>)"
    )
    p.add_argument(
        "--docs",
        type=Path,
        default=None,
        help="also write DIR/benchmark.md and DIR/img/*.png (e.g. docs)",
    )
    p.add_argument(
        "--memo-file",
        type=Path,
        default=None,
        help="persist backend answers (.jsonl or .jsonl.gz) and reuse them in later runs; "
        "the output says how many came from it (default: off, every seed computes its own; "
        "the committed one is bench/memo.jsonl.gz)",
    )
    p.add_argument(
        "--readme",
        type=Path,
        default=None,
        help="with --docs: also rewrite this README's generated headline block (README.md)",
    )
    p.add_argument("--keep-stores", action="store_true", help="keep the arms' Chroma stores")
    p.add_argument(
        "--no-progress",
        action="store_true",
        help="no progress bar (without a terminal, progress lines go to stderr)",
    )
    return p


def _machine() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        import psutil  # type: ignore[import-untyped]

        mem = psutil.virtual_memory().total / 1e9
    except ImportError:
        mem = 0.0
    return {
        "cpu": cpu,
        "cores": os.cpu_count() or 0,
        "memory_gb": mem,
        "platform": platform.platform(),
        "python": platform.python_version(),
    }


def _backend(args: argparse.Namespace) -> tuple[Backend, str, Any]:
    if args.backend == "fake":
        from stepcache_bench.fake import FakeModel, simulated_seconds

        return (
            FakeModel(),
            "fake model (simulated latency: 110 prompt tok/s, 15 tok/s)",
            (simulated_seconds),
        )
    from stepcache_core.backends import LlamaCppBackend, LlamaCppOptions
    from stepcache_core.backends.llamacpp import model_file_name

    options = LlamaCppOptions(n_threads=args.threads, max_tokens=args.max_tokens)
    backend = LlamaCppBackend(args.model, options=options)
    name = (
        f"{model_file_name(args.model)} via llama.cpp (xllamacpp), greedy, {args.threads} threads"
    )
    return backend, name, None


def _embedder(args: argparse.Namespace) -> Embedder:
    if args.embedder == "hash":
        from stepcache_bench.fake import HashEmbedder

        return HashEmbedder()
    return MiniLMEmbedder()


class _Progress:
    def __init__(self, total: int, enabled: bool, plain: bool = False) -> None:
        self._bar: Any = None
        self._done = 0
        self._total = total
        self._plain = plain
        self._t0 = time.perf_counter()
        if enabled:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self._bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
            )
            self._task = self._bar.add_task("bench", total=total)
            self._bar.start()

    def step(self, description: str) -> None:
        self._done += 1
        if self._bar is not None:
            self._bar.update(self._task, advance=1, description=description)
        elif self._plain and (self._done % max(self._total // 20, 1) == 0):
            elapsed = time.perf_counter() - self._t0
            print(
                f"[{elapsed / 60:5.1f} min] {self._done}/{self._total} {description}",
                file=sys.stderr,
                flush=True,
            )

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()


def run(args: argparse.Namespace, argv: Sequence[str]) -> dict[str, Any]:
    started = time.perf_counter()
    seeds = args.seeds or ([42] if args.quick else list(DEFAULT_SEEDS))
    bases = args.bases or (QUICK_BASES if args.quick else 10)
    out: Path = args.out or Path("bench-results") / dt.datetime.now(dt.UTC).strftime(
        "%Y%m%dT%H%M%SZ"
    )
    out.mkdir(parents=True, exist_ok=True)
    sizes = _sizes(build_parser(), args.size)
    named = workloads_for(args.workload, seeds, bases, args.k, sizes)
    workloads = [w for _, w in named]

    backend, model_name, simulated = _backend(args)
    embedder = _embedder(args)
    t0 = time.perf_counter()
    embedder.embed("warm up the embedder")
    if hasattr(backend, "start"):
        backend.start()
    backend.complete("Say hello.", 8)  # load and warm the model; not charged to any arm
    warmup_s = time.perf_counter() - t0

    integrity = Integrity()
    records: list[Record] = []
    model_time = 0.0
    computed = loaded = from_memo = 0
    total = sum(len(w.bases) + len(w.requests) for w in workloads)
    tty = sys.stderr.isatty()
    progress = _Progress(
        total, not args.no_progress and tty, plain=not args.no_progress and not tty
    )
    store_root = Path(tempfile.mkdtemp(prefix="stepcache-bench-"))
    try:
        tables: dict[int, MemoTable] = {}
        for wname, w in named:
            if w.seed not in tables:
                tables[w.seed] = MemoTable(args.memo_file, model=model_name)
            table = tables[w.seed]
            loaded = max(loaded, table.loaded)  # every seed's table reads the same file
            arms = build_arms(
                backend,
                table,
                embedder,
                store_root / f"{wname}-seed-{w.seed}",
                max_tokens=args.max_tokens,
                semantic_min_similarity=args.semantic_min_similarity,
                simulated_seconds=simulated,
                arms=args.arms,
                schemas=request_schemas(w),
            )
            for b in w.bases:
                for arm in arms:
                    arm.warm(b.prompt)
                    arm.backend.take()
                progress.step(f"{wname} seed {w.seed}: caching base prompts")
            for i, req in enumerate(w.requests):
                records.extend(measure(arms, req, integrity))
                progress.step(f"{wname} seed {w.seed}: request {i + 1}/{len(w.requests)}")
            for arm in arms:
                arm.close()
        computed += sum(t.computed for t in tables.values())
        from_memo += sum(t.used_from_file for t in tables.values())
        model_time += sum(t.seconds() for t in tables.values())
    finally:
        progress.close()
        if not args.keep_stores:
            shutil.rmtree(store_root, ignore_errors=True)

    duration = time.perf_counter() - started
    results = _results(
        args,
        argv,
        seeds,
        bases,
        workloads,
        records,
        model_name,
        duration,
        model_time,
        computed,
        loaded,
        from_memo,
        warmup_s,
    )
    _write(out, results, records, args)
    return results


def _derivation(workload: str, bases: int, k: int) -> str:
    """How many evaluation requests a seed holds, per workload."""
    names = WORKLOADS if workload == "all" else (workload,)
    parts = []
    for name in names:
        if name == "structured":
            n = len(STRUCTURED_KINDS)
            parts.append(
                f"structured: {bases} base prompts x {n} edit kinds x k={k} variants = "
                f"{bases * n * k}"
            )
        else:
            prefix = "" if len(names) == 1 else f"{name}: "
            parts.append(
                f"{prefix}2 families x {bases} base prompts x 4 perturbation kinds x "
                f"k={k} variants = {expected_count(bases, k)}"
            )
    return "; ".join(parts)


def _results(
    args: argparse.Namespace,
    argv: Sequence[str],
    seeds: list[int],
    bases: int,
    workloads: list[Any],
    records: list[Record],
    model_name: str,
    duration: float,
    model_time: float,
    computed: int,
    loaded: int,
    from_memo: int,
    warmup_s: float,
) -> dict[str, Any]:
    summary = summarize(records, args.arms)
    first = [w for w in workloads if w.seed == seeds[0]]
    per_seed = sum(len(w.requests) for w in first)
    counts: dict[str, int] = {}
    for w in first:
        for key, n in w.counts.items():
            counts[key] = counts.get(key, 0) + n
    command = "python -m stepcache_bench.run " + " ".join(shlex.quote(a) for a in argv)
    results: dict[str, Any] = {
        "command": command.strip(),
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "duration_s": duration,
        "model_time_s": model_time,
        "warmup_s": warmup_s,
        "model": model_name,
        "machine": _machine(),
        "seeds": seeds,
        "requests": {
            "per_seed": per_seed,
            "bases_per_seed": len(workloads[0].bases) if workloads else 0,
            "total": sum(len(w.requests) for w in workloads),
            "counts_per_seed": dict(sorted(counts.items())),
            "derivation": _derivation(args.workload, bases, args.k),
        },
        "config": {
            "max_tokens": args.max_tokens,
            "semantic_min_similarity": args.semantic_min_similarity,
            "bases_per_family": bases,
            "k": args.k,
            "embedder": args.embedder,
            "backend": args.backend,
            "workload": args.workload,
            "threads": args.threads,
        },
        "backend_calls": {
            "computed": computed,
            "from_memo_file": from_memo,
            "loaded_from_memo_file": loaded,
            "memo_file": str(args.memo_file) if args.memo_file else None,
        },
        **summary,
    }
    names = sorted({r.workload for r in records})
    results["targets"] = targets(summary, names[0] if len(names) == 1 else None)
    results["targets_v1"] = targets_v1(summary)
    results["comparison"] = comparison(summary)
    results["workloads"] = {}
    for name in names:
        part = summarize([r for r in records if r.workload == name], args.arms)
        results["workloads"][name] = {
            "requests": {
                "total": sum(r.workload == name for r in records) // max(len(args.arms), 1)
            },
            **part,
            "targets": targets(part, name),
            "targets_v1": targets_v1(part),
            "comparison": comparison(part),
        }
    results["notes"] = {
        "memo": (
            "Greedy decoding is deterministic, so each distinct backend call (prompt, max_tokens, "
            "and the schema of a schema-constrained call) was computed once per seed and its "
            "measured latency and tokens were charged to every arm that made it; "
            "an arm's latency = its own measured cache overhead + the memoized "
            f"backend seconds of its calls ({computed} model answers computed in this run"
            + (f", {from_memo} read from the memo file" if args.memo_file else "")
            + ")."
        ),
        "checker": (
            "Correct (task) is graded by the benchmark's own checker, not StepCache's verifiers: "
            "equations by the final value against the solution sympy computed at generation time; "
            "JSON by parsing the first object, the exact required key set and the declared value "
            "types. Core-meaning changes (is v = c a solution, answer only, rounded decimal, plain "
            "words; YAML, JSON array, another subject, one minified line) count as correct when "
            "the answer was generated for that request, wrong when it was built from a cached "
            "answer to another prompt."
        ),
        "integrity": (
            "Correct (integrity) applies the tasks' own integrity check of the served text to "
            "every request a task recognises; the others are not counted in that fraction."
        ),
        "wrong_served": (
            "Wrong served counts answers served from a cache (exact/reuse/patch paths, the "
            "semantic cache's hits) that fail the task checker."
        ),
        "gptcache": (
            "GPTCache 0.1.44 itself, as its README recommends: sqlite + faiss data manager, "
            "SearchDistanceEvaluation, get_prompt, with the benchmark's embedder (the same MiniLM "
            "as StepCache) as its embedding function; one Cache object per arm and seed, "
            "get/put of gptcache.adapter.api. Its faiss index returns the squared L2 distance d, "
            "SearchDistanceEvaluation scores 4 - d and the adapter serves at score >= "
            "4 x similarity_threshold, so on unit vectors its default 0.8 serves at cosine >= 0.6 "
            "and 0.9 at cosine >= 0.8: both are reported. The stored value holds the prompt "
            "beside the answer so that the grader knows which prompt an answer was cached for. "
            "Its lookup is the get() time (embedding, search, sqlite read, hit report)."
        ),
        "langchain_exact": (
            "LangChain's InMemoryCache through set_llm_cache, in front of a minimal LangChain LLM "
            "whose call is the benchmark backend: the exact-match cache LangChain users have "
            "today (the raw prompt string and the model's llm_string are the key). The global "
            "cache is set for each call only and put back afterwards."
        ),
        "lookup": (
            "Lookup (median): GPTCache's get() time; for the other arms their cache overhead "
            "per request."
        ),
        "hard": (
            "The hard workload (--workload hard|all) keeps the paper workload's bases and "
            "draws 4k variants per base from the correctness grammar (stepcache_bench/hard.py): "
            "a third meaning-preserving (another benchmark phrasing, whitespace between "
            "sentences, final punctuation; graded by the checker), half meaning-changing in "
            "words no task parses (another question about the same equation, a constraint, an "
            "output form, a language, a value or fact in prose, a count, a nesting, another "
            "subject, several equations, units; graded only by whether a cached answer was "
            "served), a sixth respelled spec (thousands separators, a number in words, a unicode "
            "minus, superscripts that cancel; a stop-word or non-ASCII key; graded by the "
            "checker against the meant equation or key set). Each workload is served by fresh "
            "arms and reported on its own and together."
        ),
        "structured": (
            "The structured workload (--workload structured|all) asks for one JSON object "
            "matching a nested JSON Schema fenced in the prompt (objects, arrays of objects, "
            "enums; ten subjects such as an order with line items or a user profile with an "
            "address), for a subject whose prose states one or two values "
            "(stepcache_bench/structured.py). Variants per base: a rewording from the schema "
            "task's lexicon, a field added, removed or renamed, a nested field added, an enum's "
            "values replaced, and another subject (other stated values; a core change). Every "
            "arm answers these prompts with the backend's schema-constrained decoding "
            "(complete_json with the request's schema; llama.cpp turns it into a grammar), "
            "memoized by prompt, max_tokens and schema. Graded by jsonschema validation of the "
            "first object against the request's own schema and the stated values at their "
            "pointers; another subject is also wrong when served from another prompt's answer."
        ),
        "paths": (
            "Non-StepCache arms: a cache hit counts as exact (same prompt) or reuse (another "
            "prompt); every backend answer as miss. The no-cache arm is all miss."
        ),
        "overhead": (
            "Cache overhead = wall time of the request minus the time spent inside backend "
            "calls (embedding, search, verification, patch bookkeeping; the exact and semantic "
            "arms' store writes). StepCache writes the answers it serves in the background; "
            "those writes finish between requests, outside the timed span. Every arm serves a "
            "request before any answer to it is graded (grading parses the prompt with the tasks' "
            "memoized detection, which would otherwise be warm when StepCache serves it); "
            "StepCache with the fallback off serves after StepCache and finds the request's "
            "detection memoized."
        ),
    }
    return results


def _write(
    out: Path, results: dict[str, Any], records: list[Record], args: argparse.Namespace
) -> None:
    from stepcache_bench import report

    (out / "results.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    with (out / "records.jsonl").open("w", encoding="utf-8") as fh:
        for r in records:
            fh.write(json.dumps(r.as_dict(), ensure_ascii=False) + "\n")
    files = report.results_files(results)
    report.plots(files, out / "img")
    (out / "benchmark.md").write_text(report.page(files))
    if args.docs is not None:
        for path in report.write_docs(files, args.docs, args.readme):
            print(f"wrote {path}")
    if len(results["workloads"]) > 1:
        for name in results["workloads"]:
            print(f"\n== workload {name} ==")
            report.print_table(files[name])
        print("\n== all workloads together ==")
    report.print_table(results)
    calls = results["backend_calls"]
    source = (
        f"{calls['from_memo_file']} from the memo file {calls['memo_file']}, "
        if calls["memo_file"]
        else ""
    )
    appended = f" (appended to {calls['memo_file']})" if calls["memo_file"] else ""
    print(f"model answers: {source}{calls['computed']} computed{appended}")
    print(f"results: {out / 'results.json'} (duration {results['duration_s'] / 60:.1f} min)")


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    if args.readme is not None and args.docs is None:
        build_parser().error("--readme needs --docs")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    run(args, argv)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

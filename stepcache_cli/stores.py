"""`stepcache stats` and `stepcache clear`: read or empty an existing store, never create one."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stepcache_cli.main import STORE_FILE, CommandError, store_problem

if TYPE_CHECKING:
    from stepcache_core import StepCache


def open_cache(store: Path | None) -> tuple[StepCache, Path]:
    """The cache on `store` (default: the default store), which must already exist."""
    from stepcache_core import StepCache
    from stepcache_core.engine import default_cache_dir

    path = store if store is not None else default_cache_dir() / "chroma"
    problem = store_problem(path)
    if problem is not None:
        raise CommandError(f"{problem}; pass --store DIR (the directory holding {STORE_FILE})")
    return StepCache(path=path), path


def stats(args: argparse.Namespace) -> int:
    """Print the counters kept in the store (every process's traffic) as a table, or JSON."""
    cache, path = open_cache(args.store)
    namespace, tenant = getattr(args, "namespace", None), getattr(args, "tenant", None)
    entries = cache.store.count(namespace)
    counts = cache.store_stats(namespace, tenant)
    if counts is None:
        raise CommandError(f"cannot read the counters of {path}")
    if getattr(args, "json", False):
        print(json.dumps({"store": str(path), "entries": entries, **counts}, indent=2))
        return 0
    print(f"store: {path}")
    print(f"entries: {entries}")
    print(render_table(counts))
    return 0


def render_table(counts: dict[str, Any]) -> str:
    """The store's counters (`StepCache.store_stats`) as a plain-text table."""
    paths = list(counts["paths"])
    head = ["", "requests", *paths, "hit rate"]
    rows = [["all", counts["requests"], *counts["paths"].values(), counts["hit_rate"]]]
    for task, by_path in counts["tasks"].items():
        done = sum(by_path[p] for p in paths)
        rows.append([task, done, *(by_path[p] for p in paths), by_path["hit_rate"]])
    cells = [head, *[[*(str(v) for v in r[:-1]), f"{r[-1]:.1%}"] for r in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(
        zip(row, widths, strict=True))) for row in cells]  # fmt: skip
    spent = counts["prompt_tokens"] + counts["completion_tokens"]
    lines += [
        f"backend calls: {counts['backend_calls']}, tokens spent: {spent} "
        f"(prompt {counts['prompt_tokens']}, completion {counts['completion_tokens']}), "
        f"backend seconds: {counts['backend_seconds']:.2f}",
        f"saved (estimated from the reused entries' cost): {counts['tokens_saved']} tokens, "
        f"{counts['seconds_saved']:.2f} backend seconds",
        f"fallbacks: {counts['fallbacks']}",
    ]
    return "\n".join(lines)


def clear(args: argparse.Namespace) -> int:
    """Delete the entries in scope and reset their traffic counters (`stepcache stats`) after a
    yes on the terminal (or with ``--yes``)."""
    cache, path = open_cache(args.store)
    scope = ", ".join(
        f"{name} {value!r}"
        for name, value in (("namespace", args.namespace), ("tenant", args.tenant))
        if value is not None
    )
    what = f"the entries of {scope}" if scope else "every entry"
    if not args.yes:
        if not sys.stdin.isatty():
            raise CommandError(f"refusing to delete {what} in {path} without --yes (no terminal)")
        sys.stderr.write(f"delete {what} in {path}? [y/N] ")
        sys.stderr.flush()
        if sys.stdin.readline().strip().lower() not in ("y", "yes"):
            print("nothing deleted", file=sys.stderr)
            return 1
    deleted = cache.clear(namespace=args.namespace, tenant=args.tenant)
    cache.clear_counters(namespace=args.namespace, tenant=args.tenant)
    print(f"deleted {deleted} entries and reset the traffic counters")
    return 0

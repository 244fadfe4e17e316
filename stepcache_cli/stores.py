"""`stepcache stats` and `stepcache clear`: read or empty an existing store, never create one."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

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
    """Print the store's counters, one ``key: value`` a line."""
    cache, _ = open_cache(args.store)
    for key, value in cache.stats().items():
        print(f"{key}: {value}")
    return 0


def clear(args: argparse.Namespace) -> int:
    """Delete the entries in scope after a yes on the terminal (or with ``--yes``)."""
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
    print(f"deleted {cache.clear(namespace=args.namespace, tenant=args.tenant)} entries")
    return 0

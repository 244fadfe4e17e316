"""`stepcache demo`: a handful of math and JSON requests on the local model, each one's path."""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

DEMO_PROMPTS: tuple[tuple[str, str], ...] = (
    ("new", "Solve 3x + 5 = 20 for x. Be concise and end with 'x = <value>'."),
    ("same prompt", "Solve 3x + 5 = 20 for x. Be concise and end with 'x = <value>'."),
    ("reworded", "Find x if 3x + 5 = 20. Be concise and end with 'x = <value>'."),
    ("variable renamed", "Solve 3y + 5 = 20 for y. Be concise and end with 'y = <value>'."),
    ("constants changed", "Solve 3x + 7 = 22 for x. Be concise and end with 'x = <value>'."),
    ("sign changed", "Solve 3x - 5 = 20 for x. Be concise and end with 'x = <value>'."),
    ("other question", "Is x = 4 a solution of 3x + 5 = 20?"),
    ("new", "Output only a JSON object for a fictional person with the fields name, age, city."),
    (
        "key added",
        "Output only a JSON object for a fictional person with the fields name, age, city, email.",
    ),
    (
        "other format",
        "Output only a YAML document for a fictional person with the fields name, age, city.",
    ),
)


def run(args: argparse.Namespace) -> int:
    """Run `DEMO_PROMPTS` through one cache on the bundled model and print a table."""
    from stepcache_core import StepCache
    from stepcache_core.backends import LlamaCppBackend

    store_dir = Path(args.store) if args.store else Path(tempfile.mkdtemp(prefix="stepcache-demo-"))
    print(
        f"store: {store_dir} (local Chroma)  embedder: all-MiniLM-L6-v2  model: bundled Qwen 0.5B"
    )
    cache = StepCache(path=store_dir)
    t0 = time.perf_counter()
    with LlamaCppBackend() as backend:
        print(f"model loaded in {time.perf_counter() - t0:.1f} s\n")
        header = f"{'request':<18} {'path':<6} {'time':>8} {'tokens':>7}  {'ok':<3} prompt"
        print(header)
        print("-" * len(header))
        for label, prompt in DEMO_PROMPTS:
            result = cache.generate(prompt, backend)
            ms = result.timings.get("total", 0.0) * 1000
            ok = "yes" if result.verified else "-"
            short = prompt if len(prompt) <= 60 else prompt[:57] + "..."
            print(
                f"{label:<18} {result.path.value:<6} {ms:>6.0f}ms {result.total_tokens:>7}  "
                f"{ok:<3} {short}"
            )
            if args.verbose:
                print(f"    why: {result.reason}")
                print("    " + result.text.strip().replace("\n", "\n    ")[:600])
    stats = cache.stats()
    print(
        f"\npaths: {stats['paths']}  backend calls: {stats['backend_calls']}  "
        f"tokens: {stats['prompt_tokens'] + stats['completion_tokens']}"
    )
    return 0

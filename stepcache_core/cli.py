"""The `stepcache` command: demo | bench | scale | serve-model | stats | clear."""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from collections.abc import Sequence
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


def _demo(args: argparse.Namespace) -> int:
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


def _serve_model(args: argparse.Namespace) -> int:
    from stepcache_core.backends import serve_forever

    serve_forever(args.model, host=args.host, port=args.port, api_key=args.api_key)
    return 0


def _stats(args: argparse.Namespace) -> int:
    from stepcache_core import StepCache

    cache = StepCache(path=args.store) if args.store else StepCache()
    for key, value in cache.stats().items():
        print(f"{key}: {value}")
    return 0


def _clear(args: argparse.Namespace) -> int:
    from stepcache_core import StepCache

    cache = StepCache(path=args.store) if args.store else StepCache()
    print(f"deleted {cache.clear(namespace=args.namespace, tenant=args.tenant)} entries")
    return 0


def _bench(args: argparse.Namespace, rest: Sequence[str]) -> int:
    from stepcache_bench.run import main as bench_main

    return bench_main(list(rest))


def _scale(args: argparse.Namespace, rest: Sequence[str]) -> int:
    from stepcache_bench.scale import main as scale_main

    return scale_main(list(rest))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="stepcache", description=__doc__)
    parser.add_argument("--log-level", default="WARNING", help="logging level (default WARNING)")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="a handful of math and JSON requests on the local model")
    demo.add_argument("--store", help="Chroma directory (default: a fresh temporary one)")
    demo.add_argument("-v", "--verbose", action="store_true", help="print each answer and why")
    sub.add_parser(
        "bench", help="the paper-shaped benchmark (see `stepcache bench --help`)", add_help=False
    )
    sub.add_parser("scale", help="lookup latency and memory against cache size", add_help=False)
    serve = sub.add_parser("serve-model", help="serve the local model on an OpenAI-compatible URL")
    serve.add_argument("--model", help="a GGUF path (default: the bundled Qwen2.5-Coder-0.5B)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8080)
    serve.add_argument("--api-key", help="default: a random key, printed at start")
    for name, helptext in (("stats", "entry and path counts"), ("clear", "delete entries")):
        cmd = sub.add_parser(name, help=helptext)
        cmd.add_argument("--store", help="Chroma directory (default: ~/.cache/stepcache/chroma)")
        if name == "clear":
            cmd.add_argument("--namespace", help="only this namespace")
            cmd.add_argument("--tenant", help="only this tenant")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    # `bench` and `scale` own their options: pass everything after the command through.
    for passthrough, runner in (("bench", _bench), ("scale", _scale)):
        if passthrough in argv:
            at = argv.index(passthrough)
            args = parser.parse_args(argv[: at + 1])
            logging.basicConfig(level=args.log_level.upper())
            return runner(args, argv[at + 1 :])
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper())
    handlers = {"demo": _demo, "serve-model": _serve_model, "stats": _stats, "clear": _clear}
    return handlers[args.command](args)


if __name__ == "__main__":
    raise SystemExit(main())

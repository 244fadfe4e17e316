"""The argument tree of `stepcache`, its one-line errors and the lazy dispatch to subcommands.

Usage errors (a bad port, a missing model file, an unknown log level, a `--store` that is not a
store) exit with argparse's status 2; a subcommand that fails at run time prints one line,
``stepcache: error: ...``, and exits with 1. Each subcommand's module is imported only when it
runs, so ``stepcache --help`` loads neither chromadb, torch nor the benchmark.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
#: The file every embedded Chroma store holds; a directory without it is not a store.
STORE_FILE = "chroma.sqlite3"
#: subcommand -> "module:function" run with the parsed arguments.
HANDLERS = {
    "demo": "stepcache_cli.demo:run",
    "serve-model": "stepcache_cli.serve:run",
    "stats": "stepcache_cli.stores:stats",
    "clear": "stepcache_cli.stores:clear",
}
#: subcommands that own their options: everything after the name is passed to "module:function".
PASSTHROUGH = {
    "bench": "stepcache_bench.run:main",
    "scale": "stepcache_bench.scale:main",
}


class CommandError(Exception):
    """A subcommand cannot do what it was asked; its message is the one line the user sees."""


def port_number(text: str) -> int:
    """A TCP port, 1-65535."""
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"port must be between 1 and 65535, not {port}")
    return port


def model_file(text: str) -> str:
    """An existing file (its format is checked when the model loads)."""
    if not Path(text).expanduser().is_file():
        raise argparse.ArgumentTypeError(f"no such model file: {text}")
    return text


def log_level(text: str) -> str:
    """One of the logging levels, in any case."""
    level = text.upper()
    if level not in LOG_LEVELS:
        raise argparse.ArgumentTypeError(
            f"unknown log level {text!r} (choose from {', '.join(LOG_LEVELS)})"
        )
    return level


def existing_store(text: str) -> Path:
    """A directory that already holds an embedded Chroma store (never created here)."""
    path = Path(text).expanduser()
    problem = store_problem(path)
    if problem is not None:
        raise argparse.ArgumentTypeError(problem)
    return path


def store_problem(path: Path) -> str | None:
    """Why `path` is not an existing store, or None when it is one."""
    if not path.exists():
        return f"no store at {path} (no such directory)"
    if not path.is_dir():
        return f"{path} is a file, not a store directory"
    if not (path / STORE_FILE).is_file():
        return f"no store at {path} (the directory has no {STORE_FILE})"
    return None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="stepcache", description="StepCache: a step-level answer cache for LLMs."
    )
    parser.add_argument(
        "--log-level",
        type=log_level,
        default="WARNING",
        help=f"one of {', '.join(LOG_LEVELS)} (default WARNING)",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    demo = sub.add_parser("demo", help="a handful of math and JSON requests on the local model")
    demo.add_argument("--store", help="Chroma directory (default: a fresh temporary one)")
    demo.add_argument("-v", "--verbose", action="store_true", help="print each answer and why")
    sub.add_parser(
        "bench", help="the paper-shaped benchmark (see `stepcache bench --help`)", add_help=False
    )
    sub.add_parser("scale", help="lookup latency and memory against cache size", add_help=False)
    serve = sub.add_parser("serve-model", help="serve the local model on an OpenAI-compatible URL")
    serve.add_argument(
        "--model", type=model_file, help="a GGUF path (default: the bundled Qwen2.5-Coder-0.5B)"
    )
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=port_number, default=8080)
    serve.add_argument("--api-key", help="default: a random key, printed at start")
    for name, helptext in (
        ("stats", "traffic counts: paths, tasks, tokens spent and saved"),
        ("clear", "delete entries and reset the traffic counters"),
    ):
        cmd = sub.add_parser(name, help=helptext)
        cmd.add_argument(
            "--store",
            type=existing_store,
            help="an existing Chroma store directory (default: $STEPCACHE_HOME/chroma or "
            "~/.cache/stepcache/chroma)",
        )
        cmd.add_argument("--namespace", help="only this namespace")
        cmd.add_argument("--tenant", help="only this tenant")
        if name == "stats":
            cmd.add_argument("--json", action="store_true", help="print the counts as JSON")
        if name == "clear":
            cmd.add_argument(
                "-y", "--yes", action="store_true", help="delete without asking for confirmation"
            )
    return parser


def configure_logging(level: str) -> None:
    """`level` for every logger, and the one-time progress notes (first-use export, model
    assembly) always shown on stderr as ``stepcache: ...``."""
    logging.basicConfig(level=level)
    progress = logging.getLogger("stepcache.progress")
    progress.setLevel(logging.INFO)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("stepcache: %(message)s"))
    progress.handlers = [handler]
    progress.propagate = False


def resolve(target: str) -> Callable[..., int]:
    """The function named by "module:function", imported now."""
    module, _, name = target.partition(":")
    fn: Callable[..., int] = getattr(importlib.import_module(module), name)
    return fn


def main(argv: Sequence[str] | None = None) -> int:
    """Run the `stepcache` command on `argv` (default: the process's arguments)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    # `bench` and `scale` own their options: pass everything after the command through.
    for passthrough, target in PASSTHROUGH.items():
        if passthrough in argv:
            at = argv.index(passthrough)
            args = parser.parse_args(argv[: at + 1])
            configure_logging(args.log_level)
            return resolve(target)(argv[at + 1 :])
    args = parser.parse_args(argv)
    configure_logging(args.log_level)
    try:
        return resolve(HANDLERS[args.command])(args)
    except KeyboardInterrupt:
        print("stepcache: interrupted", file=sys.stderr)
        return 130
    except (CommandError, OSError) as exc:
        print(f"stepcache: error: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:
        from stepcache_core.errors import StepCacheError

        if not isinstance(exc, StepCacheError):
            raise
        print(f"stepcache: error: {exc}", file=sys.stderr)
        return 1

"""`stepcache serve-model`: the local model on an OpenAI-compatible URL until Ctrl-C."""

from __future__ import annotations

import argparse


def run(args: argparse.Namespace) -> int:
    """Serve `args.model` (default: the bundled model) on `args.host`:`args.port`."""
    from stepcache_core.backends import serve_forever

    serve_forever(args.model, host=args.host, port=args.port, api_key=args.api_key)
    return 0

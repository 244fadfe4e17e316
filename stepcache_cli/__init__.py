"""The `stepcache` command, above the core and the benchmark: demo | bench | scale | serve-model |
stats | clear. Importing it loads no subcommand: each one imports its own modules when it runs."""

from stepcache_cli.main import main

__all__ = ["main"]

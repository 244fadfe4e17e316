"""`python -m stepcache_cli ...` runs the `stepcache` command."""

from stepcache_cli.main import main

raise SystemExit(main())

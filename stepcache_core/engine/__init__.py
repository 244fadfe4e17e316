"""The StepCache engine: the public facade over one request flow, its drivers and its writer.

- `facade`: `StepCache`, construction and the calls a user makes.
- `request`: one request's state (`Request`, `Usage`), `Patchable`, the entry an answer becomes.
- `effects`: what the flow asks to have done (backend calls, cache I/O, writer state), as data.
- `flow`: the request flow of DESIGN.md as pure decisions: it yields effects, does no I/O.
- `templates`: judging one cached entry (same request, reuse, patch, or a refusal reason).
- `drivers`: the sync and async drivers that carry out the effects; streaming of steps.
- `writer`: the write-behind writer and the in-process shape index.
"""

from stepcache_core.engine.facade import StepCache, default_cache_dir
from stepcache_core.engine.request import StepListener

__all__ = ["StepCache", "StepListener", "default_cache_dir"]

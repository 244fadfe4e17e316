"""The StepCache engine: the public facade over one request flow, its drivers and its writer."""

from stepcache_core.engine.facade import StepCache, StepListener, default_cache_dir

__all__ = ["StepCache", "StepListener", "default_cache_dir"]

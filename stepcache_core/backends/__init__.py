"""Backends: what the engine calls to generate or patch an answer."""

from stepcache_core.backends.base import Backend, FunctionBackend

__all__ = ["Backend", "FunctionBackend"]

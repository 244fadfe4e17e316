"""The linear-equation task family."""

from stepcache_core.tasks.linear.parse import LinearEquationTask, LinearSpec, detect_linear

__all__ = ["LinearEquationTask", "LinearSpec", "detect_linear"]

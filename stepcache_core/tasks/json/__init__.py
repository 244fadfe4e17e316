"""The JSON-object task family."""

from stepcache_core.tasks.json.parse import JsonObjectTask, JsonSpec, detect_json_spec

__all__ = ["JsonObjectTask", "JsonSpec", "detect_json_spec"]

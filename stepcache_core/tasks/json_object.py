"""The JSON-objects task under its former module name; it lives in `stepcache_core.tasks.json`."""

from stepcache_core.tasks.json import (
    FILLER_WORDS,
    NON_EMPTY,
    JsonObjectTask,
    JsonSpec,
    MemberCheck,
    detect_json_spec,
)

__all__ = [
    "FILLER_WORDS",
    "NON_EMPTY",
    "JsonObjectTask",
    "JsonSpec",
    "MemberCheck",
    "detect_json_spec",
]

"""Task families: the protocol, the registry and the built-in tasks."""

from stepcache_core.tasks.base import (
    PASS,
    Assemble,
    Check,
    Delta,
    DeltaKind,
    Generate,
    PatchRequest,
    Task,
)
from stepcache_core.tasks.json import JsonObjectTask, JsonSpec
from stepcache_core.tasks.linear import LinearEquationTask, LinearSpec
from stepcache_core.tasks.registry import TaskRegistry
from stepcache_core.tasks.schema import JsonSchemaTask, SchemaSpec, schema_request
from stepcache_core.tasks.understanding import Mask

__all__ = [
    "PASS",
    "Assemble",
    "Check",
    "Delta",
    "DeltaKind",
    "Generate",
    "JsonObjectTask",
    "JsonSchemaTask",
    "JsonSpec",
    "LinearEquationTask",
    "LinearSpec",
    "Mask",
    "PatchRequest",
    "SchemaSpec",
    "Task",
    "TaskRegistry",
    "schema_request",
]

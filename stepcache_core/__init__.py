"""StepCache core: step-level reuse of LLM answers with task verifiers and selective patching."""

from stepcache_core.backends.base import Backend, FunctionBackend, TextListener
from stepcache_core.config import CacheConfig
from stepcache_core.embed import Embedder, MiniLMEmbedder
from stepcache_core.engine import StepCache, default_cache_dir
from stepcache_core.errors import (
    BackendError,
    ConfigError,
    InvalidPromptError,
    ModelAssetError,
    SchemaVersionError,
    StepCacheError,
    StoreError,
)
from stepcache_core.segment import segment_text, stitch_steps
from stepcache_core.store import ChromaStore, Entry, InMemoryStore, Neighbour, StepStore
from stepcache_core.tasks import (
    Check,
    Delta,
    DeltaKind,
    JsonObjectTask,
    JsonSchemaTask,
    JsonSpec,
    LinearEquationTask,
    LinearSpec,
    Mask,
    PatchRequest,
    SchemaSpec,
    Task,
    TaskRegistry,
    schema_request,
)
from stepcache_core.types import Completion, Path, Result, StepOrigin, StepOutcome

__all__ = [
    "Backend",
    "BackendError",
    "CacheConfig",
    "Check",
    "ChromaStore",
    "Completion",
    "ConfigError",
    "Delta",
    "DeltaKind",
    "Embedder",
    "Entry",
    "FunctionBackend",
    "InMemoryStore",
    "InvalidPromptError",
    "JsonObjectTask",
    "JsonSchemaTask",
    "JsonSpec",
    "LinearEquationTask",
    "LinearSpec",
    "Mask",
    "MiniLMEmbedder",
    "ModelAssetError",
    "Neighbour",
    "PatchRequest",
    "Path",
    "Result",
    "SchemaSpec",
    "SchemaVersionError",
    "StepCache",
    "StepCacheError",
    "StepOrigin",
    "StepOutcome",
    "StepStore",
    "StoreError",
    "Task",
    "TaskRegistry",
    "TextListener",
    "default_cache_dir",
    "schema_request",
    "segment_text",
    "stitch_steps",
]

"""Backends: what the engine calls to generate or patch an answer.

`LlamaCppBackend`, `serve_local_model` and `OpenAIBackend` import their third-party runtime
(`xllamacpp`, `openai`) only when first used.
"""

from stepcache_core.backends.base import Backend, FunctionBackend, TextListener
from stepcache_core.backends.llamacpp import LlamaCppBackend, LlamaCppOptions
from stepcache_core.backends.model_assets import (
    DEFAULT_MODEL,
    QWEN25_CODER_05B,
    QWEN25_CODER_15B,
    ModelSpec,
    assemble_model,
    default_cache_dir,
    resolve_model,
)
from stepcache_core.backends.openai_compat import OpenAIBackend, json_schema_format
from stepcache_core.backends.server import LocalModelServer, serve_forever, serve_local_model

__all__ = [
    "DEFAULT_MODEL",
    "QWEN25_CODER_05B",
    "QWEN25_CODER_15B",
    "Backend",
    "FunctionBackend",
    "LlamaCppBackend",
    "LlamaCppOptions",
    "LocalModelServer",
    "ModelSpec",
    "OpenAIBackend",
    "TextListener",
    "assemble_model",
    "default_cache_dir",
    "json_schema_format",
    "resolve_model",
    "serve_forever",
    "serve_local_model",
]

"""Exact-only calls in LlamaIndex: tools, a response format, or a structured prediction.

Their responses (tool-call blocks, the provider's objects in ``additional_kwargs`` and ``raw``)
are stored losslessly or not at all, and served only to the very same call; the engine never
reuses or repairs them step by step.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from pydantic import BaseModel

from stepcache_core import Result

#: Call arguments that make a call exact-only.
EXACT_ONLY = ("tools", "tool_choice", "functions", "response_format")
#: Packages whose Pydantic objects a stored response may hold (rebuilt by their class).
_TRUSTED = frozenset({"llama_index", "openai"})
_STRUCTURED: ContextVar[bool] = ContextVar("stepcache_llamaindex_structured", default=False)


@contextmanager
def structured() -> Iterator[None]:
    """Calls made inside are exact-only (a structured prediction parses the model's text)."""
    token = _STRUCTURED.set(True)
    try:
        yield
    finally:
        _STRUCTURED.reset(token)


def exact_only(kwargs: Mapping[str, Any]) -> bool:
    """True for a call with tools or a response format, or one inside `structured`."""
    return _STRUCTURED.get() or any(kwargs.get(name) is not None for name in EXACT_ONLY)


def encode(value: Any) -> str | None:
    """`value` (responses, lists of them) as JSON, or None when it would not decode equal."""
    try:
        text = json.dumps(_plain(value))
        return text if decode(text) == value else None
    except Exception:
        return None


def decode(text: str) -> Any:
    """The value `encode` stored."""
    return _rebuilt(json.loads(text))


def with_summary(response: Any, result: Result) -> Any:
    """`response` with how it was served in ``additional_kwargs["stepcache"]`` (the response's,
    not its message's) and in ``raw["stepcache"]`` when its raw is a dict or absent (a
    provider's raw object is left as it is: the response stays the model's own)."""
    meta = {"stepcache": result.summary()}
    update: dict[str, Any] = {"additional_kwargs": {**response.additional_kwargs, **meta}}
    if response.raw is None or isinstance(response.raw, Mapping):
        update["raw"] = {**(response.raw or {}), **meta}
    return response.model_copy(update=update)


def _plain(value: Any) -> Any:
    if isinstance(value, BaseModel):
        cls = type(value)
        if cls.__module__.split(".")[0] not in _TRUSTED:
            raise TypeError(f"{cls.__name__} is not stored")
        # Extra fields a provider adds (llama.cpp's "timings") are part of the answer too.
        names = [*cls.model_fields, *(value.model_extra or {})]
        fields = {name: _plain(getattr(value, name)) for name in names}
        return {"__model__": f"{cls.__module__}:{cls.__qualname__}", "fields": fields}
    if isinstance(value, dict):
        if "__model__" in value or not all(isinstance(k, str) for k in value):
            raise TypeError("dict not stored")
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    raise TypeError(f"{type(value).__name__} is not stored")


def _rebuilt(value: Any) -> Any:
    if isinstance(value, list):
        return [_rebuilt(v) for v in value]
    if not isinstance(value, dict):
        return value
    if "__model__" not in value:
        return {k: _rebuilt(v) for k, v in value.items()}
    module, _, name = value["__model__"].partition(":")
    if module.split(".")[0] not in _TRUSTED:
        raise TypeError(f"{module} is not trusted")
    cls: Any = importlib.import_module(module)
    for part in name.split("."):
        cls = getattr(cls, part)
    if not (isinstance(cls, type) and issubclass(cls, BaseModel)):
        raise TypeError(f"{name} is not a model")
    return cls.model_validate({k: _rebuilt(v) for k, v in value["fields"].items()})

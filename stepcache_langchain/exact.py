"""Exact-only requests in LangChain: tools, tool choice or a response format bound to the call.

Their answers (tool calls, ``parsed`` objects, metadata) are stored losslessly or not at all and
served only to the very same request; the engine never reuses or repairs them step by step.
"""

import re
from collections.abc import Mapping, Sequence
from typing import Any

from langchain_core.load import dumps
from langchain_core.messages import AIMessage
from langchain_core.outputs import ChatGeneration, Generation
from langchain_core.runnables import Runnable
from pydantic import BaseModel

from stepcache_langchain._prompt import load_list

#: Call arguments that make a request exact-only (they are part of its key already).
EXACT_ONLY = ("tools", "tool_choice", "functions", "function_call", "response_format")
_IN_LLM_STRING = re.compile(r"\('(?:" + "|".join(EXACT_ONLY) + r")', (?!None\))")


def exact_only_llm_string(llm_string: str) -> bool:
    """True when LangChain's `llm_string` shows tools or a response format bound to the call."""
    return _IN_LLM_STRING.search(llm_string.rsplit("---", 1)[-1]) is not None


def exact_only_kwargs(kwargs: Mapping[str, Any]) -> bool:
    """True when a chat model's call arguments bind tools or a response format."""
    return any(kwargs.get(name) is not None for name in EXACT_ONLY)


def more_than_text(generations: Sequence[Generation]) -> bool:
    """True when an answer carries tool calls or non-text content: never served step by step."""
    messages = [g.message for g in generations if isinstance(g, ChatGeneration)]
    return any(
        not isinstance(m.content, str) or (isinstance(m, AIMessage) and m.tool_calls)
        for m in messages
    )


def to_payload(generations: Sequence[Generation], schema: Any = None) -> str | None:
    """`generations` serialized, or None when they would not come back equal (then they are not
    stored). A ``parsed`` object of the Pydantic `schema` is stored as its fields."""
    try:
        stored = [_with_parsed(g, _fields) for g in generations]
        payload = dumps(stored)
        return payload if from_payload(payload, schema) == list(generations) else None
    except Exception:
        return None


def from_payload(payload: str, schema: Any = None) -> list[Generation]:
    """The generations `to_payload` stored, ``parsed`` rebuilt with `schema` where it applies."""
    generations = load_list(payload, "core", Generation)
    if isinstance(schema, type) and issubclass(schema, BaseModel):
        return [_with_parsed(g, schema.model_validate) for g in generations]
    return generations


def _fields(parsed: Any) -> Any:
    return parsed.model_dump() if isinstance(parsed, BaseModel) else parsed


def _with_parsed(generation: Generation, convert: Any) -> Generation:
    message = generation.message if isinstance(generation, ChatGeneration) else None
    parsed = None if message is None else message.additional_kwargs.get("parsed")
    if message is None or parsed is None or isinstance(parsed, str):
        return generation
    kwargs = {**message.additional_kwargs, "parsed": convert(parsed)}
    message = message.model_copy(update={"additional_kwargs": kwargs})
    return generation.model_copy(update={"message": message})


def rebound(runnable: Any, old: Any, new: Any) -> Any:
    """`runnable` with the model `old` replaced by `new` wherever it appears in it."""
    if runnable is old:
        return new
    if isinstance(runnable, list | tuple):
        return type(runnable)(rebound(r, old, new) for r in runnable)
    if isinstance(runnable, dict):
        return {k: rebound(v, old, new) for k, v in runnable.items()}
    if not isinstance(runnable, Runnable) or not isinstance(runnable, BaseModel):
        return runnable
    fields = {name: getattr(runnable, name) for name in type(runnable).model_fields}
    replaced = {name: rebound(value, old, new) for name, value in fields.items()}
    update = {name: value for name, value in replaced.items() if value is not fields[name]}
    return runnable.model_copy(update=update) if update else runnable

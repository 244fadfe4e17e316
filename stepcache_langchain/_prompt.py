"""What the cache sees of a LangChain request: the text to embed and an exact-match context key."""

from __future__ import annotations

import hashlib
import logging
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from langchain_core.load import dumps, loads
from langchain_core.messages import BaseMessage, HumanMessage

from stepcache_core import Result

log = logging.getLogger("stepcache.langchain")


@dataclass(frozen=True, slots=True)
class Query:
    """One request: `text` is embedded and verified, `context` must match exactly.

    For chat requests `messages` holds the conversation and `index` the position of `text`'s
    message in it, so a backend can put a patch prompt in that message's place.
    """

    text: str
    context: str = ""
    messages: tuple[BaseMessage, ...] = ()
    index: int = -1


def query_from_messages(messages: Sequence[BaseMessage]) -> Query | None:
    """The last human message's text; every other message (and its non-text parts) is context."""
    if not messages:
        return None
    index = next(
        (i for i in range(len(messages) - 1, -1, -1) if isinstance(messages[i], HumanMessage)),
        len(messages) - 1,
    )
    asked = messages[index]
    if not asked.text.strip():
        return None
    rest: Any = (
        "" if isinstance(asked.content, str) else [b for b in asked.content if not _is_text(b)]
    )
    shape = [m.model_copy(update={"id": None}) for m in messages]
    shape[index] = asked.model_copy(update={"id": None, "content": rest})
    digest = hashlib.sha256(dumps(shape).encode("utf-8")).hexdigest()
    return Query(asked.text, f"chat:{digest[:40]}", tuple(messages), index)


def query_from_prompt(prompt: str) -> Query | None:
    """Parse the `prompt` LangChain hands a cache: plain text (LLMs) or serialized messages (chat).

    Malformed serialized messages log a warning and give None (a miss).
    """
    if not prompt.startswith('[{"lc"'):
        return Query(prompt) if prompt.strip() else None
    try:
        messages = load_json(prompt, "messages")
        if not isinstance(messages, list) or not all(isinstance(m, BaseMessage) for m in messages):
            raise ValueError("not a list of messages")
        return query_from_messages(messages)
    except Exception as exc:
        log.warning("stepcache: unreadable chat prompt, treated as a miss: %s", exc)
        return None


def load_json(text: str, allowed: Literal["core", "messages"]) -> Any:
    """`langchain_core.load.loads` limited to core objects, without its beta warning."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return loads(text, allowed_objects=allowed)


def namespace_of(llm_string: str) -> str:
    """A compact namespace for a model identity (the llm_string may be kilobytes long)."""
    return "langchain:" + hashlib.sha256(llm_string.encode("utf-8")).hexdigest()[:40]


def info(result: Result) -> dict[str, Any]:
    """How StepCache answered, for `generation_info` / `response_metadata`."""
    fields = ("task", "similarity", "fallback_used", "reason")
    return {"path": result.path.value, **{f: getattr(result, f) for f in fields}}


def _is_text(block: object) -> bool:
    return isinstance(block, str) or (isinstance(block, dict) and block.get("type") == "text")

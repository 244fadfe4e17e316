"""What the cache sees of a LangChain request: the text to embed and an exact-match context key."""

import hashlib
import logging
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal, TypedDict, TypeVar

from langchain_core.load import dumps, loads
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage

T = TypeVar("T")


class Scope(TypedDict):
    """The engine's arguments that keep one model's, tenant's and conversation's answers apart."""

    namespace: str
    tenant: str
    context: str


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

    def scope(self, llm_string: str, tenant: str) -> Scope:
        """Where this request's answers live: the model (its `llm_string`), tenant and context."""
        return Scope(namespace=namespace_of(llm_string), tenant=tenant, context=self.context)


def query_from_messages(messages: Sequence[BaseMessage]) -> Query | None:
    """The last human message's text; every other message (and its non-text parts) is context."""
    humans = [i for i, m in enumerate(messages) if isinstance(m, HumanMessage)]
    index = humans[-1] if humans else len(messages) - 1
    if not messages or not messages[index].text.strip():
        return None
    asked = messages[index]
    rest = "" if isinstance(asked.content, str) else [b for b in asked.content if not _is_text(b)]
    shape = [_sent(m) for m in messages]
    shape[index] = _sent(asked).model_copy(update={"content": rest})
    digest = hashlib.sha256(dumps(shape).encode("utf-8")).hexdigest()
    return Query(asked.text, f"chat:{digest[:40]}", tuple(messages), index)


@contextmanager
def warned(failure: str) -> Iterator[None]:
    """Log an error raised in the block (or decorated function) as a warning, `failure` saying
    what it means, instead of raising it (a decorated function then returns None)."""
    try:
        yield
    except Exception as exc:
        logging.getLogger("stepcache.langchain").warning("stepcache: %s: %s", failure, exc)


@warned("unreadable chat prompt, treated as a miss")
def query_from_prompt(prompt: str) -> Query | None:
    """Parse the `prompt` LangChain hands a cache: plain text (LLMs) or serialized messages (chat).

    Malformed serialized messages log a warning and give None (a miss).
    """
    if not prompt.startswith('[{"lc"'):
        return Query(prompt) if prompt.strip() else None
    return query_from_messages(load_list(prompt, "messages", BaseMessage))


def load_list(text: str, allowed: Literal["core", "messages"], kind: type[T]) -> list[T]:
    """A list of `kind` objects parsed by `langchain_core.load.loads`, limited to core objects
    and without its beta warning; anything else raises ValueError."""
    with warnings.catch_warnings(action="ignore"):
        value = loads(text, allowed_objects=allowed)
    if isinstance(value, list) and all(isinstance(item, kind) for item in value):
        return value
    raise ValueError(f"not a list of {kind.__name__} objects")


def namespace_of(llm_string: str) -> str:
    """A compact namespace for a model identity (the llm_string may be kilobytes long)."""
    return "langchain:" + hashlib.sha256(llm_string.encode("utf-8")).hexdigest()[:40]


def _sent(message: BaseMessage) -> BaseMessage:
    """`message` as far as the model sees it: no id, usage or response metadata (a cache hit's
    zero cost must not make the next turn a different conversation)."""
    if isinstance(message, AIMessage):
        return message.model_copy(
            update={"id": None, "usage_metadata": None, "response_metadata": {}}
        )
    return message.model_copy(update={"id": None})


def _is_text(block: object) -> bool:
    return isinstance(block, str) or (isinstance(block, dict) and block.get("type") == "text")

"""The schema family's closed-world wording: the reviewed lexicon of phrasings two requests for an
object of one schema may differ in. The schema itself is masked (``<schema>``) and compared
through the spec; every other word (a subject, a value, a count, a constraint, a language)
stays in the residue."""

from __future__ import annotations

from stepcache_core.tasks.understanding import SHARED_LEXICON, Lexicon

__all__ = ["SCHEMA_LEXICON"]

SCHEMA_LEXICON = SHARED_LEXICON | Lexicon.of(
    "<schema>",
    # the object asked for
    "json",
    "a json object",
    "json object",
    "an object",
    "one object",
    "only one object",
    "a single object",
    "one json object",
    "only one json object",
    "a single json object",
    "an instance",
    "a valid instance",
    "json data",
    # asking for it
    "return",
    "give me",
    "output",
    "produce",
    "generate",
    "create",
    "reply with",
    "respond with",
    "answer with",
    # matching the schema
    "that matches",
    "which matches",
    "matching",
    "that conforms to",
    "conforming to",
    "following",
    "that follows",
    "valid against",
    "this schema",
    "the schema",
    "the following schema",
    "this json schema",
    "the json schema",
    "the following json schema",
    "json schema",
    "schema",
    # articles
    "a",
    "an",
    "the",
)

"""The JSON family's closed-world wording: the reviewed lexicon of phrasings two requests for the
same object may differ in. The key list and an embedded schema are masked (``<keys>``,
``<schema>``) and compared through the spec; the subject's words stay in the residue (another
subject means other values), and so does every value, count, constraint or format in prose."""

from __future__ import annotations

from stepcache_core.tasks.understanding import SHARED_LEXICON, Lexicon

__all__ = ["JSON_LEXICON", "LAYOUT_LEXICON"]

JSON_LEXICON = SHARED_LEXICON | Lexicon.of(
    "<keys>",
    "<schema>",
    # the object asked for
    "json",
    "a json object",
    "json object",
    "the json object",
    "an object",
    "as json",
    "in json",
    "as a json object",
    # asking for it
    "give me",
    "give",
    "output",
    "output only a json object",
    "return",
    "return a json object",
    "create",
    "write",
    "write json",
    "generate",
    "produce",
    "make",
    "i need some test data",
    "some test data",
    "test data",
    "describing",
    "representing",
    "for",
    "about",
    "of",
    # the key list's framing (the keys themselves are in the spec)
    "with the keys",
    "containing",
    "containing the keys",
    "containing the fields",
    "that contains",
    "with the following keys",
    "with the following fields",
    "the following keys",
    "the following fields",
    "with keys",
    "with the fields",
    "with fields",
    "with the properties",
    "the keys",
    "keys",
    "fields",
    "properties",
    "use these keys",
    "use the keys",
    "these keys",
    "that has exactly these fields",
    "that has these fields",
    "exactly these fields",
    "exactly these keys",
    "these fields",
    "it must have the properties",
    "it must have the keys",
    "must have the properties",
    "must have the keys",
    "has",
    "that has",
    "with",
    # extra keys forbidden (read into the spec as well)
    "no other keys",
    "no other fields",
    "and no other fields",
    "and no other keys",
    "no extra keys",
    "no extra fields",
    "nothing else",
    # filler adjectives for made-up data
    "fictional",
    "imaginary",
    "made-up",
    "pretend",
    "hypothetical",
    "sample",
    # articles and joins
    "a",
    "an",
    "the",
    "and",
)

#: The phrasings of the two layout rules the task reads (`JsonSpec.compact`: the object on one
#: line; `JsonSpec.bare`: no code fence). A request whose only words beyond the keys, the subject
#: and `JSON_LEXICON` are these states its layout for certain (`JsonSpec.layout_certain`). They
#: stay in the residue: requests that word their layout differently share no answers.
LAYOUT_LEXICON = Lexicon.of(
    # one line
    "put it on one line",
    "put it on a single line",
    "keep it on one line",
    "return it on one line",
    "on one line",
    "on a single line",
    "in one line",
    "in a single line",
    "minified",
    "minify it",
    "minified json",
    "compact json",
    "as compact json",
    # no fence
    "raw json",
    "as raw json",
    "no markdown",
    "without markdown",
    "no code fence",
    "no code fences",
    "without code fences",
    "without a code fence",
    "no fences",
    "no backticks",
    "without backticks",
    "no code block",
    "no code blocks",
    "without a code block",
    "do not use markdown",
    "don't use markdown",
    "do not use code fences",
    "don't use code fences",
)

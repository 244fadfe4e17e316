"""Adversarial request variants for the built-in tasks: base requests and a grammar of edit kinds.

A base request (a linear equation or a JSON object, in composed phrasings and the benchmark's own)
is cached with a perfect model behind it; then one edit kind turns it into a variant that is sent
next. Every edit kind states what the cache must do with its variants (`Expect`):

- ``MODEL_ANSWERS``: the meaning changed in words the task does not parse (another question about
  the same equation, a constraint, an output form, a value written in prose, another embedded text,
  an instruction added or dropped, notation a parser must refuse): nothing cached may be served,
  the path is a miss or a skip.
- ``REUSE``: only the task's instruction lexicon, casing of filler, whitespace between sentences or
  the order of independent sentences changed: the cached answer is served, no backend call.
- ``RIGHT``: the parsed spec itself changed in a way a parser may misread (a decimal constant, a key
  that looks like a stop word, a unicode or dotted key): any path is allowed, but the served answer
  must be right for the variant (a patch must be correct, a miss must keep the model's answer).

`python -m tests.adversarial` prints, per edit kind, the share of variants the cache handles as it
must (reuse rate on meaning-preserving kinds, skip rate on meaning-changing ones).
"""

from __future__ import annotations

import json
import random
import re
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from fractions import Fraction
from typing import Literal

from stepcache_bench.fake import HashEmbedder
from stepcache_bench.hard import append, number_words
from stepcache_bench.workload import (
    _FILLERS,
    _JSON_TEMPLATES,
    _MATH_TEMPLATES,
    _json_prompt,
    _subject_phrase,
)
from stepcache_core import Backend, Completion, InMemoryStore, Path, Result, StepCache
from stepcache_core.tasks.json.text import extract_object

Family = Literal["linear", "json"]


class Expect(StrEnum):
    """What the cache must do with a variant."""

    MODEL_ANSWERS = "model answers"  # miss or skip: nothing cached is served
    REUSE = "reuse"  # exact or reuse, no backend call
    RIGHT = "right"  # any path, but the served answer is right for the variant


# ----------------------------------------------------------------------------- linear bases

_CASINGS = ("sentence", "lower", "upper", "title")
_LIN_ASKS = (
    "solve {eq} for {v}",
    "find {v} in {eq}",
    "determine {v} if {eq}",
    "work out {v} from {eq}",
    "what value of {v} satisfies {eq}",  # a question: no polite wrapper, ends with "?"
)
_QUESTION_ASK = 4
_POLITE = ("{a}.", "please {a}.", "can you {a}?", "kindly {a}.", "could you please {a}?")
_LIN_STEPS = (
    "",
    "show your steps",
    "show the steps",
    "go step by step",
    "work step by step",
    "number the steps",
    "show your working",
)
_SEPARATORS = (" ", "  ", "\n", " \n", "\n\n")
_PLACEHOLDER = re.compile(r"(\{[a-z]+\})")


def _cased(template: str, casing: str) -> str:
    """Apply `casing` to the words of `template`, leaving its ``{placeholders}`` alone."""
    parts = _PLACEHOLDER.split(template)
    out = []
    for part in parts:
        if _PLACEHOLDER.fullmatch(part) or casing == "sentence":
            out.append(part)
        elif casing == "lower":
            out.append(part.lower())
        elif casing == "upper":
            out.append(part.upper())
        else:
            out.append(re.sub(r"\b([a-z])", lambda m: m.group(1).upper(), part))
    text = "".join(out)
    return text[0].upper() + text[1:] if casing == "sentence" and text else text


def _sentence(template: str, casing: str, **values: str) -> str:
    return _cased(template, casing).format(**values)


def _fmt(value: Fraction) -> str:
    return (
        str(value.numerator) if value.denominator == 1 else f"{value.numerator}/{value.denominator}"
    )


@dataclass(frozen=True, slots=True)
class LinearBase:
    """A linear-equation request: the equation, and how it is phrased (composed or benchmark)."""

    lhs: str
    rhs: str
    v: str
    bench_template: int | None = None  # an index into the benchmark's phrasings, else composed
    ask: int = 0
    polite: int = 0
    steps: int = 1
    casing: str = "sentence"
    sep: str = " "
    steps_first: bool = False

    family: Family = field(default="linear", init=False)

    @property
    def equation(self) -> str:
        return f"{self.lhs} = {self.rhs}"

    @property
    def solution(self) -> Fraction:
        a, b = self.collected
        return b / a

    @property
    def two_sentences(self) -> bool:
        """A composed phrasing with a steps sentence beside the question."""
        return self.bench_template is None and self.steps != 0

    @property
    def collected(self) -> tuple[Fraction, Fraction]:
        """(A, B) such that the equation is equivalent to A*v = B."""
        return linear_coefficients(self.lhs, self.rhs, self.v)

    @property
    def prompt(self) -> str:
        if self.bench_template is not None:
            return _MATH_TEMPLATES[self.bench_template].format(eq=self.equation, v=self.v)
        ask = _POLITE[self.polite].format(a=_LIN_ASKS[self.ask])
        if self.ask == _QUESTION_ASK:
            ask = _LIN_ASKS[self.ask] + "?"
        sentences = [_sentence(ask, self.casing, eq=self.equation, v=self.v)]
        if self.steps:
            steps = _sentence(_LIN_STEPS[self.steps] + ".", self.casing)
            sentences.insert(0 if self.steps_first else 1, steps)
        return self.sep.join(sentences)


def linear_coefficients(lhs: str, rhs: str, v: str) -> tuple[Fraction, Fraction]:
    """(A, B) such that `lhs` = `rhs` is equivalent to A*v = B (sympy, exact)."""
    import sympy
    from sympy.parsing.sympy_parser import (
        implicit_multiplication_application,
        parse_expr,
        rationalize,
        standard_transformations,
    )

    sym = sympy.Symbol(v)
    tr = (*standard_transformations, implicit_multiplication_application, rationalize)
    expr = sympy.expand(
        parse_expr(lhs, local_dict={v: sym}, transformations=tr)
        - parse_expr(rhs, local_dict={v: sym}, transformations=tr)
    )
    a, b = expr.coeff(sym, 1), -expr.coeff(sym, 0)
    return Fraction(int(a.p), int(a.q)), Fraction(int(b.p), int(b.q))


def derivation(lhs: str, rhs: str, v: str) -> str:
    """A perfect model's short derivation of `lhs` = `rhs`, ending in ``v = value``."""
    a, b = linear_coefficients(lhs, rhs, v)
    value = b / a
    lines = [
        f"Collect the {v} terms on the left and the numbers on the right: {_term(a, v)} = {_fmt(b)}"
    ]
    if a != 1:
        lines.append(f"Divide both sides by {_fmt(a)}: {v} = {_fmt(value)}")
    return "\n".join(lines) + f"\n\n{v} = {_fmt(value)}"


def _term(a: Fraction, v: str) -> str:
    if a == 1:
        return v
    if a == -1:
        return f"-{v}"
    return f"{_fmt(a)}{v}" if a.denominator == 1 else f"({_fmt(a)}){v}"


_EQUATIONS: tuple[tuple[str, str, str], ...] = (
    ("3x + 5", "20", "x"),
    ("7y - 4", "24", "y"),
    ("2(n + 3)", "16", "n"),
    ("5k + 2", "3k + 10", "k"),
    ("t/4 + 1", "3", "t"),
    ("3x + 5", "21", "x"),  # a fractional solution, 16/3
    ("4m - 9", "2m + 5", "m"),
)


def linear_bases() -> tuple[LinearBase, ...]:
    """Composed phrasings (the issue's "Solve 3x + 5 = 20 for x. Show your steps." first) and the
    benchmark's own phrasings, over equations of several shapes."""
    composed = [
        LinearBase("3x + 5", "20", "x"),
        LinearBase("7y - 4", "24", "y", ask=1, polite=1, steps=2),
        LinearBase("2(n + 3)", "16", "n", ask=2, polite=2, steps=3),
        LinearBase("5k + 2", "3k + 10", "k", ask=3, polite=3, steps=5),
        LinearBase("t/4 + 1", "3", "t", ask=2, polite=0, steps=4),
        LinearBase("3x + 5", "21", "x", ask=0, polite=4, steps=6),
        LinearBase("4m - 9", "2m + 5", "m", ask=1, polite=0, steps=0),
    ]
    bench = [
        LinearBase(lhs, rhs, v, bench_template=i % len(_MATH_TEMPLATES))
        for i, (lhs, rhs, v) in enumerate(_EQUATIONS)
    ]
    return (*composed, *bench)


# ----------------------------------------------------------------------------- JSON bases

_JSON_SUBJECTS: tuple[tuple[str, tuple[tuple[str, str], ...]], ...] = (
    ("person", (("name", "string"), ("age", "integer"), ("city", "string"))),
    ("book", (("title", "string"), ("author", "string"), ("year", "integer"), ("price", "number"))),
    ("product", (("name", "string"), ("price", "number"), ("in_stock", "boolean"))),
    (
        "employee",
        (("name", "string"), ("department", "string"), ("salary", "number"), ("remote", "boolean")),
    ),
    ("hotel", (("name", "string"), ("stars", "integer"), ("city", "string"))),
    ("movie", (("title", "string"), ("year", "integer"), ("rating", "number"))),
)
_KEY_TYPES: Mapping[str, str] = {k: t for _, keys in _JSON_SUBJECTS for k, t in keys}
_JSON_ASKS = ("give me", "return", "output", "produce", "write", "create")
_JSON_INTROS = (
    "with the fields",
    "with the keys",
    "that has the fields",
    "with the properties",
    "containing the keys",
)
_JSON_CLOSES = ("", "no other keys", "nothing else")
_KEY_STYLES = 6  # "a, b and c"; "a, b, c"; backticks; double quotes; typed "a (string)"; quotes


def key_list(keys: Sequence[tuple[str, str]], style: int) -> str:
    """Keys written one of the ways the JSON task reads."""
    if style == 1:
        return ", ".join(k for k, _ in keys)
    items = {
        0: [k for k, _ in keys],
        2: [f"`{k}`" for k, _ in keys],
        3: [f'"{k}"' for k, _ in keys],
        4: [f"{k} ({t})" for k, t in keys],
        5: [f"'{k}'" for k, _ in keys],
    }[style]
    return ", ".join(items[:-1]) + " and " + items[-1]


@dataclass(frozen=True, slots=True)
class JsonBase:
    """A JSON-object request: subject, keys with types, and how it is phrased."""

    noun: str
    keys: tuple[tuple[str, str], ...]
    filler: str = "fictional"
    bench_template: int | None = None  # an index into the benchmark's phrasings, else composed
    bench_style: int = 0
    ask: int = 0
    polite: int = 0
    intro: int = 0
    style: int = 0
    close: int = 0
    casing: str = "sentence"
    sep: str = " "
    close_first: bool = False

    family: Family = field(default="json", init=False)

    @property
    def two_sentences(self) -> bool:
        """A composed phrasing with a closing sentence beside the request."""
        return self.bench_template is None and self.close != 0

    @property
    def key_names(self) -> tuple[str, ...]:
        return tuple(k for k, _ in self.keys)

    @property
    def subject(self) -> str:
        return _subject_phrase(self.filler, self.noun)

    def key_of(self, types: Iterable[str]) -> str:
        """The first key of one of `types`."""
        wanted = set(types)
        return next(k for k, t in self.keys if t in wanted)

    @property
    def prompt(self) -> str:
        if self.bench_template is not None:
            return _json_prompt(self.bench_template, self.subject, self.keys, self.bench_style)
        ask = _POLITE[self.polite].format(
            a=f"{_JSON_ASKS[self.ask]} a {{json}} object for {{subj}} {_JSON_INTROS[self.intro]} "
            "{keys}"
        )
        sentences = [
            _sentence(
                ask,
                self.casing,
                json="JSON",
                subj=self.subject,
                keys=key_list(self.keys, self.style),
            )
        ]
        if self.close:
            close = _sentence(_JSON_CLOSES[self.close] + ".", self.casing)
            sentences.insert(0 if self.close_first else 1, close)
        return self.sep.join(sentences)


def json_bases() -> tuple[JsonBase, ...]:
    """Composed phrasings in every key style the JSON task reads, and the benchmark's own."""
    composed = [
        JsonBase(
            noun,
            keys,
            filler=_FILLERS[i % len(_FILLERS)],
            ask=i % len(_JSON_ASKS),
            polite=(0, 1, 2, 3, 0, 4)[i],
            intro=i % len(_JSON_INTROS),
            style=i % _KEY_STYLES,
            close=(1, 0, 2, 1, 0, 2)[i],
        )
        for i, (noun, keys) in enumerate(_JSON_SUBJECTS)
    ]
    bench = [
        JsonBase(
            noun,
            keys,
            filler=_FILLERS[(i + 2) % len(_FILLERS)],
            bench_template=i % len(_JSON_TEMPLATES),
            bench_style=i % 2,
        )
        for i, (noun, keys) in enumerate(_JSON_SUBJECTS)
    ]
    return (*composed, *bench)


_SAMPLE_VALUES: Mapping[str, object] = {
    "string": "Sample",
    "integer": 30,
    "number": 12.5,
    "boolean": True,
}


def json_answer(
    keys: Sequence[str],
    types: Mapping[str, str] | None = None,
    values: Mapping[str, object] | None = None,
) -> str:
    """A perfect model's fenced object with exactly `keys` (`values` where given, else samples
    typed by `types`)."""
    types, values = types or {}, values or {}
    obj = {k: values.get(k, _SAMPLE_VALUES.get(types.get(k, "string"), "Sample")) for k in keys}
    return "```json\n" + json.dumps(obj, indent=2, ensure_ascii=False) + "\n```"


Base = LinearBase | JsonBase


def perfect_answer(base: Base) -> str:
    """The right answer to a base request."""
    if isinstance(base, LinearBase):
        return derivation(base.lhs, base.rhs, base.v)
    return json_answer(base.key_names, dict(base.keys))


# ----------------------------------------------------------------------------- variants


@dataclass(frozen=True, slots=True)
class Variant:
    """A request to cache (`cached`), then one to send (`prompt`), and what must happen."""

    kind: str
    cached: str
    prompt: str
    expect: Expect
    cached_answer: str  # the perfect model's answer to `cached`
    answer: str  # the perfect model's answer to `prompt` (graded only for Expect.RIGHT)
    truth: Fraction | tuple[str, ...] | None = None  # RIGHT: the solution, or the exact keys
    cached_context: str = ""  # the chat context (system prompt, earlier turns) of `cached`
    context: str = ""  # the chat context of `prompt`
    check: Callable[[str], str | None] | None = None  # RIGHT: more to check (values, a schema)


EditFn = Callable[[Base, random.Random], Variant]


@dataclass(frozen=True, slots=True)
class EditKind:
    """One kind of edit: its name, the issue's class it belongs to, the bases it applies to."""

    name: str
    group: str
    expect: Expect
    family: Family | None  # None: both families
    make: EditFn
    applies: Callable[[Base], bool]

    def bases(self) -> tuple[Base, ...]:
        """Every base request this edit kind applies to."""
        return tuple(b for b in ALL_BASES if self.applies(b))


EDIT_KINDS: list[EditKind] = []


def _always(base: Base) -> bool:
    return True


def edit_kind(
    name: str,
    group: str,
    expect: Expect,
    family: Family | None,
    applies: Callable[[Base], bool] = _always,
) -> Callable[[EditFn], EditFn]:
    """Register an edit function as an edit kind of the grammar."""

    def register(fn: EditFn) -> EditFn:
        def applies_here(base: Base) -> bool:
            return (family is None or base.family == family) and applies(base)

        EDIT_KINDS.append(EditKind(name, group, expect, family, fn, applies_here))
        return fn

    return register


def _changed(
    kind: str, base: Base, prompt: str, cached: str | None = None, cached_answer: str | None = None
) -> Variant:
    """A meaning-changing variant: the model must answer `prompt` itself.

    `cached` (default the base request) is answered with `cached_answer` (default the base's).
    """
    answer = perfect_answer(base)
    return Variant(
        kind, cached or base.prompt, prompt, Expect.MODEL_ANSWERS, cached_answer or answer, answer
    )


def _kept(kind: str, base: Base, other: Base | str) -> Variant:
    """A meaning-preserving variant: the cached answer is the right answer."""
    prompt = other if isinstance(other, str) else other.prompt
    assert prompt != base.prompt, (kind, prompt)
    answer = perfect_answer(base)
    return Variant(kind, base.prompt, prompt, Expect.REUSE, answer, answer)


def _lin(base: Base) -> LinearBase:
    assert isinstance(base, LinearBase)
    return base


def _obj(base: Base) -> JsonBase:
    assert isinstance(base, JsonBase)
    return base


def _other(rng: random.Random, options: Sequence[int], current: int) -> int:
    return rng.choice([o for o in options if o != current])


# ------------------------------------------------- linear: another question, same equation

Q = "question"


@edit_kind("question: a multiple of the unknown", Q, Expect.MODEL_ANSWERS, "linear")
def _ask_multiple(base: Base, rng: random.Random) -> Variant:
    b, k = _lin(base), rng.randint(2, 9)
    forms = (f"Given {b.equation}, what is {k}{b.v}?", append(b.prompt, f"Then give {k}{b.v}."))
    return _changed("question: a multiple of the unknown", b, rng.choice(forms))


@edit_kind("question: then add to the result", Q, Expect.MODEL_ANSWERS, "linear")
def _ask_then_add(base: Base, rng: random.Random) -> Variant:
    n = rng.randint(2, 9)
    prompt = append(
        base.prompt,
        rng.choice((f"Then add {n} to the result.", f"Then subtract {n} from the answer.")),
    )
    return _changed("question: then add to the result", base, prompt)


@edit_kind("question: the square of the unknown", Q, Expect.MODEL_ANSWERS, "linear")
def _ask_square(base: Base, rng: random.Random) -> Variant:
    b = _lin(base)
    forms = (
        f"Given {b.equation}, what is {b.v} squared?",
        append(b.prompt, f"Then give the value of {b.v} squared."),
    )
    return _changed("question: the square of the unknown", b, rng.choice(forms))


@edit_kind("question: the unknown plus a number", Q, Expect.MODEL_ANSWERS, "linear")
def _ask_shift(base: Base, rng: random.Random) -> Variant:
    b, n = _lin(base), rng.randint(1, 9)
    forms = (
        f"Given {b.equation}, what is {b.v} + {n}?",
        f"If {b.equation}, what is the value of {b.v} - {n}?",
    )
    return _changed("question: the unknown plus a number", b, rng.choice(forms))


@edit_kind(
    "question: a word problem asking for another quantity", Q, Expect.MODEL_ANSWERS, "linear"
)
def _word_problem(base: Base, rng: random.Random) -> Variant:
    b, n = _lin(base), rng.randint(2, 12)
    forms = (
        f"Tom has {b.v} boxes of pencils, and {b.equation}. Each box holds {n} pencils. "
        "How many pencils does Tom have?",
        f"A ticket costs {b.v} dollars, where {b.equation}. How much do {n} tickets cost?",
        f"Ann is {b.v} years old and {b.equation}. How old will she be in {n} years?",
    )
    return _changed("question: a word problem asking for another quantity", b, rng.choice(forms))


# ------------------------------------------------- linear: domain and constraints

D = "domain or constraint"


@edit_kind("constraint: in integers", D, Expect.MODEL_ANSWERS, "linear")
def _in_integers(base: Base, rng: random.Random) -> Variant:
    b = _lin(base)
    forms = (
        append(b.prompt, "Work in the integers."),
        f"Solve {b.equation} for {b.v} in integers.",
    )
    return _changed("constraint: in integers", b, rng.choice(forms))


@edit_kind("constraint: modulo a number", D, Expect.MODEL_ANSWERS, "linear")
def _modulo(base: Base, rng: random.Random) -> Variant:
    b, m = _lin(base), rng.choice((5, 7, 11, 13))
    forms = (append(b.prompt, f"Work modulo {m}."), f"Solve {b.equation} modulo {m} for {b.v}.")
    return _changed("constraint: modulo a number", b, rng.choice(forms))


@edit_kind("constraint: the unknown must be positive", D, Expect.MODEL_ANSWERS, "linear")
def _positive(base: Base, rng: random.Random) -> Variant:
    b = _lin(base)
    sentence = rng.choice(
        (f"{b.v} must be positive.", f"Assume {b.v} is negative.", f"{b.v} must be a whole number.")
    )
    return _changed("constraint: the unknown must be positive", b, append(b.prompt, sentence))


@edit_kind("constraint: an inequality in words", D, Expect.MODEL_ANSWERS, "linear")
def _inequality_words(base: Base, rng: random.Random) -> Variant:
    b, n = _lin(base), rng.randint(1, 9)
    forms = (
        append(b.prompt, f"Only accept values of {b.v} greater than {n}."),
        append(b.prompt, f"Find {b.v} such that {b.v} is at most {n}."),
        f"Find every {b.v} for which {b.lhs} is greater than {b.rhs}.",
    )
    return _changed("constraint: an inequality in words", b, rng.choice(forms))


# ------------------------------------------------- output form (linear and JSON)

F = "output form"


def _form_kind(name: str, family: Family | None, sentences: Sequence[str]) -> None:
    def make(base: Base, rng: random.Random) -> Variant:
        v = base.v if isinstance(base, LinearBase) else "the answer"
        return _changed(name, base, append(base.prompt, rng.choice(sentences).format(v=v)))

    edit_kind(name, F, Expect.MODEL_ANSWERS, family)(make)


_form_kind(
    "form: significant figures",
    "linear",
    ("Give {v} to three significant figures.", "Round {v} to 2 decimal places."),
)
_form_kind("form: as a percentage", "linear", ("Express {v} as a percentage.",))
_form_kind(
    "form: in \\boxed{}",
    "linear",
    ("Put the final answer in \\boxed{{}}.", "Write the final answer as \\boxed{{{v}}}."),
)
_form_kind(
    "form: just the number",
    "linear",
    ("Reply with just the number.", "Answer with the number only."),
)
_form_kind(
    "form: do not show the work", "linear", ("Do not show your work.", "Skip the explanation.")
)
_form_kind(
    "form: end with 'Result: <value>'",
    "linear",
    ("End with 'Result: <value>'.", "Finish with the line 'Answer: <value>' instead."),
)
_form_kind(
    "form: as a decimal or mixed number",
    "linear",
    ("Give {v} as a decimal.", "Write {v} as a mixed number."),
)
_form_kind(
    "form: in a code fence",
    "linear",
    ("Put the whole answer in a code fence.", "Wrap your answer in triple backticks."),
)
_form_kind(
    "form: another language",
    None,
    ("Antworte auf Deutsch.", "Réponds en français.", "Responde en español."),
)
_form_kind(
    "form: for a young reader",
    None,
    ("Explain it as you would to a seven-year-old.", "Use simple words for a child."),
)
_form_kind(
    "form: sort the keys",
    "json",
    ("Sort the keys alphabetically.", "Put the keys in reverse alphabetical order."),
)
_form_kind("form: indentation width", "json", ("Indent with 4 spaces.", "Indent it with a tab."))
_form_kind(
    "form: another serialization",
    "json",
    ("Return it as YAML, not JSON.", "Give it as a Python dict literal."),
)


# ------------------------------------------------- JSON: content written in prose

P = "JSON content in prose"
_WORDS = ("archived", "active", "pending", "Oslo", "Lima", "green", "Rex", "deleted")


@edit_kind("prose: a string value swapped", P, Expect.MODEL_ANSWERS, "json")
def _prose_string_swap(base: Base, rng: random.Random) -> Variant:
    b = _obj(base)
    key = b.key_of(("string",))
    w1, w2 = rng.sample(_WORDS, 2)
    template = rng.choice(("Its {k} is {w}.", "Make it one whose {k} is {w}."))
    cached = append(b.prompt, template.format(k=key, w=w1))
    prompt = append(b.prompt, template.format(k=key, w=w2))
    cached_answer = json_answer(b.key_names, dict(b.keys), {key: w1})
    return _changed("prose: a string value swapped", b, prompt, cached, cached_answer)


@edit_kind("prose: a number value swapped", P, Expect.MODEL_ANSWERS, "json")
def _prose_number_swap(base: Base, rng: random.Random) -> Variant:
    b = _obj(base)
    key, n = b.key_of(("integer", "number")), rng.randint(10, 90)
    template = rng.choice(("Its {k} is {n}.", "Use {n} for the {k}."))
    cached = append(b.prompt, template.format(k=key, n=n))
    prompt = append(b.prompt, template.format(k=key, n=n + 1))
    cached_answer = json_answer(b.key_names, dict(b.keys), {key: n})
    return _changed("prose: a number value swapped", b, prompt, cached, cached_answer)


@edit_kind("prose: a value added", P, Expect.MODEL_ANSWERS, "json")
def _prose_value_added(base: Base, rng: random.Random) -> Variant:
    b = _obj(base)
    key = b.key_of(("string",))
    sentence = rng.choice((f"Its {key} is {rng.choice(_WORDS)}.", f"The {key} should be empty."))
    return _changed("prose: a value added", b, append(b.prompt, sentence))


@edit_kind("prose: a number given as a string", P, Expect.MODEL_ANSWERS, "json")
def _prose_as_string(base: Base, rng: random.Random) -> Variant:
    key = _obj(base).key_of(("integer", "number"))
    sentence = rng.choice((f"Give the {key} as a string.", f"Write the {key} in words."))
    return _changed("prose: a number given as a string", base, append(base.prompt, sentence))


@edit_kind("prose: a range for a value", P, Expect.MODEL_ANSWERS, "json")
def _prose_range(base: Base, rng: random.Random) -> Variant:
    key, lo = _obj(base).key_of(("integer", "number")), rng.randint(1, 50)
    sentence = f"The {key} must be between {lo} and {lo + 10}."
    return _changed("prose: a range for a value", base, append(base.prompt, sentence))


@edit_kind("prose: a count of objects", P, Expect.MODEL_ANSWERS, "json")
def _prose_count(base: Base, rng: random.Random) -> Variant:
    sentence = rng.choice(("Give two such objects.", "I need three of them."))
    return _changed("prose: a count of objects", base, append(base.prompt, sentence))


@edit_kind("prose: nested under a top-level key", P, Expect.MODEL_ANSWERS, "json")
def _prose_nested(base: Base, rng: random.Random) -> Variant:
    top = rng.choice(("payload", "data", "result"))
    sentence = f"Nest the object under a top-level key `{top}`."
    return _changed("prose: nested under a top-level key", base, append(base.prompt, sentence))


@edit_kind("prose: a fact about the subject swapped", P, Expect.MODEL_ANSWERS, "json")
def _prose_fact_swap(base: Base, rng: random.Random) -> Variant:
    a, b = rng.sample(("rabbit", "ferret", "parrot", "goldfish"), 2)
    cached = append(base.prompt, f"The pet is a {a}.")
    prompt = append(base.prompt, f"The pet is a {b}.")
    return _changed("prose: a fact about the subject swapped", base, prompt, cached)


@edit_kind("prose: another subject", P, Expect.MODEL_ANSWERS, "json")
def _other_subject(base: Base, rng: random.Random) -> Variant:
    b = _obj(base)
    noun = rng.choice([n for n in ("teacher", "bakery", "tablet", "comet") if n != b.noun])
    return _changed("prose: another subject", b, replace(b, noun=noun).prompt)


# ------------------------------------------------- values from a text inside the prompt

T = "values from an embedded text"
_DOCS = ("support ticket", "customer review", "invoice", "chat transcript", "email")
_DOC_WORDS = ("Oslo", "Lima", "Quito", "Rex", "Nora", "Ibsen", "blue", "archived")


def _document(keys: Sequence[tuple[str, str]], rng: random.Random) -> tuple[str, dict[str, object]]:
    """A short text stating a value for every key, and those values."""
    facts, values = [], dict[str, object]()
    for key, kind in keys:
        value: object = {
            "integer": rng.randint(1, 99),
            "number": rng.randint(10, 999) / 10,
            "boolean": rng.choice((True, False)),
        }.get(kind, rng.choice(_DOC_WORDS))
        values[key] = value
        said = ("yes" if value else "no") if isinstance(value, bool) else value
        facts.append(f"The {key.replace('_', ' ')} is {said}.")
    return " ".join(facts), values


@edit_kind("embedded text: the same extraction over another text", T, Expect.MODEL_ANSWERS, "json")
def _extract_other(base: Base, rng: random.Random) -> Variant:
    b = _obj(base)
    doc = rng.choice(_DOCS)
    instruction = (
        f"Extract a JSON object with the keys {key_list(b.keys, b.style)} from this {doc}:"
    )
    first, first_values = _document(b.keys, rng)
    second, second_values = first, first_values
    while second == first:
        second, second_values = _document(b.keys, rng)
    cached = f'{instruction}\n\n"{first}"'
    prompt = f'{instruction}\n\n"{second}"'
    return Variant(
        "embedded text: the same extraction over another text",
        cached,
        prompt,
        Expect.MODEL_ANSWERS,
        json_answer(b.key_names, values=first_values),
        json_answer(b.key_names, values=second_values),
    )


@edit_kind("embedded text: a text added to read values from", T, Expect.MODEL_ANSWERS, "json")
def _text_added(base: Base, rng: random.Random) -> Variant:
    b = _obj(base)
    prompt = append(
        b.prompt, f'Take the values from this {rng.choice(_DOCS)}: "{_document(b.keys, rng)[0]}"'
    )
    return _changed("embedded text: a text added to read values from", b, prompt)


# ------------------------------------------------- linear: a verdict, a hint, one step explained

V = "another task on the same equation"


@edit_kind("verdict on a proposed value", V, Expect.MODEL_ANSWERS, "linear")
def _verdict(base: Base, rng: random.Random) -> Variant:
    b = _lin(base)
    value = _fmt(b.solution + rng.choice((0, 1, -2, 3)))
    forms = (
        append(b.prompt, f"My answer is {value}, is that right?"),
        f"I solved {b.equation} and got {b.v} = {value}. Is that correct?",
        f"Check my work: {b.equation}, so {b.v} = {value}.",
    )
    return _changed("verdict on a proposed value", b, rng.choice(forms))


@edit_kind("a hint only", V, Expect.MODEL_ANSWERS, "linear")
def _hint(base: Base, rng: random.Random) -> Variant:
    b = _lin(base)
    forms = (
        append(b.prompt, "Only give me a hint, not the answer."),
        f"Give me a hint for {b.equation} without solving it for {b.v}.",
    )
    return _changed("a hint only", b, rng.choice(forms))


@edit_kind("explain one step", V, Expect.MODEL_ANSWERS, "linear")
def _explain_step(base: Base, rng: random.Random) -> Variant:
    b = _lin(base)
    a, _ = b.collected
    forms = (
        append(b.prompt, "Explain only the first step."),
        f"When solving {b.equation} for {b.v}, why do we divide both sides by {_fmt(a)}?",
    )
    return _changed("explain one step", b, rng.choice(forms))


# ------------------------------------------------- instructions carried over or dropped

C = "instruction carried over or dropped"
# (the instruction, what a perfect model adds to its answer for it)
_SIGNOFFS = (("End with 'Thanks!'.", "Thanks!"), ("Sign off with 'Best, Sam'.", "Best, Sam"))
_NOTES = (
    (
        "Add a one-line note on how to check the answer.",
        "Note: put the value back into the original and compare both sides.",
    ),
    ("Add a note saying the values are made up.", "Note: the values are made up."),
)
_FACTS = (
    (
        "Also mention where the word algebra comes from.",
        "The word algebra comes from the Arabic al-jabr.",
    ),
    ("Also state that the example is fictional.", "This example is fictional."),
)


def _text_allowed(base: Base) -> bool:
    """False for a request for the object only ("Output only a JSON object ..."): an answer with
    a sentence beside the object is not verified for it, so it caches nothing to test with."""
    return not (isinstance(base, JsonBase) and "only a json object" in base.prompt.lower())


def _carry_kinds(what: str, sentences: Sequence[tuple[str, str]]) -> None:
    def added(base: Base, rng: random.Random) -> Variant:
        instruction, _ = rng.choice(sentences)
        return _changed(f"{what} added", base, append(base.prompt, instruction))

    def dropped(base: Base, rng: random.Random) -> Variant:
        instruction, extra = rng.choice(sentences)
        cached = append(base.prompt, instruction)
        cached_answer = perfect_answer(base) + "\n\n" + extra
        return _changed(f"{what} dropped", base, base.prompt, cached, cached_answer)

    edit_kind(f"{what} added", C, Expect.MODEL_ANSWERS, None)(added)
    edit_kind(f"{what} dropped", C, Expect.MODEL_ANSWERS, None, _text_allowed)(dropped)


_carry_kinds("sign-off", _SIGNOFFS)
_carry_kinds("note", _NOTES)
_carry_kinds("fact", _FACTS)


@edit_kind("context: another system prompt or earlier turn", C, Expect.MODEL_ANSWERS, None)
def _other_context(base: Base, rng: random.Random) -> Variant:
    cached_context, context = rng.sample(
        (
            "system: You are a helpful assistant.",
            "system: You are a pirate. Answer in pirate speak.",
            "system: Answer in French.\nuser: Hi\nassistant: Bonjour !",
            "user: My name is Ann.\nassistant: Hello Ann.",
        ),
        2,
    )
    answer = perfect_answer(base)
    return Variant(
        "context: another system prompt or earlier turn",
        base.prompt,
        base.prompt,
        Expect.MODEL_ANSWERS,
        answer,
        answer,
        None,
        cached_context,
        context,
    )


# ------------------------------------------------- misreadings of the request itself

M = "misreading"


def _last_number(text: str) -> re.Match[str]:
    found = list(re.finditer(r"\d+", text))
    assert found, text
    return found[-1]


def _respelled(kind: str, base: LinearBase, prompt: str, meant: LinearBase) -> Variant:
    """A variant whose equation is `meant`, written in notation a parser may misread: any path,
    but the served answer must be `meant`'s solution (a refusal, then the model's answer, is
    right too)."""
    return Variant(
        kind,
        base.prompt,
        prompt,
        Expect.RIGHT,
        perfect_answer(base),
        perfect_answer(meant),
        meant.solution,
    )


@edit_kind("notation: thousands separators", M, Expect.RIGHT, "linear")
def _thousands(base: Base, rng: random.Random) -> Variant:
    b = _lin(base)
    m = _last_number(b.rhs)
    digits = f"{rng.randint(1, 999):03d}"
    written = b.rhs[: m.end()] + rng.choice((",", " ", "_")) + digits + b.rhs[m.end() :]
    meant = replace(b, rhs=b.rhs[: m.end()] + digits + b.rhs[m.end() :])
    return _respelled("notation: thousands separators", b, replace(b, rhs=written).prompt, meant)


@edit_kind("notation: superscripts that cancel", M, Expect.RIGHT, "linear")
def _superscript_cancel(base: Base, rng: random.Random) -> Variant:
    b = _lin(base)
    sq = rng.choice(("²", "³"))
    # the "x² + 3x = x² + 6": the squares cancel, the solution is the base's
    written = replace(b, lhs=f"{b.v}{sq} + {b.lhs}", rhs=f"{b.v}{sq} + {b.rhs}")
    return _respelled("notation: superscripts that cancel", b, written.prompt, b)


@edit_kind("notation: a superscript that makes it quadratic", M, Expect.MODEL_ANSWERS, "linear")
def _superscript_quadratic(base: Base, rng: random.Random) -> Variant:
    b = _lin(base)
    sq = rng.choice(("²", "³"))
    if rng.random() < 0.5:
        changed = replace(b, lhs=f"{b.v}{sq} + {b.lhs}")
    else:
        changed = replace(b, rhs=f"{b.rhs} - {b.v}{sq}")
    return _changed("notation: a superscript that makes it quadratic", b, changed.prompt)


@edit_kind(
    "notation: a unicode minus",
    M,
    Expect.RIGHT,
    "linear",
    applies=lambda b: isinstance(b, LinearBase) and " + " in b.lhs,
)
def _unicode_minus(base: Base, rng: random.Random) -> Variant:
    b = _lin(base)
    written = b.lhs.replace(" + ", rng.choice((" − ", " – ")), 1)
    meant = replace(b, lhs=b.lhs.replace(" + ", " - ", 1))
    return _respelled("notation: a unicode minus", b, replace(b, lhs=written).prompt, meant)


@edit_kind("notation: a number in words", M, Expect.RIGHT, "linear")
def _number_words(base: Base, rng: random.Random) -> Variant:
    b = _lin(base)
    m = _last_number(b.rhs)
    n = (int(m.group()) + rng.choice((0, 1, 2))) % 100
    written = replace(b, rhs=b.rhs[: m.start()] + number_words(n) + b.rhs[m.end() :])
    meant = replace(b, rhs=b.rhs[: m.start()] + str(n) + b.rhs[m.end() :])
    return _respelled("notation: a number in words", b, written.prompt, meant)


@edit_kind("notation: LaTeX", M, Expect.RIGHT, "linear")
def _latex(base: Base, rng: random.Random) -> Variant:
    b = _lin(base)
    lhs = re.sub(r"(\d+)([a-z])\b", r"\1 \\cdot \2", b.lhs, count=1)
    lhs = re.sub(r"\b([a-z])/(\d+)", r"\\frac{\1}{\2}", lhs)
    lhs = lhs if lhs != b.lhs else rf"\left({lhs}\right)"
    eq = rng.choice(("${}$", "\\({}\\)", "$${}$$")).format(f"{lhs} = {b.rhs}")
    prompt = rng.choice((f"Solve {eq} for {b.v}.", append(b.prompt, f"That is, {eq}.")))
    return _respelled("notation: LaTeX", b, prompt, b)


@edit_kind("notation: units", M, Expect.MODEL_ANSWERS, "linear")
def _units(base: Base, rng: random.Random) -> Variant:
    b = _lin(base)
    unit = rng.choice(("kg", "cm", "dollars", "%"))
    bare = r"(?<![\w/.])(\d+)(?![\w(./])"  # a constant term, not a coefficient or a divisor
    lhs, rhs = (re.sub(bare, rf"\1 {unit}", side) for side in (b.lhs, b.rhs))
    return _changed("notation: units", b, replace(b, lhs=lhs, rhs=rhs).prompt)


@edit_kind("notation: several equations", M, Expect.MODEL_ANSWERS, "linear")
def _several_equations(base: Base, rng: random.Random) -> Variant:
    b, n = _lin(base), rng.randint(2, 9)
    w = "w" if b.v != "w" else "z"
    sentence = rng.choice(
        (f"Also {b.v} + {w} = {n}; find {w} too.", f"Then solve {w} - {b.v} = {n}.")
    )
    return _changed("notation: several equations", b, append(b.prompt, sentence))


@edit_kind("notation: a decimal constant", M, Expect.RIGHT, "linear")
def _decimal_constant(base: Base, rng: random.Random) -> Variant:
    b = _lin(base)
    m = _last_number(b.rhs)
    meant = replace(b, rhs=b.rhs[: m.end()] + f".{rng.randint(1, 9)}" + b.rhs[m.end() :])
    return _respelled("notation: a decimal constant", b, meant.prompt, meant)


_STOP_KEYS = ("value", "from", "to", "properties", "type", "key")
_ODD_KEYS = ("größe", "user.id", "café_name", "名前", "first-name", "ünïcode")


def _key_swap(name: str, pool: Sequence[str]) -> EditFn:
    def make(base: Base, rng: random.Random) -> Variant:
        b = _obj(base)
        at = rng.randrange(1, len(b.keys))
        new_key = rng.choice([k for k in pool if k not in b.key_names])
        keys = tuple((new_key, t) if i == at else (k, t) for i, (k, t) in enumerate(b.keys))
        changed = replace(b, keys=keys)
        return Variant(
            name,
            b.prompt,
            changed.prompt,
            Expect.RIGHT,
            perfect_answer(b),
            perfect_answer(changed),
            changed.key_names,
        )

    return make


edit_kind("keys: a key that reads like a stop word", M, Expect.RIGHT, "json")(
    _key_swap("keys: a key that reads like a stop word", _STOP_KEYS)
)
edit_kind("keys: a non-ASCII or dotted key", M, Expect.RIGHT, "json")(
    _key_swap("keys: a non-ASCII or dotted key", _ODD_KEYS)
)


@edit_kind(
    "keys: whitespace inside a quoted key",
    M,
    Expect.RIGHT,
    "json",
    lambda b: b.bench_template is None,
)
def _quoted_key_whitespace(base: Base, rng: random.Random) -> Variant:
    b = _obj(base)
    words = rng.choice((("first", "name"), ("zip", "code"), ("last", "seen")))
    gap = rng.choice(("  ", "\u00a0", "   "))

    def with_key(key: str) -> JsonBase:
        keys = tuple((key, t) if i == 1 else (k, t) for i, (k, t) in enumerate(b.keys))
        return replace(b, keys=keys, style=3)

    cached, changed = with_key(" ".join(words)), with_key(gap.join(words))
    return Variant(
        "keys: whitespace inside a quoted key",
        cached.prompt,
        changed.prompt,
        Expect.RIGHT,
        perfect_answer(cached),
        perfect_answer(changed),
        changed.key_names,
    )


@edit_kind("keys: an example object in the prompt", M, Expect.MODEL_ANSWERS, "json")
def _example_object(base: Base, rng: random.Random) -> Variant:
    b = _obj(base)
    example = {k: _SAMPLE_VALUES[t] for k, t in b.keys}
    if rng.random() < 0.5:
        example["id"] = rng.randint(1, 99)
    text = json.dumps(example, ensure_ascii=False)
    sentence = rng.choice((f"Follow this example: {text}", f"For example: {text}"))
    return _changed("keys: an example object in the prompt", b, append(b.prompt, sentence))


@edit_kind("keys: 'at least' about a value", M, Expect.MODEL_ANSWERS, "json")
def _at_least_value(base: Base, rng: random.Random) -> Variant:
    key = _obj(base).key_of(("integer", "number"))
    sentence = rng.choice(
        (
            f"The {key} must be at least {rng.randint(2, 60)}.",
            f"Its {key} is at most {rng.randint(2, 60)}.",
        )
    )
    return _changed("keys: 'at least' about a value", base, append(base.prompt, sentence))


# ------------------------------------------------- meaning-preserving edits

L = "preserving"


def _composed(base: Base) -> bool:
    return base.bench_template is None


def _benchmark(base: Base) -> bool:
    return base.bench_template is not None


@edit_kind("lexicon: the instruction verb", L, Expect.REUSE, None, _composed)
def _lexicon_ask(base: Base, rng: random.Random) -> Variant:
    if isinstance(base, LinearBase):
        asks = range(len(_LIN_ASKS)) if base.polite == 0 else range(_QUESTION_ASK)
        return _kept(
            "lexicon: the instruction verb", base, replace(base, ask=_other(rng, asks, base.ask))
        )
    return _kept(
        "lexicon: the instruction verb",
        base,
        replace(base, ask=_other(rng, range(len(_JSON_ASKS)), base.ask)),
    )


@edit_kind(
    "lexicon: show the steps",
    L,
    Expect.REUSE,
    "linear",
    lambda b: isinstance(b, LinearBase) and b.two_sentences,
)
def _lexicon_steps(base: Base, rng: random.Random) -> Variant:
    b = _lin(base)
    steps = _other(rng, range(1, len(_LIN_STEPS)), b.steps)
    return _kept("lexicon: show the steps", b, replace(b, steps=steps))


@edit_kind("lexicon: the key list's introduction", L, Expect.REUSE, "json", _composed)
def _lexicon_intro(base: Base, rng: random.Random) -> Variant:
    b = _obj(base)
    intro = _other(rng, range(len(_JSON_INTROS)), b.intro)
    return _kept("lexicon: the key list's introduction", b, replace(b, intro=intro))


@edit_kind(
    "lexicon: polite filler",
    L,
    Expect.REUSE,
    None,
    lambda b: _composed(b) and not (isinstance(b, LinearBase) and b.ask == _QUESTION_ASK),
)
def _lexicon_polite(base: Base, rng: random.Random) -> Variant:
    polite = _other(rng, range(len(_POLITE)), base.polite)
    return _kept("lexicon: polite filler", base, replace(base, polite=polite))


@edit_kind("casing of the instruction words", L, Expect.REUSE, None, _composed)
def _casing(base: Base, rng: random.Random) -> Variant:
    casing = rng.choice([c for c in _CASINGS if c != base.casing])
    return _kept("casing of the instruction words", base, replace(base, casing=casing))


@edit_kind("whitespace between sentences", L, Expect.REUSE, None)
def _whitespace(base: Base, rng: random.Random) -> Variant:
    if base.two_sentences:
        sep = rng.choice([s for s in _SEPARATORS if s != base.sep])
        return _kept("whitespace between sentences", base, replace(base, sep=sep))
    text = base.prompt
    boundaries = list(re.finditer(r"(?<=[.?!]) (?=[A-Z])", text))
    if boundaries and rng.random() < 0.7:
        m = rng.choice(boundaries)
        text = text[: m.start()] + rng.choice(("  ", "\n", " \n")) + text[m.end() :]
    else:
        text = rng.choice(("  ", "\n")) + text + rng.choice(("\n", "  ", " \n"))
    return _kept("whitespace between sentences", base, text)


@edit_kind("final punctuation", L, Expect.REUSE, None, lambda b: b.prompt.endswith("."))
def _final_punctuation(base: Base, rng: random.Random) -> Variant:
    end = rng.choice(("", "!", " ."))
    return _kept("final punctuation", base, base.prompt[:-1] + end)


@edit_kind(
    "order of independent sentences",
    L,
    Expect.REUSE,
    None,
    lambda b: b.two_sentences,
)
def _reorder(base: Base, rng: random.Random) -> Variant:
    if isinstance(base, LinearBase):
        return _kept(
            "order of independent sentences", base, replace(base, steps_first=not base.steps_first)
        )
    return _kept(
        "order of independent sentences", base, replace(base, close_first=not base.close_first)
    )


@edit_kind("the benchmark's rewording phrasings", L, Expect.REUSE, None, _benchmark)
def _bench_rewording(base: Base, rng: random.Random) -> Variant:
    assert base.bench_template is not None
    if isinstance(base, LinearBase):
        template = _other(rng, range(len(_MATH_TEMPLATES)), base.bench_template)
        return _kept(
            "the benchmark's rewording phrasings", base, replace(base, bench_template=template)
        )
    # as the benchmark rewords: another phrasing, another filler adjective, the other key style
    template = _other(rng, range(len(_JSON_TEMPLATES)), base.bench_template)
    filler = rng.choice([f for f in _FILLERS if f != base.filler])
    changed = replace(
        base, bench_template=template, filler=filler, bench_style=1 - base.bench_style
    )
    return _kept("the benchmark's rewording phrasings", base, changed)


# ------------------------------------------------- round two: classes the first grammar missed


def _with_constant(b: LinearBase, rng: random.Random) -> LinearBase:
    """`b` with its right side's last number changed (another equation of the same shape)."""
    m = _last_number(b.rhs)
    n = int(m.group()) + rng.choice((1, 2, 3, 6))
    return replace(b, rhs=b.rhs[: m.start()] + str(n) + b.rhs[m.end() :])


@edit_kind("question: the same extra question, other numbers", Q, Expect.MODEL_ANSWERS, "linear")
def _same_question_other_numbers(base: Base, rng: random.Random) -> Variant:
    """Both requests ask one more thing the task does not read; the equation changes. The cached
    answer's words about that thing ("the result is 9") were right for the old numbers only."""
    b, n = _lin(base), rng.randint(2, 9)
    changed = _with_constant(b, rng)

    def asked(x: LinearBase) -> tuple[str, str]:
        value = x.solution
        if rng.random() < 0.5:
            sentence = f"Then add {n} to the result."
            extra = f"Add {n} to the result: {_fmt(value)} + {n} = {_fmt(value + n)}"
            return append(x.prompt, sentence), f"{derivation(x.lhs, x.rhs, x.v)}\n{extra}"
        sentence = f"What is {n}{x.v}?"
        extra = f"Then {n}{x.v} = {_fmt(n * value)}."
        return append(x.prompt, sentence), f"{derivation(x.lhs, x.rhs, x.v)}\n{extra}"

    state = rng.getstate()
    cached, cached_answer = asked(b)
    rng.setstate(state)
    prompt, answer = asked(changed)
    return Variant(
        "question: the same extra question, other numbers",
        cached,
        prompt,
        Expect.MODEL_ANSWERS,
        cached_answer,
        answer,
    )


@edit_kind("question: the same extra question, variable renamed", Q, Expect.RIGHT, "linear")
def _same_question_renamed(base: Base, rng: random.Random) -> Variant:
    """Both requests add 'then add n to the result'; only the letter changes, so the cached
    answer, renamed, is still right, and the extra result must still be the right one."""
    b, n = _lin(base), rng.randint(2, 9)
    letter = rng.choice([c for c in "pqrw" if c != b.v])
    renamed = replace(
        b,
        lhs=re.sub(rf"\b{b.v}\b|(?<=\d){b.v}", letter, b.lhs),
        rhs=re.sub(rf"\b{b.v}\b|(?<=\d){b.v}", letter, b.rhs),
        v=letter,
    )
    value = b.solution
    sentence = f"Then add {n} to the result."

    def answer(x: LinearBase) -> str:
        extra = f"Add {n} to the result: {_fmt(value)} + {n} = {_fmt(value + n)}"
        return f"{derivation(x.lhs, x.rhs, x.v)}\n{extra}"

    def added(text: str) -> str | None:
        ok = f"{_fmt(value)} + {n} = {_fmt(value + n)}" in text
        return None if ok else f"the result of adding {n} is not {_fmt(value + n)}"

    return Variant(
        "question: the same extra question, variable renamed",
        append(b.prompt, sentence),
        append(renamed.prompt, sentence),
        Expect.RIGHT,
        answer(b),
        answer(renamed),
        value,
        check=added,
    )


@edit_kind("question: the prose names another letter", Q, Expect.MODEL_ANSWERS, "linear")
def _prose_names_other_letter(base: Base, rng: random.Random) -> Variant:
    b = _lin(base)
    other = next(c for c in "zwq" if c != b.v)
    forms = (f"Solve {b.equation} for {other}.", f"Find {other} if {b.equation}.")
    return _changed("question: the prose names another letter", b, rng.choice(forms))


@edit_kind("question: a second unknown in the equation", Q, Expect.MODEL_ANSWERS, "linear")
def _second_unknown(base: Base, rng: random.Random) -> Variant:
    b = _lin(base)
    other = next(c for c in "wzq" if c != b.v)
    changed = replace(b, lhs=f"{b.lhs} + {rng.randint(2, 5)}{other}")
    return _changed("question: a second unknown in the equation", b, changed.prompt)


@edit_kind("question: the same equation twice, other numbers", Q, Expect.MODEL_ANSWERS, "linear")
def _twice_other_numbers(base: Base, rng: random.Random) -> Variant:
    b = _lin(base)
    other = _with_constant(b, rng)
    sentence = rng.choice((f"Then solve {other.equation} as well.", f"Also do {other.equation}."))
    return _changed(
        "question: the same equation twice, other numbers", b, append(b.prompt, sentence)
    )


_form_kind(
    "form: units or precision asked in words",
    "linear",
    (
        "Give {v} in meters.",
        "Answer to two decimal places.",
        "Give an approximate answer.",
        "Express the answer in centimetres.",
    ),
)


def _starts_with_digit(b: Base) -> bool:
    return isinstance(b, LinearBase) and b.lhs[:1].isdigit()


@edit_kind("notation: a leading decimal point", M, Expect.RIGHT, "linear", _starts_with_digit)
def _leading_point(base: Base, rng: random.Random) -> Variant:
    """``.5x + 5 = 20`` is 0.5x + 5 = 20, not 5x + 5 = 20."""
    b = _lin(base)
    meant = replace(b, lhs="0." + b.lhs)
    return _respelled(
        "notation: a leading decimal point", b, replace(b, lhs="." + b.lhs).prompt, meant
    )


@edit_kind("notation: grouping with a dot or an apostrophe", M, Expect.RIGHT, "linear")
def _dot_grouping(base: Base, rng: random.Random) -> Variant:
    """``20.500`` in European notation is twenty thousand five hundred; the cached request wrote
    20.5. Refusing (the model answers) is right; reading 20.5 is a guess."""
    b = _lin(base)
    m = _last_number(b.rhs)
    digits = rng.choice(("500", "250", "125"))
    sep = rng.choice((".", ".", "'"))
    cached = replace(b, rhs=b.rhs[: m.end()] + "." + digits[0] + b.rhs[m.end() :])
    written = replace(b, rhs=b.rhs[: m.end()] + sep + digits + b.rhs[m.end() :])
    meant = replace(b, rhs=b.rhs[: m.end()] + digits + b.rhs[m.end() :])
    return Variant(
        "notation: grouping with a dot or an apostrophe",
        cached.prompt,
        written.prompt,
        Expect.RIGHT,
        perfect_answer(cached),
        perfect_answer(meant),
        meant.solution,
    )


def _has_unit_coefficient_form(b: Base) -> bool:
    return isinstance(b, LinearBase) and re.match(r"\d+[a-z] ", b.lhs) is not None


@edit_kind(
    "notation: a fraction written before the unknown",
    M,
    Expect.MODEL_ANSWERS,
    "linear",
    _has_unit_coefficient_form,
)
def _fraction_before_unknown(base: Base, rng: random.Random) -> Variant:
    """``1/3x`` is (1/3)x to one reader and 1/(3x) to another: refuse it. The cached request
    wrote ``x/3``, the same equation under the first reading."""
    b = _lin(base)
    m = re.match(r"(\d+)([a-z]) (.*)", b.lhs)
    assert m is not None
    k, rest = m.group(1), m.group(3)
    cached = replace(b, lhs=f"{b.v}/{k} {rest}")
    written = replace(b, lhs=f"1/{k}{b.v} {rest}")
    answer = perfect_answer(cached)
    return Variant(
        "notation: a fraction written before the unknown",
        cached.prompt,
        written.prompt,
        Expect.MODEL_ANSWERS,
        answer,
        answer,
    )


@edit_kind("notation: the letter x as a times sign", M, Expect.RIGHT, "linear")
def _x_as_times(base: Base, rng: random.Random) -> Variant:
    """ "2 x 3 = x + 1": the first x is a times sign (x = 5), not the unknown (x = 1/5)."""
    b = _lin(base)
    a, c = rng.randint(2, 5), rng.randint(2, 9)
    k = rng.randint(1, 5)
    meant = LinearBase(str(a * c), f"x + {k}", "x")
    written = f"Solve {a} x {c} = x + {k} for x."
    return _respelled("notation: the letter x as a times sign", b, written, meant)


@edit_kind("notation: sides swapped, other numbers", M, Expect.RIGHT, "linear")
def _sides_swapped(base: Base, rng: random.Random) -> Variant:
    b = _lin(base)
    meant = _with_constant(b, rng) if rng.random() < 0.5 else b
    written = replace(meant, lhs=meant.rhs, rhs=meant.lhs)
    return _respelled("notation: sides swapped, other numbers", b, written.prompt, meant)


@edit_kind(
    "notation: a double sign",
    M,
    Expect.RIGHT,
    "linear",
    lambda b: isinstance(b, LinearBase) and re.search(r" [+-] \d", b.lhs) is not None,
)
def _double_sign(base: Base, rng: random.Random) -> Variant:
    """``5x - -2`` for 5x + 2, ``7y + -4`` for 7y - 4."""
    b = _lin(base)
    m = re.search(r" ([+-]) (\d+)", b.lhs)
    assert m is not None
    flipped = " - -" if m.group(1) == "+" else " + -"
    written = replace(b, lhs=b.lhs[: m.start()] + flipped + m.group(2) + b.lhs[m.end() :])
    meant = _with_constant(b, rng) if rng.random() < 0.5 else b
    written = replace(written, rhs=meant.rhs)
    return _respelled("notation: a double sign", b, written.prompt, meant)


@edit_kind("notation: the equation in code ticks, other numbers", M, Expect.RIGHT, "linear")
def _code_ticks(base: Base, rng: random.Random) -> Variant:
    b = _lin(base)
    meant = _with_constant(b, rng)
    wrap = rng.choice(("`{}`", "**{}**", "$${}$$"))
    prompt = f"Solve {wrap.format(meant.equation)} for {b.v}."
    return _respelled("notation: the equation in code ticks, other numbers", b, prompt, meant)


@edit_kind("notation: a trailing zero", M, Expect.RIGHT, "linear")
def _trailing_zero(base: Base, rng: random.Random) -> Variant:
    b = _lin(base)
    m = _last_number(b.rhs)
    meant = _with_constant(b, rng) if rng.random() < 0.5 else b
    m2 = _last_number(meant.rhs)
    written = replace(
        meant, rhs=meant.rhs[: m2.end()] + rng.choice((".0", ".00")) + meant.rhs[m2.end() :]
    )
    del m
    return _respelled("notation: a trailing zero", b, written.prompt, meant)


@edit_kind("notation: the whole equation in words", M, Expect.RIGHT, "linear")
def _equation_in_words(base: Base, rng: random.Random) -> Variant:
    """ "five times x minus two equals thirteen": refused, the model answers."""
    b = _lin(base)
    a, c, r = rng.randint(2, 9), rng.randint(1, 9), rng.randint(10, 40)
    meant = replace(b, lhs=f"{a}{b.v} - {c}", rhs=str(r))
    words = f"{number_words(a)} times {b.v} minus {number_words(c)} equals {number_words(r)}"
    return _respelled(
        "notation: the whole equation in words", b, f"Solve {words} for {b.v}.", meant
    )


# JSON: words about the keys, and residues shared across a key change

K = "keys in prose"


def _one_key(b: JsonBase, rng: random.Random) -> str:
    return rng.choice(b.key_names[1:])


@edit_kind("keys: a listed key excluded in prose", K, Expect.RIGHT, "json")
def _key_excluded(base: Base, rng: random.Random) -> Variant:
    """The list names a key that a later sentence takes out: the perfect model leaves it out,
    and an answer without it is right, never a proof of a missing key."""
    b = _obj(base)
    key = _one_key(b, rng)
    sentence = rng.choice(
        (f"Leave out the {key}.", f"Omit {key}.", f"Do not include {key} after all.")
    )
    kept = tuple(k for k in b.key_names if k != key)
    return Variant(
        "keys: a listed key excluded in prose",
        b.prompt,
        append(b.prompt, sentence),
        Expect.RIGHT,
        perfect_answer(b),
        json_answer(kept, dict(b.keys)),
        kept,
    )


@edit_kind(
    "keys: a modifier word inside the key list",
    K,
    Expect.RIGHT,
    "json",
    lambda b: b.bench_template is None,
)
def _modifier_in_list(base: Base, rng: random.Random) -> Variant:
    """ "name, age and optional city": the word before a key is no key of its own."""
    b = _obj(base)
    word = rng.choice(("optional", "required", "nullable", "unique"))
    at = len(b.keys) - 1
    keys = tuple((f"{word} {k}" if i == at else k, t) for i, (k, t) in enumerate(b.keys))
    written = replace(b, keys=keys, style=0)
    return Variant(
        "keys: a modifier word inside the key list",
        replace(b, style=0).prompt if b.style != 0 else b.prompt,
        written.prompt,
        Expect.RIGHT,
        perfect_answer(b),
        perfect_answer(b),
        b.key_names,
    )


@edit_kind("keys: the same keys in another case", K, Expect.RIGHT, "json")
def _keys_cased(base: Base, rng: random.Random) -> Variant:
    b = _obj(base)
    case = rng.choice(
        (
            str.upper,
            str.title,
            lambda k: re.sub(
                r"_(\w)", lambda m: m.group(1).upper(), k.title()[0].lower() + k.title()[1:]
            ),
        )
    )
    keys = tuple((case(k), t) for k, t in b.keys)
    changed = replace(b, keys=keys)
    if changed.prompt == b.prompt:
        changed = replace(b, keys=tuple((k.upper(), t) for k, t in b.keys))
    return Variant(
        "keys: the same keys in another case",
        b.prompt,
        changed.prompt,
        Expect.RIGHT,
        perfect_answer(b),
        perfect_answer(changed),
        changed.key_names,
    )


@edit_kind("keys: a key's type changed", K, Expect.RIGHT, "json", _composed)
def _key_type_changed(base: Base, rng: random.Random) -> Variant:
    """ "age (integer)" becomes "age (string)": the cached value has the old type."""
    b = replace(_obj(base), style=4)
    key = b.key_of(("integer", "number", "boolean"))
    keys = tuple((k, "string") if k == key else (k, t) for k, t in b.keys)
    changed = replace(b, keys=keys)

    def typed(text: str) -> str | None:
        found = extract_object(text)
        value = None if found is None else found.value.get(key)
        return None if isinstance(value, str) else f"{key}={value!r}, asked for a string"

    return Variant(
        "keys: a key's type changed",
        b.prompt,
        changed.prompt,
        Expect.RIGHT,
        perfect_answer(b),
        perfect_answer(changed),
        changed.key_names,
        check=typed,
    )


_form_kind(
    "form: key style, count or extra keys asked in words",
    "json",
    (
        "Use camelCase keys.",
        "Write every key in uppercase.",
        "Use exactly five keys.",
        "Add any other relevant keys.",
        "Use null for unknown values.",
        "No other text.",
        "Wrap it in ```json fences.",
        "Use the same keys as before, but in French.",
        "Put the keys in this order: the last one first.",
    ),
)


_SHARED_VALUE_RULES = (
    ("Every string value must be 'N/A'.", "N/A"),
    ("Set every string value to 'unknown'.", "unknown"),
)


@edit_kind("prose: a value rule shared, a key changed", P, Expect.RIGHT, "json")
def _value_rule_key_changed(base: Base, rng: random.Random) -> Variant:
    """Both requests state the same rule for the values; the keys differ. A patched key written
    without the rule breaks it."""
    b = _obj(base)
    rule, value = rng.choice(_SHARED_VALUE_RULES)
    at = rng.randrange(1, len(b.keys))
    new_key = rng.choice([k for k in ("country", "nickname", "color") if k not in b.key_names])
    keys = tuple((new_key, "string") if i == at else kt for i, kt in enumerate(b.keys))
    changed = replace(b, keys=keys)
    strings = {k: value for k, t in changed.keys if t == "string"}

    def check(text: str) -> str | None:
        found = extract_object(text)
        if found is None:
            return "no object"
        bad = {k: found.value.get(k) for k in strings if found.value.get(k) != value}
        return f"string values {bad} break the rule {rule!r}" if bad else None

    return Variant(
        "prose: a value rule shared, a key changed",
        append(b.prompt, rule),
        append(changed.prompt, rule),
        Expect.RIGHT,
        json_answer(b.key_names, dict(b.keys), {k: value for k, t in b.keys if t == "string"}),
        json_answer(changed.key_names, dict(changed.keys), strings),
        changed.key_names,
        check=check,
    )


@edit_kind("form: the whole request in another language", F, Expect.MODEL_ANSWERS, "linear")
def _request_translated(base: Base, rng: random.Random) -> Variant:
    b = _lin(base)
    forms = (
        f"Löse {b.equation} nach {b.v} auf.",
        f"Résous {b.equation} pour {b.v}.",
        f"Resuelve {b.equation} para {b.v}.",
        f"Risolvi {b.equation} per {b.v}.",
    )
    return _changed("form: the whole request in another language", b, rng.choice(forms))


@edit_kind("notation: the unknown asked as 'x = ?'", M, Expect.RIGHT, "linear")
def _unknown_asked(base: Base, rng: random.Random) -> Variant:
    b = _lin(base)
    meant = _with_constant(b, rng) if rng.random() < 0.5 else b
    prompt = rng.choice((f"{meant.equation}. {b.v} = ?", f"If {meant.equation}, then {b.v} = ?"))
    return _respelled("notation: the unknown asked as 'x = ?'", b, prompt, meant)


def _keys_variant(kind: str, b: JsonBase, prompt: str, keys: Sequence[str]) -> Variant:
    """A variant asking for the object with exactly `keys`, written as `prompt`."""
    return Variant(
        kind,
        b.prompt,
        prompt,
        Expect.RIGHT,
        perfect_answer(b),
        json_answer(keys, _KEY_TYPES),
        tuple(keys),
    )


@edit_kind("keys: a key listed twice", K, Expect.RIGHT, "json", _composed)
def _key_twice(base: Base, rng: random.Random) -> Variant:
    b = _obj(base)
    twice = replace(b, keys=(*b.keys, rng.choice(b.keys)))
    return _keys_variant("keys: a key listed twice", b, twice.prompt, b.key_names)


@edit_kind("keys: keys joined by 'or'", K, Expect.MODEL_ANSWERS, "json", _composed)
def _keys_or(base: Base, rng: random.Random) -> Variant:
    b = replace(_obj(base), style=0)
    return _changed("keys: keys joined by 'or'", b, b.prompt.replace(" and ", " or ", 1))


@edit_kind("keys: the same keys through a schema", K, Expect.RIGHT, "json")
def _keys_as_schema(base: Base, rng: random.Random) -> Variant:
    b = _obj(base)
    schema = json.dumps(_object_schema(b))
    prompt = rng.choice(
        (
            f"Give me a JSON object for {b.subject} that matches this JSON schema: {schema}",
            f"Return JSON for {b.subject} following this schema:\n```json\n{schema}\n```",
        )
    )
    return _keys_variant("keys: the same keys through a schema", b, prompt, b.key_names)


_TRANSLATED_KEYS = {"name": "nombre", "age": "edad", "city": "ciudad", "title": "titulo",
                    "year": "año", "price": "precio", "author": "autor"}  # fmt: skip


@edit_kind("keys: keys in another language", K, Expect.RIGHT, "json")
def _keys_translated(base: Base, rng: random.Random) -> Variant:
    b = _obj(base)
    keys = tuple((_TRANSLATED_KEYS.get(k, f"{k}_es"), t) for k, t in b.keys)
    changed = replace(b, keys=keys)
    return Variant(
        "keys: keys in another language",
        b.prompt,
        changed.prompt,
        Expect.RIGHT,
        perfect_answer(b),
        perfect_answer(changed),
        changed.key_names,
    )


@edit_kind("keys: the keys in a markdown table", K, Expect.RIGHT, "json")
def _keys_table(base: Base, rng: random.Random) -> Variant:
    b = _obj(base)
    rows = "\n".join(f"| {k} | {t} |" for k, t in b.keys)
    prompt = (
        f"Give me a JSON object for {b.subject} with these keys:\n| key | type |\n|---|---|\n{rows}"
    )
    return _keys_variant("keys: the keys in a markdown table", b, prompt, b.key_names)


@edit_kind(
    "prose: the text around the object names a dropped value",
    P,
    Expect.RIGHT,
    "json",
    _text_allowed,
)
def _prose_names_dropped(base: Base, rng: random.Random) -> Variant:
    """The cached answer says "Here is Ann from Zanzibar:" around its object; the new request
    swaps the key that held Zanzibar for another. Whatever is served may keep the prose only
    if it is still true: it must not name the dropped value."""
    b = _obj(base)
    at = rng.randrange(1, len(b.keys))
    key, kind = b.keys[at]
    value: object = "Zanzibar" if kind == "string" else 4242
    new_key = rng.choice([k for k in ("country", "nickname", "color") if k not in b.key_names])
    keys = tuple((new_key, "string") if i == at else kt for i, kt in enumerate(b.keys))
    changed = replace(b, keys=keys)
    obj = json_answer(b.key_names, dict(b.keys), {key: value})
    cached_answer = f"Here is {b.subject} whose {key} is {value}:\n{obj}\nIts {key}: {value}."

    def outside(text: str) -> str | None:
        found = extract_object(text)
        rest = text if found is None else text[: found.start] + text[found.end :]
        return f"the prose still says {value}" if str(value) in rest else None

    return Variant(
        "prose: the text around the object names a dropped value",
        b.prompt,
        changed.prompt,
        Expect.RIGHT,
        cached_answer,
        perfect_answer(changed),
        changed.key_names,
        check=outside,
    )


_ASK_OBJECT = re.compile(r"\b(?:give me|return|output|produce|write|create) a JSON object", re.I)


def _only_object_applies(base: Base) -> bool:
    if not isinstance(base, JsonBase) or "only" in base.prompt.lower():
        return False
    return base.bench_template is not None or _ASK_OBJECT.search(base.prompt) is not None


@edit_kind(
    "form: only the object, the cached answer has prose",
    F,
    Expect.RIGHT,
    "json",
    _only_object_applies,
)
def _only_object(base: Base, rng: random.Random) -> Variant:
    """The cached answer wraps its object in sentences; the new request, in the lexicon's words,
    asks for the object only ("Output only a JSON object ..."). What is served must be the
    object alone (a fence is fine)."""
    b = _obj(base)
    if b.bench_template is not None:
        prompt = replace(b, bench_template=1).prompt
    else:
        prompt = _ASK_OBJECT.sub(
            lambda m: ("O" if m.group()[0].isupper() else "o") + "utput only a JSON object",
            b.prompt,
            count=1,
        )
    intro, outro = rng.choice(
        (
            (f"Here is {b.subject}:", "Hope this helps."),
            ("Sure! Here it is:", "Let me know if you need more."),
        )
    )

    def object_only(text: str) -> str | None:
        found = extract_object(text)
        if found is None:
            return "no object"
        rest = re.sub(r"(?m)^[ \t]*(?:```|~~~)[^\n]*$", "", text[: found.start] + text[found.end :])
        return f"text around the object: {rest.strip()!r}" if rest.strip() else None

    return Variant(
        "form: only the object, the cached answer has prose",
        b.prompt,
        prompt,
        Expect.RIGHT,
        f"{intro}\n{perfect_answer(b)}\n{outro}",
        perfect_answer(b),
        b.key_names,
        check=object_only,
    )


# JSON Schema: the same object asked through a schema that changed

S = "JSON Schema"


def _object_schema(
    b: JsonBase, props: Mapping[str, Mapping[str, object]] | None = None
) -> dict[str, object]:
    """A flat object schema of `b`'s keys, each property `props[key]` where given."""
    props = props or {}
    return {
        "type": "object",
        "properties": {k: dict(props.get(k, {"type": t})) for k, t in b.keys},
        "required": list(b.key_names),
        "additionalProperties": False,
    }


def _schema_prompt(b: JsonBase, schema: Mapping[str, object]) -> str:
    from stepcache_core.tasks.schema.parse import schema_request

    return schema_request(f"Describe a {b.subject}.", schema)


def _validates(
    schema: Mapping[str, object],
    value_check: Callable[[dict[str, object]], str | None] | None = None,
) -> Callable[[str], str | None]:
    def check(text: str) -> str | None:
        from jsonschema import Draft202012Validator, FormatChecker

        found = extract_object(text)
        if found is None:
            return "no object"
        errors = list(
            Draft202012Validator(schema, format_checker=FormatChecker()).iter_errors(found.value)
        )
        if errors:
            return f"invalid for the new schema: {errors[0].message}"
        return value_check(found.value) if value_check else None

    return check


@edit_kind("schema: a property's description changed", S, Expect.RIGHT, "json", _composed)
def _schema_description(base: Base, rng: random.Random) -> Variant:
    """The description says what the value must be; validation cannot see it."""
    b = _obj(base)
    key = b.key_of(("string",))
    old, new = rng.sample(("ALPHA", "BRAVO", "CHARLIE", "DELTA"), 2)
    default = rng.random() < 0.5  # the value named by a default instead

    def prompt_for(word: str) -> tuple[str, str]:
        prop: dict[str, object] = {"type": "string"}
        if default:
            prop |= {"default": word, "description": "Always its default."}
        else:
            prop["description"] = f"Always exactly the string {word}."
        schema = _object_schema(b, {key: prop})
        return _schema_prompt(b, schema), json_answer(b.key_names, dict(b.keys), {key: word})

    cached, cached_answer = prompt_for(old)
    prompt, answer = prompt_for(new)

    def value(obj: dict[str, object]) -> str | None:
        return (
            None if obj.get(key) == new else f"{key}={obj.get(key)!r}, the description asks {new!r}"
        )

    return Variant(
        "schema: a property's description changed",
        cached,
        prompt,
        Expect.RIGHT,
        cached_answer,
        answer,
        check=_validates(_object_schema(b), value),
    )


@edit_kind("schema: a constraint added or toggled", S, Expect.RIGHT, "json", _composed)
def _schema_constraint(base: Base, rng: random.Random) -> Variant:
    """pattern, format, enum, minLength, required or additionalProperties changed: whatever is
    served must validate against the new schema."""
    b = _obj(base)
    key = b.key_of(("string",))
    choice = rng.randrange(5)
    schema = _object_schema(b)
    props = dict(schema["properties"])  # type: ignore[arg-type]
    value: object = "Sample"
    if choice == 0:
        props[key], value = {"type": "string", "pattern": "^[A-Z]{3}$"}, "ABC"
    elif choice == 1:
        props[key], value = {"type": "string", "format": "email"}, "ann@example.com"
    elif choice == 2:
        props[key], value = {"type": "string", "enum": ["red", "green"]}, "green"
    elif choice == 3:
        props[key], value = {"type": "string", "minLength": 12}, "Sample value here"
    new = {**schema, "properties": props}
    if choice == 4:
        new = {**schema, "required": list(b.key_names[:-1]), "additionalProperties": True}
    keys = b.key_names
    return Variant(
        "schema: a constraint added or toggled",
        _schema_prompt(b, schema),
        _schema_prompt(b, new),
        Expect.RIGHT,
        json_answer(keys, dict(b.keys)),
        json_answer(keys, dict(b.keys), {key: value}),
        check=_validates(new),
    )


@edit_kind("schema: an array's bounds changed", S, Expect.RIGHT, "json", _composed)
def _schema_array_bounds(base: Base, rng: random.Random) -> Variant:
    """A list property whose minItems / maxItems / uniqueItems change: the cached list may no
    longer fit."""
    b = _obj(base)
    schema = _object_schema(b)

    def with_tags(tags: dict[str, object]) -> dict[str, object]:
        props = {
            **schema["properties"],
            "tags": {"type": "array", "items": {"type": "string"}, **tags},
        }  # type: ignore[dict-item]
        return {**schema, "properties": props, "required": [*b.key_names, "tags"]}

    old = with_tags({"minItems": 1, "maxItems": 2})
    new, value = rng.choice(
        (
            (with_tags({"minItems": 3}), ["a", "b", "c"]),
            (with_tags({"maxItems": 1}), ["a"]),
            (with_tags({"minItems": 2, "uniqueItems": True}), ["a", "b"]),
        )
    )
    keys = (*b.key_names, "tags")
    return Variant(
        "schema: an array's bounds changed",
        _schema_prompt(b, old),
        _schema_prompt(b, new),
        Expect.RIGHT,
        json_answer(keys, dict(b.keys), {"tags": ["a", "a"]}),
        json_answer(keys, dict(b.keys), {"tags": value}),
        check=_validates(new),
    )


@edit_kind("schema: $defs renamed", S, Expect.RIGHT, "json", _composed)
def _schema_defs_renamed(base: Base, rng: random.Random) -> Variant:
    """The same schema with its ``$defs`` entry under another name: the same request."""
    b = _obj(base)
    key = b.key_of(("string",))

    def with_def(name: str) -> dict[str, object]:
        schema = _object_schema(b)
        props = {**schema["properties"], key: {"$ref": f"#/$defs/{name}"}}  # type: ignore[dict-item]
        return {**schema, "properties": props, "$defs": {name: {"type": "string"}}}

    old, new = rng.sample(("Text", "Label", "Name_t", "str1"), 2)
    answer = json_answer(b.key_names, dict(b.keys))
    return Variant(
        "schema: $defs renamed",
        _schema_prompt(b, with_def(old)),
        _schema_prompt(b, with_def(new)),
        Expect.RIGHT,
        answer,
        answer,
        check=_validates(with_def(new)),
    )


@edit_kind("schema: a keyword validation does not enforce", S, Expect.RIGHT, "json", _composed)
def _schema_unenforced(base: Base, rng: random.Random) -> Variant:
    """A property gains a keyword that says what the value must be but that validation ignores:
    a custom ``x-`` note, or ``contentEncoding`` (not asserted by draft 2020-12)."""
    import base64

    b = _obj(base)
    key = b.key_of(("string",))
    schema = _object_schema(b)
    if rng.random() < 0.5:
        word = rng.choice(("ALPHA", "BRAVO", "CHARLIE"))
        prop: dict[str, object] = {"type": "string", "x-note": f"Always exactly {word}."}
        value: str = word

        def fits(v: object) -> bool:
            return v == word
    else:
        prop, value = {"type": "string", "contentEncoding": "base64"}, "U2FtcGxlIHZhbHVl"

        def fits(v: object) -> bool:
            try:
                base64.b64decode(str(v), validate=True)
            except ValueError:
                return False
            return True

    props = {**schema["properties"], key: prop}  # type: ignore[dict-item]
    new = {**schema, "properties": props}

    def value_ok(obj: dict[str, object]) -> str | None:
        return None if fits(obj.get(key)) else f"{key}={obj.get(key)!r} ignores {prop}"

    return Variant(
        "schema: a keyword validation does not enforce",
        _schema_prompt(b, schema),
        _schema_prompt(b, new),
        Expect.RIGHT,
        json_answer(b.key_names, dict(b.keys)),
        json_answer(b.key_names, dict(b.keys), {key: value}),
        check=_validates(new, value_ok),
    )


# ------------------------------------------------- round three: quoted text is content

Q3 = "quoted text"
#: (cached, new): the same quoted words but for their case or punctuation, or a word that the
#: instruction lexicon holds ("please", "thanks") in place of another.
_QUOTED_PAIRS = (
    ("Thanks!", "THANKS!"),
    ("Thanks!", "Thanks?"),
    ("Thanks", "Please"),
    ("Best, Sam", "Best. Sam"),
    ("N/A", "n/a"),
    ("hello", "Hello"),
)
_QUOTED_TEMPLATES = (
    "Sign off with '{w}'.",
    'End your answer with the word "{w}".',
    "Add the line \u201c{w}\u201d at the end.",
)


@edit_kind(
    "quoted: a literal's case, punctuation or lexicon word",
    Q3,
    Expect.MODEL_ANSWERS,
    None,
    _text_allowed,
)
def _quoted_literal(base: Base, rng: random.Random) -> Variant:
    """The residue folds case, drops punctuation and strips lexicon words: inside quotes each
    of them is what the answer must contain."""
    old, new = rng.choice(_QUOTED_PAIRS)
    template = rng.choice(_QUOTED_TEMPLATES)
    return Variant(
        "quoted: a literal's case, punctuation or lexicon word",
        append(base.prompt, template.format(w=old)),
        append(base.prompt, template.format(w=new)),
        Expect.MODEL_ANSWERS,
        f"{perfect_answer(base)}\n\n{old}",
        f"{perfect_answer(base)}\n\n{new}",
    )


@edit_kind("quoted: quotes make a value a string", Q3, Expect.MODEL_ANSWERS, "json")
def _quoted_type(base: Base, rng: random.Random) -> Variant:
    """ "Its age is 30." asks for a number, 'Its age is "30".' for a string (and an example
    object's "30" for a string too): dropping the quotes serves the cached number."""
    b = _obj(base)
    key, n = b.key_of(("integer", "number")), rng.randint(10, 90)
    if rng.random() < 0.5:
        cached, prompt = f"Its {key} is {n}.", f'Its {key} is "{n}".'
    else:
        example = {k: _SAMPLE_VALUES[t] for k, t in b.keys}
        cached = "For example: " + json.dumps({**example, key: n})
        prompt = "For example: " + json.dumps({**example, key: str(n)})
    return Variant(
        "quoted: quotes make a value a string",
        append(b.prompt, cached),
        append(b.prompt, prompt),
        Expect.MODEL_ANSWERS,
        json_answer(b.key_names, dict(b.keys), {key: n}),
        json_answer(b.key_names, dict(b.keys), {key: str(n)}),
    )


#: (cached, new): one value written in another case, not in quotes.
_CASED_PAIRS = (("Oslo", "OSLO"), ("Rex", "rex"), ("McKay", "Mckay"), ("iPhone", "IPHONE"))


@edit_kind("prose: a value's case changed", P, Expect.MODEL_ANSWERS, None)
def _value_cased(base: Base, rng: random.Random) -> Variant:
    """ "Its city is Oslo." and "Its city is OSLO." ask for other strings (a sign-off the same):
    the residue folded case, so the cached value was served for the other."""
    old, new = rng.choice(_CASED_PAIRS)
    if rng.random() < 0.5:
        old, new = new, old
    if isinstance(base, JsonBase):
        key = base.key_of(("string",))
        sentence = rng.choice(("Its {k} is {w}.", "Make it one whose {k} is {w}."))
        cached, prompt = (sentence.format(k=key, w=w) for w in (old, new))
        cached_answer = json_answer(base.key_names, dict(base.keys), {key: old})
        answer = json_answer(base.key_names, dict(base.keys), {key: new})
    else:
        cached, prompt = (f"Sign off with {w}, your tutor." for w in (old, new))
        cached_answer = f"{perfect_answer(base)}\n\n{old}, your tutor"
        answer = f"{perfect_answer(base)}\n\n{new}, your tutor"
    return Variant(
        "prose: a value's case changed",
        append(base.prompt, cached),
        append(base.prompt, prompt),
        Expect.MODEL_ANSWERS,
        cached_answer,
        answer,
    )


@edit_kind("prose: a value negated by '!=' or put in brackets", P, Expect.MODEL_ANSWERS, "json")
def _sign_or_brackets(base: Base, rng: random.Random) -> Variant:
    """ "Its age = 30" and "Its age != 30", 'Set the city to "Oslo"' and 'Set the city to
    ["Oslo"]' ask for other values: the residue dropped the '!' and the brackets."""
    b = _obj(base)
    if rng.random() < 0.5:
        key, n = b.key_of(("integer", "number")), rng.randint(10, 90)
        cached, prompt = f"Its {key} = {n}.", f"Its {key} != {n}."
        old: object = n
        value: object = n + 1
    else:
        key, w = b.key_of(("string",)), rng.choice(_WORDS)
        cached, prompt = f'Set the {key} to "{w}".', f'Set the {key} to ["{w}"].'
        old, value = w, [w]
    return Variant(
        "prose: a value negated by '!=' or put in brackets",
        append(b.prompt, cached),
        append(b.prompt, prompt),
        Expect.MODEL_ANSWERS,
        json_answer(b.key_names, dict(b.keys), {key: old}),
        json_answer(b.key_names, dict(b.keys), {key: value}),
    )


@edit_kind("notation: a number right after a parenthesis", M, Expect.MODEL_ANSWERS, "linear")
def _number_after_parenthesis(base: Base, rng: random.Random) -> Variant:
    """ "(n + 3)2 = 16" is 2(n + 3) = 16 to one reader and (n + 3)² = 16, a superscript lost in
    a copy, to another: refuse it. The cached request wrote 2(n + 3), the first reading."""
    b = _lin(base)
    k = rng.choice((2, 3))
    gap = rng.choice(("", "", " "))
    cached = replace(b, lhs=f"{k}({b.lhs})")
    written = replace(b, lhs=f"({b.lhs}){gap}{k}")
    answer = perfect_answer(cached)
    return Variant(
        "notation: a number right after a parenthesis",
        cached.prompt,
        written.prompt,
        Expect.MODEL_ANSWERS,
        answer,
        answer,
    )


def _word_after_keys(b: JsonBase, word: str) -> str:
    """`b`'s request with `word` after its key list's last key ("name, age and city, please")."""
    listed = key_list(b.keys, b.style)
    assert listed in b.prompt, (b.prompt, listed)
    return b.prompt.replace(listed, f"{listed}, {word}", 1)


@edit_kind("keys: a polite word after the last key", K, Expect.REUSE, "json", _composed)
def _polite_after_keys(base: Base, rng: random.Random) -> Variant:
    """ "with the keys name, age and city, please.": the lexicon's word, not a fourth key."""
    b = _obj(base)
    word = rng.choice(("please", "thanks", "kindly", "thank you"))
    return _kept("keys: a polite word after the last key", b, _word_after_keys(b, word))


@edit_kind(
    "keys: a word after the list's 'and'",
    K,
    Expect.RIGHT,
    "json",
    lambda b: isinstance(b, JsonBase) and _composed(b) and b.style != 1,
)
def _word_after_and(base: Base, rng: random.Random) -> Variant:
    """ "name, age and city, quickly.": after "and city" the list has ended, so the word is
    prose; read as a key it was patched into the cached answer or "repaired" into the model's."""
    b = _obj(base)
    word = rng.choice(("quickly", "respectively", "ok", "too", "json"))
    return _keys_variant(
        "keys: a word after the list's 'and'", b, _word_after_keys(b, word), b.key_names
    )


@edit_kind("keys: an ellipsis after the key list", K, Expect.MODEL_ANSWERS, "json", _composed)
def _ellipsis_after_keys(base: Base, rng: random.Random) -> Variant:
    """ "with the keys name, age, city, ..." asks for more keys than those listed, as "and so
    on" does: the cached object with the listed keys only is not the answer."""
    b = replace(_obj(base), close=0)
    listed = key_list(b.keys, b.style)
    commas = ", ".join(listed.rsplit(" and ", 1))
    written = b.prompt.replace(listed, commas + rng.choice((", ...", ", \u2026", "...")), 1)
    return _changed("keys: an ellipsis after the key list", b, written)


@edit_kind("keys: bullets nested under a key", K, Expect.MODEL_ANSWERS, "json")
def _nested_bullets(base: Base, rng: random.Random) -> Variant:
    """ "- address" with "  - street" and "  - city" indented under it asks for an address
    object; read as flat keys, the cached flat object was served for it, and the model's nested
    answer was "repaired" flat."""
    b = _obj(base)
    top = rng.choice(("address", "location", "contact"))
    inner = rng.sample(("street", "zip", "country", "phone"), 2)
    indent = rng.choice(("  ", "    ", "\t"))
    colon = rng.choice(("", ":"))
    head = f"Create {b.subject} as JSON. Use these keys:\n" + "".join(
        f"- {k}\n" for k in b.key_names
    )
    flat = head + f"- {top}\n" + "".join(f"- {k}\n" for k in inner)
    nested = head + f"- {top}{colon}\n" + "".join(f"{indent}- {k}\n" for k in inner)
    sample = {k: _SAMPLE_VALUES[t] for k, t in b.keys}
    flat_answer = json_answer([*b.key_names, top, *inner], dict(b.keys))
    nested_value = {**sample, top: dict.fromkeys(inner, "Sample")}
    nested_answer = "```json\n" + json.dumps(nested_value, indent=2) + "\n```"
    return Variant(
        "keys: bullets nested under a key",
        flat.rstrip(),
        nested.rstrip(),
        Expect.MODEL_ANSWERS,
        flat_answer,
        nested_answer,
    )


@edit_kind(
    "form: 'end with x = <value>', cached ends otherwise",
    F,
    Expect.RIGHT,
    "linear",
    lambda b: isinstance(b, LinearBase) and _composed(b),
)
def _end_with_value_line(base: Base, rng: random.Random) -> Variant:
    """The cached answer ends with a check line or a sign-off; the new request adds, in the
    lexicon's words, "end with 'x = <value>'" (the benchmark's phrasings): what is served must
    end with that line."""
    b = _lin(base)
    value = _fmt(b.solution)
    tail = rng.choice(
        (
            f"Check: substituting {b.v} = {value} back gives {b.equation}, which holds.",
            "Hope this helps!",
        )
    )
    ask = rng.choice(
        (
            f"End with '{b.v} = <value>'.",
            f"Make the last line {b.v} = <value>.",
            f"Finish with {b.v} = <value>.",
        )
    )
    answer = derivation(b.lhs, b.rhs, b.v)

    def ends_with_value(text: str) -> str | None:
        last = text.strip().splitlines()[-1].strip()
        return None if last == f"{b.v} = {value}" else f"the last line is {last!r}"

    return Variant(
        "form: 'end with x = <value>', cached ends otherwise",
        b.prompt,
        append(b.prompt, ask),
        Expect.RIGHT,
        f"{answer}\n{tail}",
        answer,
        b.solution,
        check=ends_with_value,
    )


@edit_kind(
    "form: steps asked, the cached answer is bare",
    F,
    Expect.RIGHT,
    "linear",
    lambda b: isinstance(b, LinearBase) and _composed(b),
)
def _steps_asked(base: Base, rng: random.Random) -> Variant:
    """The cached request asked for the value only in the lexicon's words and its answer is the
    bare ``x = value``; the new one asks for the steps ("show your steps", "step by step"):
    what is served must show some working."""
    b = _lin(base)
    bare = replace(b, steps=0)
    steps = b.steps or rng.randrange(1, len(_LIN_STEPS))
    asked = replace(b, steps=steps)
    value = _fmt(b.solution)

    def working(text: str) -> str | None:
        lines = [ln for ln in text.splitlines() if "=" in ln]
        shown = any(re.match(rf"\s*{b.v}\s*=", ln) is None for ln in lines)
        return None if shown else "no working shown"

    return Variant(
        "form: steps asked, the cached answer is bare",
        bare.prompt,
        asked.prompt,
        Expect.RIGHT,
        f"{b.v} = {value}",
        perfect_answer(asked),
        b.solution,
        check=working,
    )


# ------------------------------------------------- never worse: the model's own answer as written

N = "the model's answer as written"
#: A value written as a repeating or rounded decimal or a unicode fraction, each of them right:
#: (the form, given the whole part, the repetend digit, the value to 2 places and the fraction).
_REPEATING_FORMS = (
    "{w}.{d}{d}{d}...",
    "{w}.{d}{d}{d}\u2026",
    "{w}.({d})",
    "{w}.{d} recurring",
    "{w}.{d}{d}{d}{d} (repeating)",
    "{w}.{d}\u0305",
    "{w}.\\overline{{{d}}}",
    "{w}.{r} (to 2 d.p.)",
    "{w}{frac}",
)


@edit_kind(
    "the model writes a repeating or rounded value", N, Expect.MODEL_ANSWERS, "linear", _composed
)
def _repeating_value(base: Base, rng: random.Random) -> Variant:
    """Another equation, with a solution in thirds, that the model answers right but writes as
    ``x = 5.333...``, ``5⅓`` or ``5.33 (to 2 d.p.)``: read as x = 5.333 or 5 it was proven wrong
    and replaced, though the model was right."""
    b = _lin(base)
    k, a = rng.randint(4, 9), rng.choice((1, 2))
    value = Fraction(3 * k + a, 3)
    eq = LinearBase(f"3{b.v}", str(3 * k + a), b.v)
    form = rng.choice(_REPEATING_FORMS)
    written = form.format(
        w=k, d=3 * a, r="33" if a == 1 else "67", frac="\u2153" if a == 1 else "\u2154"
    )
    answer = f"Divide both sides by 3: {b.v} = {_fmt(value)}\n\n{b.v} = {written}"
    return Variant(
        "the model writes a repeating or rounded value",
        b.prompt,
        eq.prompt,
        Expect.MODEL_ANSWERS,
        perfect_answer(b),
        answer,
    )


@edit_kind(
    "the model writes a grouped value or a decimal comma",
    N,
    Expect.MODEL_ANSWERS,
    "linear",
    _composed,
)
def _grouped_value(base: Base, rng: random.Random) -> Variant:
    """Another equation that the model answers right as ``x = 1,000``, ``1'000``, ``1_000``,
    ``1 000`` with a narrow space, or ``2,5``: read as x = 1 or x = 2 it was "repaired"."""
    b = _lin(base)
    if rng.random() < 0.75:
        value = rng.choice((1000, 2500, 12000, 4096))
        eq = LinearBase(f"{b.v}/2", str(value // 2), b.v)
        sep = rng.choice((",", "'", "_", "\u202f"))
        written = f"{value // 1000}{sep}{value % 1000:03d}"
        step = f"Multiply both sides by 2: {b.v} = {value}"
    else:
        k = rng.randint(2, 9)
        eq = LinearBase(f"2{b.v}", str(2 * k + 1), b.v)
        written = f"{k},5"
        step = f"Divide both sides by 2: {b.v} = {2 * k + 1}/2"
    return Variant(
        "the model writes a grouped value or a decimal comma",
        b.prompt,
        eq.prompt,
        Expect.MODEL_ANSWERS,
        perfect_answer(b),
        f"{step}\n\n{b.v} = {written}",
    )


ALL_BASES: tuple[Base, ...] = (*linear_bases(), *json_bases())
KINDS: Mapping[str, EditKind] = {k.name: k for k in EDIT_KINDS}


# ----------------------------------------------------------------------------- serving and judging


class PerfectBackend(Backend):
    """A model that answers every request right: the answers the variant states, and strict key
    patches with exactly the keys asked for. Records every prompt."""

    name = "perfect"

    def __init__(self, answers: Mapping[str, str], types: Mapping[str, str] | None = None) -> None:
        self.answers = dict(answers)
        self.types = dict(types or {})
        self.prompts: list[str] = []

    def complete(self, prompt: str, max_tokens: int | None = None) -> Completion:
        self.prompts.append(prompt)
        text = self.answers.get(prompt)
        if text is None:
            asked = re.search(r"exactly these keys: (.*)\.$", prompt, re.M)
            if asked is not None:  # the JSON task's strict key patch
                keys = [json.loads(k) for k in re.findall(r'"(?:[^"\\]|\\.)*"', asked.group(1))]
                typed = {  # the value types the patch prompt states
                    json.loads(k): json.loads(schema).get("type", "string")
                    for k, schema in re.findall(
                        r'("(?:[^"\\]|\\.)*") must match the JSON Schema (\{[^\n]*?\})\.', prompt
                    )
                }
                text = json_answer(keys, {**self.types, **typed})
            else:
                text = "I would need the full question to answer that."
        return Completion(text, len(prompt.split()), len(text.split()), "stop")


@dataclass(frozen=True, slots=True)
class Served:
    """A variant after the cache answered its cached request and then the variant."""

    variant: Variant
    first: Result
    result: Result
    backend_prompts: tuple[str, ...]  # what the backend was asked while serving the variant


def hash_cache() -> StepCache:
    """A throwaway cache: the built-in tasks, an in-memory store, the hashing embedder."""
    return StepCache(InMemoryStore(), embedder=HashEmbedder())


def serve(variant: Variant, cache: StepCache | None = None, namespace: str = "default") -> Served:
    """Cache `variant.cached` (perfect model), then send `variant.prompt` through the same cache."""
    cache = cache if cache is not None else hash_cache()
    answers = {variant.cached: variant.cached_answer, variant.prompt: variant.answer}
    backend = PerfectBackend(answers, _KEY_TYPES)
    first = cache.generate(
        variant.cached, backend, namespace=namespace, context=variant.cached_context
    )
    cache.flush()
    before = len(backend.prompts)
    result = cache.generate(variant.prompt, backend, namespace=namespace, context=variant.context)
    cache.flush()
    return Served(variant, first, result, tuple(backend.prompts[before:]))


_FROM_CACHE = (Path.EXACT, Path.REUSE, Path.PATCH)


def _final_value(text: str) -> str | None:
    found = re.findall(
        r"^\s*\\?\(?\s*[a-z]\s*=\s*(-?\d+(?:/\d+)?(?:\.\d+)?)\s*\\?\)?\s*$", text, re.M
    )
    return found[-1] if found else None


def _is_right(variant: Variant, text: str) -> str | None:
    """None when `text` answers the variant right, else what is wrong."""
    if variant.check is not None:
        wrong = variant.check(text)
        if wrong is not None:
            return wrong
    if variant.truth is None:
        return None
    if isinstance(variant.truth, Fraction):
        value = _final_value(text)
        if value is None or Fraction(value) != variant.truth:
            return f"final value {value!r}, the solution is {_fmt(variant.truth)}"
        return None
    assert isinstance(variant.truth, tuple)
    found = extract_object(text)
    keys = None if found is None else list(found.value)
    if keys is None or set(keys) != set(variant.truth):
        return f"keys {keys}, asked for {list(variant.truth)}"
    return None


def judge(served: Served) -> str | None:
    """None when the cache did what the variant's kind requires, else why it did not."""
    v, r = served.variant, served.result
    how = f"path={r.path.value} cached_prompt={r.cached_prompt!r} reason={r.reason!r}"
    if not served.first.verified:
        return f"the perfect answer to the cached request was not verified: {served.first.reason!r}"
    if v.expect is Expect.MODEL_ANSWERS:
        if r.path in _FROM_CACHE:
            return f"served from the cached entry for {v.cached!r}: {how}"
        if v.prompt not in served.backend_prompts:
            return f"the model was never asked the request itself: {how}"
        if r.text != v.answer:
            return f"the model's answer was not served as written: {how}"
        return None
    if v.expect is Expect.REUSE:
        if r.path not in (Path.EXACT, Path.REUSE) or served.backend_prompts:
            return f"not reused ({len(served.backend_prompts)} backend calls): {how}"
        return None
    wrong = _is_right(v, r.text)
    return None if wrong is None else f"served a wrong answer ({wrong}): {how}"


# ----------------------------------------------------------------------------- measurement


def variants_of(kind: EditKind, draws: int) -> list[Variant]:
    """`draws` seeded variants of every base `kind` applies to (deterministic)."""
    out = []
    for i, base in enumerate(kind.bases()):
        for d in range(draws):
            out.append(kind.make(base, random.Random(f"{kind.name}/{i}/{d}")))
    return out


@dataclass(frozen=True, slots=True)
class Rate:
    """How many variants of one edit kind the cache handled as it must."""

    kind: EditKind
    total: int
    ok: int
    paths: Mapping[str, int]
    example: str = ""  # one failure, for the reader

    @property
    def rate(self) -> float:
        return self.ok / self.total if self.total else 1.0


def measure(
    kinds: Iterable[EditKind] | None = None,
    draws: int = 2,
    cache_factory: Callable[[], StepCache] = hash_cache,
) -> list[Rate]:
    """Per edit kind, the share of its variants served as required: the reuse rate of
    meaning-preserving kinds, the skip rate of meaning-changing ones, the right rate of the rest."""
    rates = []
    for kind in kinds if kinds is not None else EDIT_KINDS:
        ok, paths, example = 0, dict[str, int](), ""
        for variant in variants_of(kind, draws):
            served = serve(variant, cache_factory())
            paths[served.result.path.value] = paths.get(served.result.path.value, 0) + 1
            failure = judge(served)
            if failure is None:
                ok += 1
            elif not example:
                example = f"{variant.prompt!r}: {failure}"
        total = sum(paths.values())
        rates.append(Rate(kind, total, ok, dict(sorted(paths.items())), example))
    return rates


def table(rates: Sequence[Rate]) -> str:
    """A plain-text table of `measure`'s rates, grouped by what the cache must do."""
    lines = [f"{'edit kind':58} {'must':13} {'ok':>9} {'rate':>6}  paths"]
    for expect in Expect:
        for r in rates:
            if r.kind.expect is expect:
                paths = " ".join(f"{p}={n}" for p, n in r.paths.items())
                lines.append(
                    f"{r.kind.name:58} {expect.value:13} {r.ok:>4}/{r.total:<4} "
                    f"{r.rate:>6.0%}  {paths}"
                )
        group = [r for r in rates if r.kind.expect is expect]
        if group:
            ok, total = sum(r.ok for r in group), sum(r.total for r in group)
            lines.append(
                f"{'  all ' + expect.value:58} {'':13} {ok:>4}/{total:<4} {ok / total:>6.0%}"
            )
    return "\n".join(lines)


def main(argv: Sequence[str] = ()) -> None:
    """Print the rates table; ``--draws N`` sets variants per base and kind (default 2)."""
    draws = int(argv[argv.index("--draws") + 1]) if "--draws" in argv else 2
    print(table(measure(draws=draws)))


if __name__ == "__main__":
    main(sys.argv[1:])

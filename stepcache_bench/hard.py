"""The `hard` workload: the paper workload's bases with variants from the correctness grammar.

Why one module (over ~500 lines): it is one grammar, a table per family and group of small edit
functions (a few lines each) and the per-base draw `_variants_of` that picks from those tables in a
fixed seeded order; a table reads best next to the functions it names, and splitting it would only
separate them.

The bases are exactly the `paper` workload's (same seed, same prompts). Each base gets ``4k``
variants (12 for the default k=3, as in `paper`), drawn per base without replacement from three
groups, in fixed proportions per base:

- ``preserving`` (k + 1 per base, a third): meaning-preserving edits inside the tasks' instruction
  lexicon: another of the benchmark's phrasings (JSON: also another filler adjective and key-list
  style), whitespace between sentences, the final punctuation. Graded by the checker like the base.
- ``changing`` (2k per base, half): meaning-changing edits in words no task parses: another question
  about the same equation, a constraint, an output form, another language, a value or a fact in
  prose, a count, a nesting, another subject, an example object, a range, a sign-off or note added,
  several equations, units. No checker can grade these (an answer in German, a hint), so they are
  core requests: graded only by "was a cached answer served" (served from cache = wrong).
- ``respelled`` (k - 1 per base, a sixth): the spec itself changed in notation a parser may misread
  (thousands separators, a number in words, a unicode minus, superscripts that cancel; a key that
  reads like a stop word, a non-ASCII or dotted key). Ground truth is the meant equation's
  solution (sympy) or the new key set, graded by the checker like the base.

The edit kinds and their wording follow the grammar of tests/adversarial.py (issue 12), applied to
the benchmark's own bases. `Request.kind` is ``hard-<group>``; `Request.detail` names the edit.
Everything is a pure function of the seed.
"""

from __future__ import annotations

import json
import random
import re
from collections import Counter
from collections.abc import Callable, Sequence

from stepcache_bench.workload import (
    _FILLERS,
    _JSON_TEMPLATES,
    _MATH_TEMPLATES,
    _SUBJECTS,
    Request,
    Workload,
    _json_prompt,
    _subject_phrase,
    generate_workload,
    sympy_solution,
)

GROUPS: tuple[str, ...] = ("hard-preserving", "hard-changing", "hard-respelled")


def group_counts(k: int) -> dict[str, int]:
    """Variants per base and group: a third preserving, half changing, a sixth respelled."""
    return {"hard-preserving": k + 1, "hard-changing": 2 * k, "hard-respelled": k - 1}


def append(prompt: str, sentence: str) -> str:
    """`prompt` with one more sentence (on its own line after a bullet list)."""
    last = prompt.rsplit("\n", 1)[-1]
    return prompt + ("\n" if last.startswith("- ") else " ") + sentence


def _pick(rng: random.Random, options: Sequence[str]) -> str:
    return options[rng.randrange(len(options))]


# ---------------------------------------------------------------------------- shared edits

Edit = Callable[[Request, random.Random], str]
_LANGUAGES = ("Antworte auf Deutsch.", "Réponds en français.", "Responde en español.")
_CHILD = ("Explain it as you would to a seven-year-old.", "Use simple words for a child.")
_SIGNOFFS = ("End with 'Thanks!'.", "Sign off with 'Best, Sam'.")
_NOTES = (
    "Add a one-line note on how to check the answer.",
    "Add a note saying the values are made up.",
)


def _whitespace(base: Request, rng: random.Random) -> str:
    text = base.prompt
    boundaries = list(re.finditer(r"(?<=[.?!]) (?=[A-Z])", text))
    if boundaries:
        m = boundaries[rng.randrange(len(boundaries))]
        return text[: m.start()] + _pick(rng, ("  ", "\n", " \n")) + text[m.end() :]
    return _pick(rng, ("  ", "\n")) + text + _pick(rng, ("\n", "  ", " \n"))


def _punctuation(base: Request, rng: random.Random) -> str:
    text = base.prompt
    if text.endswith("."):
        return text[:-1] + _pick(rng, ("", "!", " ."))
    return text + _pick(rng, (".", "!"))


def _sentence(options: Sequence[str]) -> Edit:
    def edit(base: Request, rng: random.Random) -> str:
        return append(base.prompt, _pick(rng, options))

    return edit


# ---------------------------------------------------------------------------- math


def _math_template(base: Request) -> int:
    assert base.equation is not None and base.variable is not None
    for j, t in enumerate(_MATH_TEMPLATES):
        if t.format(eq=base.equation, v=base.variable) == base.prompt:
            return j
    raise ValueError(f"not a benchmark phrasing: {base.prompt!r}")


def _math_rewording(base: Request, rng: random.Random) -> str:
    t = _math_template(base)
    j = _pick(rng, [str(i) for i in range(len(_MATH_TEMPLATES)) if i != t])
    return _MATH_TEMPLATES[int(j)].format(eq=base.equation, v=base.variable)


def _eq(base: Request) -> tuple[str, str]:
    assert base.equation is not None and base.variable is not None
    return base.equation, base.variable


def _ask_multiple(base: Request, rng: random.Random) -> str:
    eq, v = _eq(base)
    n = rng.randint(2, 9)
    return _pick(rng, (f"Given {eq}, what is {n}{v}?", append(base.prompt, f"Then give {n}{v}.")))


def _ask_then_add(base: Request, rng: random.Random) -> str:
    n = rng.randint(2, 9)
    return append(
        base.prompt, _pick(rng, (f"Then add {n} to the result.", f"Then subtract {n} from it."))
    )


def _ask_square(base: Request, rng: random.Random) -> str:
    eq, v = _eq(base)
    return _pick(
        rng, (f"Given {eq}, what is {v} squared?", append(base.prompt, f"Then give {v}²."))
    )


def _word_problem(base: Request, rng: random.Random) -> str:
    eq, v = _eq(base)
    n = rng.randint(2, 12)
    return _pick(
        rng,
        (
            f"A ticket costs {v} dollars, where {eq}. How much do {n} tickets cost?",
            f"Ann is {v} years old and {eq}. How old will she be in {n} years?",
        ),
    )


def _modulo(base: Request, rng: random.Random) -> str:
    eq, v = _eq(base)
    m = _pick(rng, ("5", "7", "11", "13"))
    return _pick(rng, (append(base.prompt, f"Work modulo {m}."), f"Solve {eq} modulo {m} for {v}."))


def _positive(base: Request, rng: random.Random) -> str:
    _, v = _eq(base)
    return append(
        base.prompt,
        _pick(rng, (f"{v} must be positive.", f"Assume {v} is negative.", "Work in the integers.")),
    )


def _inequality(base: Request, rng: random.Random) -> str:
    _, v = _eq(base)
    return append(base.prompt, f"Only accept values of {v} greater than {rng.randint(1, 9)}.")


def _verdict(base: Request, rng: random.Random) -> str:
    eq, v = _eq(base)
    assert base.solution is not None
    value = base.solution + rng.choice((0, 1, -2))
    return _pick(
        rng,
        (
            f"I solved {eq} and got {v} = {value}. Is that correct?",
            append(base.prompt, f"My answer is {value}, is that right?"),
        ),
    )


def _hint(base: Request, rng: random.Random) -> str:
    eq, v = _eq(base)
    return _pick(
        rng,
        (
            append(base.prompt, "Only give me a hint, not the answer."),
            f"Give me a hint for {eq} without solving it for {v}.",
        ),
    )


def _several_equations(base: Request, rng: random.Random) -> str:
    _, v = _eq(base)
    w = "w" if v != "w" else "z"
    return append(base.prompt, f"Also {v} + {w} = {rng.randint(2, 9)}; find {w} too.")


def _units(base: Request, rng: random.Random) -> str:
    eq, _ = _eq(base)
    unit = _pick(rng, ("kg", "cm", "dollars"))
    lhs, rhs = eq.split(" = ")
    return base.prompt.replace(eq, f"{lhs} = {rhs} {unit}", 1)


_MATH_CHANGING: dict[str, Edit] = {
    "question: a multiple of the unknown": _ask_multiple,
    "question: then add to the result": _ask_then_add,
    "question: the square of the unknown": _ask_square,
    "question: a word problem": _word_problem,
    "constraint: modulo a number": _modulo,
    "constraint: sign or integers": _positive,
    "constraint: an inequality in words": _inequality,
    "form: significant figures": _sentence(
        ("Give the answer to three significant figures.", "Round it to 2 decimal places.")
    ),
    "form: just the number": _sentence(
        ("Reply with just the number.", "No steps, only the value.")
    ),
    "form: in a code fence": _sentence(("Put the whole answer in a code fence.",)),
    "form: another language": _sentence(_LANGUAGES),
    "form: for a young reader": _sentence(_CHILD),
    "task: a verdict on a value": _verdict,
    "task: a hint only": _hint,
    "instruction: a sign-off added": _sentence(_SIGNOFFS),
    "instruction: a note added": _sentence(_NOTES),
    "notation: several equations": _several_equations,
    "notation: units": _units,
}

# fmt: off
_ONES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
         "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen",
         "eighteen", "nineteen")
_TENS = ("", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")
# fmt: on


def number_words(n: int) -> str:
    """0 <= n < 100 in English words ("forty-two")."""
    if n < 20:
        return _ONES[n]
    tens, ones = divmod(n, 10)
    return _TENS[tens] + (f"-{_ONES[ones]}" if ones else "")


Respelling = Callable[[Request, random.Random], tuple[str, str] | None]  # (written eq, meant eq)


def _last_number(eq: str) -> re.Match[str]:
    found = list(re.finditer(r"\d+", eq))
    assert found, eq
    return found[-1]


def _thousands(base: Request, rng: random.Random) -> tuple[str, str] | None:
    eq, _ = _eq(base)
    m = _last_number(eq)
    digits = f"{rng.randint(1, 999):03d}"
    sep = _pick(rng, (",", " ", "_"))
    return eq[: m.end()] + sep + digits + eq[m.end() :], eq[: m.end()] + digits + eq[m.end() :]


def _in_words(base: Request, rng: random.Random) -> tuple[str, str] | None:
    eq, _ = _eq(base)
    m = _last_number(eq)
    n = int(m.group()) + rng.choice((0, 1, 2))
    if n >= 100:
        return None
    return eq[: m.start()] + number_words(n) + eq[m.end() :], eq[: m.start()] + str(n) + eq[
        m.end() :
    ]


def _unicode_minus(base: Request, rng: random.Random) -> tuple[str, str] | None:
    eq, _ = _eq(base)
    if " + " not in eq:
        return None
    return eq.replace(" + ", _pick(rng, (" − ", " – ")), 1), eq.replace(" + ", " - ", 1)


def _squares_cancel(base: Request, rng: random.Random) -> tuple[str, str] | None:
    eq, v = _eq(base)
    sq = _pick(rng, ("²", "³"))
    lhs, rhs = eq.split(" = ")
    return f"{v}{sq} + {lhs} = {v}{sq} + {rhs}", eq


_MATH_RESPELLED: dict[str, Respelling] = {
    "notation: thousands separators": _thousands,
    "notation: a number in words": _in_words,
    "notation: a unicode minus": _unicode_minus,
    "notation: superscripts that cancel": _squares_cancel,
}


# ---------------------------------------------------------------------------- json


def _json_phrasing(base: Request) -> tuple[int, str, int]:
    """(template, filler, key style) of a benchmark JSON base, read back from its prompt."""
    for t in range(len(_JSON_TEMPLATES)):
        for filler in _FILLERS:
            for style in (0, 1):
                subj = _subject_phrase(filler, base.detail)
                if _json_prompt(t, subj, base.types, style) == base.prompt:
                    return t, filler, style
    raise ValueError(f"not a benchmark phrasing: {base.prompt!r}")


def _json_rewording(base: Request, rng: random.Random) -> str:
    t, filler, style = _json_phrasing(base)
    j = rng.choice([i for i in range(len(_JSON_TEMPLATES)) if i != t])
    f2 = rng.choice([f for f in _FILLERS if f != filler])
    return _json_prompt(j, _subject_phrase(f2, base.detail), base.types, 1 - style)


def _key_of(base: Request, types: Sequence[str]) -> str | None:
    return next((k for k, t in base.types if t in types), None)


_WORDS = ("archived", "active", "Oslo", "Lima", "green", "Rex")


def _prose_string(base: Request, rng: random.Random) -> str:
    key = _key_of(base, ("string",)) or base.keys[0]
    return append(base.prompt, f"Its {key} is {_pick(rng, _WORDS)}.")


def _prose_number(base: Request, rng: random.Random) -> str:
    key = _key_of(base, ("integer", "number"))
    if key is None:
        return append(base.prompt, f"Its {base.keys[0]} is {rng.randint(10, 90)}.")
    return append(base.prompt, _pick(rng, (f"Use {rng.randint(10, 90)} for the {key}.",)))


def _as_string(base: Request, rng: random.Random) -> str:
    key = _key_of(base, ("integer", "number", "boolean")) or base.keys[-1]
    return append(
        base.prompt, _pick(rng, (f"Give the {key} as a string.", f"Write the {key} in words."))
    )


def _range(base: Request, rng: random.Random) -> str:
    key = _key_of(base, ("integer", "number"))
    lo = rng.randint(1, 50)
    if key is None:
        return append(base.prompt, f"The {base.keys[0]} must be at most {lo} characters long.")
    return append(
        base.prompt,
        _pick(
            rng, (f"The {key} must be between {lo} and {lo + 10}.", f"Its {key} is at least {lo}.")
        ),
    )


def _other_subject(base: Request, rng: random.Random) -> str:
    subject = next(s for s in _SUBJECTS if s.noun == base.detail)
    t, filler, style = _json_phrasing(base)
    other = _pick(rng, subject.others)
    return _json_prompt(t, _subject_phrase(filler, other), base.types, style)


_SAMPLE = {"string": "Sample", "integer": 30, "number": 12.5, "boolean": True}


def _example_object(base: Request, rng: random.Random) -> str:
    example: dict[str, object] = {k: _SAMPLE.get(t, "x") for k, t in base.types}
    if rng.random() < 0.5:
        example["id"] = rng.randint(1, 99)
    return append(base.prompt, f"Follow this example: {json.dumps(example)}")


def _text_added(base: Request, rng: random.Random) -> str:
    facts = []
    for key, kind in base.types:
        value: object = {"integer": rng.randint(1, 99), "number": rng.randint(10, 999) / 10}.get(
            kind, _pick(rng, _WORDS)
        )
        facts.append(f"The {key.replace('_', ' ')} is {value}.")
    doc = _pick(rng, ("support ticket", "customer review", "email"))
    return append(base.prompt, f'Take the values from this {doc}: "{" ".join(facts)}"')


_JSON_CHANGING: dict[str, Edit] = {
    "form: sort the keys": _sentence(
        ("Sort the keys alphabetically.", "Put the keys in reverse alphabetical order.")
    ),
    "form: indentation width": _sentence(("Indent with 4 spaces.", "Indent it with a tab.")),
    "form: another serialization": _sentence(
        ("Return it as YAML, not JSON.", "Give it as a Python dict literal.")
    ),
    "form: another language": _sentence(_LANGUAGES),
    "prose: a string value": _prose_string,
    "prose: a number value": _prose_number,
    "prose: a value as a string": _as_string,
    "prose: a range for a value": _range,
    "prose: a count of objects": _sentence(("Give two such objects.", "I need three of them.")),
    "prose: nested under a top-level key": _sentence(
        ("Nest the object under a top-level key `data`.", "Wrap it in a top-level key `result`.")
    ),
    "prose: another subject": _other_subject,
    "keys: an example object": _example_object,
    "text: values from an embedded text": _text_added,
    "instruction: a sign-off added": _sentence(_SIGNOFFS),
    "instruction: a note added": _sentence(_NOTES),
}

_STOP_KEYS = ("value", "from", "to", "properties", "type", "key")
_ODD_KEYS = ("größe", "user.id", "café_name", "first-name", "ünïcode")


def _key_swap(
    pool: Sequence[str],
) -> Callable[[Request, random.Random], tuple[str, tuple[tuple[str, str], ...]]]:
    def make(base: Request, rng: random.Random) -> tuple[str, tuple[tuple[str, str], ...]]:
        t, filler, style = _json_phrasing(base)
        at = rng.randrange(1, len(base.types))
        new_key = _pick(rng, [k for k in pool if k not in base.keys])
        types = tuple(
            (new_key, tt) if i == at else (kk, tt) for i, (kk, tt) in enumerate(base.types)
        )
        return _json_prompt(t, _subject_phrase(filler, base.detail), types, style), types

    return make


_JSON_RESPELLED = {
    "keys: a key that reads like a stop word": _key_swap(_STOP_KEYS),
    "keys: a non-ASCII or dotted key": _key_swap(_ODD_KEYS),
}


# ---------------------------------------------------------------------------- the workload


def _variant(
    base: Request, group: str, n: int, prompt: str, detail: str, **truth: object
) -> Request:
    core = group == "hard-changing"
    fields: dict[str, object] = {
        "variable": base.variable,
        "equation": base.equation,
        "solution": base.solution,
        "keys": base.keys,
        "types": base.types,
    }
    fields.update(truth)
    return Request(
        id=f"{base.id}/{group}/{n}",
        seed=base.seed,
        family=base.family,
        base_id=base.id,
        kind=group,
        prompt=prompt,
        core=core,
        detail=detail,
        workload="hard",
        **fields,  # type: ignore[arg-type]
    )


def _variants_of(base: Request, rng: random.Random, k: int, seen: set[str]) -> list[Request]:
    counts = group_counts(k)
    out: list[Request] = []

    def fresh(prompt: str) -> bool:
        if prompt in seen or prompt == base.prompt:
            return False
        seen.add(prompt)
        return True

    # preserving: cycle the edits so a base gets each kind before any twice
    preserving: list[tuple[str, Edit]] = [
        (
            "lexicon: another benchmark phrasing",
            _math_rewording if base.family == "math" else _json_rewording,
        ),
        ("whitespace between sentences", _whitespace),
        ("final punctuation", _punctuation),
    ]
    n = tries = 0
    while n < counts["hard-preserving"]:
        name, edit = preserving[(n + tries) % len(preserving)]
        prompt = edit(base, rng)
        tries += 1
        if tries > 50:
            raise AssertionError(f"no fresh preserving variant of {base.id}")
        if fresh(prompt):
            out.append(_variant(base, "hard-preserving", n, prompt, name))
            n += 1

    changing = _MATH_CHANGING if base.family == "math" else _JSON_CHANGING
    names = rng.sample(sorted(changing), len(changing))
    n = 0
    for name in names:
        if n == counts["hard-changing"]:
            break
        prompt = changing[name](base, rng)
        if fresh(prompt):
            out.append(_variant(base, "hard-changing", n, prompt, name))
            n += 1

    n = 0
    if base.family == "math":
        for name in rng.sample(sorted(_MATH_RESPELLED), len(_MATH_RESPELLED)) * 2:
            if n == counts["hard-respelled"]:
                break
            got = _MATH_RESPELLED[name](base, rng)
            if got is None:
                continue
            written, meant = got
            eq, v = _eq(base)
            prompt = base.prompt.replace(eq, written, 1)
            solution = sympy_solution(meant, v)
            if fresh(prompt):
                out.append(
                    _variant(
                        base, "hard-respelled", n, prompt, name, equation=meant, solution=solution
                    )
                )
                n += 1
    else:
        for name in rng.sample(sorted(_JSON_RESPELLED), len(_JSON_RESPELLED)) * 3:
            if n == counts["hard-respelled"]:
                break
            prompt, types = _JSON_RESPELLED[name](base, rng)
            if fresh(prompt):
                keys = tuple(kk for kk, _ in types)
                out.append(
                    _variant(base, "hard-respelled", n, prompt, name, keys=keys, types=types)
                )
                n += 1
    if n < counts["hard-respelled"]:
        raise AssertionError(f"too few respelled variants of {base.id}")
    return out


def generate_hard_workload(seed: int, bases_per_family: int = 10, k: int = 3) -> Workload:
    """The hard workload of one seed: the paper workload's bases, 4k grammar variants each."""
    paper = generate_workload(seed, bases_per_family, k)
    rng = random.Random(f"hard-{seed}")
    seen = {b.prompt for b in paper.bases}
    requests: list[Request] = []
    for base in paper.bases:
        requests.extend(_variants_of(base, rng, k, seen))
    random.Random(f"hard-order-{seed}").shuffle(requests)
    counts = Counter(f"{r.family}/{r.kind}" for r in requests)
    return Workload(seed, paper.bases, tuple(requests), dict(sorted(counts.items())))

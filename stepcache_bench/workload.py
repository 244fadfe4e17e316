"""The seeded benchmark workload: linear equations and JSON objects, base prompts and variants.

Why one module (over ~500 lines): most of it is the two families' phrasing and subject tables
(`_SUBJECTS` and the prompt templates), and both families are drawn from one seeded random
generator in a fixed order: the order of draws is the workload, so keeping the whole walk in one
place keeps it visible that no edit may reorder them (that would reshuffle every seed's prompts).

Per seed and family, `bases` base prompts (default 10) are cached first; then every base gets `k`
variants (default 3) of each perturbation kind of its family:

- math: ``rewording`` (other phrasing, same equation), ``rename`` (other variable letter),
  ``constants`` (same form, other numbers, other solution), ``core`` (another question about the
  same equation: is v = c a solution, answer only, a rounded decimal, in plain words);
- json: ``rewording`` (other phrasing and filler adjective, same keys and subject), ``key_added``,
  ``key_removed_or_renamed``, ``core`` (YAML instead, a JSON array of such objects, another subject
  with the same keys, one minified line).

So a seed holds 2 families x 10 bases x 4 kinds x 3 variants = 240 evaluation requests (the paper's
222 is not a whole number of kinds x 3 variants for 20 bases; ours is 8 % more, and a quarter of it
are core-meaning changes, above the paper's 14.9 % skip share), served in a seeded shuffled order.

Ground truth is computed here, not by StepCache: every equation is solved with sympy at generation
time (unique rational solution); every JSON request carries its exact key set and value types.
Everything is a pure function of the seed.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Literal

Family = Literal["math", "json", "structured"]

MATH_KINDS: tuple[str, ...] = ("rewording", "rename", "constants", "core")
JSON_KINDS: tuple[str, ...] = ("rewording", "key_added", "key_removed_or_renamed", "core")
KINDS: tuple[str, ...] = (
    "rewording",
    "rename",
    "constants",
    "key_added",
    "key_removed_or_renamed",
    "core",
)
DEFAULT_SEEDS: tuple[int, ...] = (42, 43, 44)


@dataclass(frozen=True, slots=True)
class Request:
    """One prompt of the workload with its ground truth."""

    id: str
    seed: int
    family: Family
    base_id: str
    kind: str  # "base" or one of KINDS
    prompt: str
    core: bool = False  # a core-meaning change: reuse of another question's answer is wrong
    detail: str = ""  # what was perturbed, for humans
    # math ground truth
    variable: str | None = None
    equation: str | None = None
    solution: Fraction | None = None
    # json ground truth: required keys (exactly these) and their JSON types
    keys: tuple[str, ...] = ()
    types: tuple[tuple[str, str], ...] = ()
    workload: str = "paper"  # which workload generated it: paper | hard | structured
    # structured ground truth: the JSON Schema the answer must match (JSON text) and the values
    # the prompt's prose states, by JSON Pointer
    schema: str = ""
    stated: tuple[tuple[str, str], ...] = ()

    @property
    def type_map(self) -> dict[str, str]:
        return dict(self.types)


@dataclass(frozen=True, slots=True)
class Workload:
    """Base prompts (cached before evaluation) and evaluation requests (in serving order)."""

    seed: int
    bases: tuple[Request, ...]
    requests: tuple[Request, ...]
    counts: dict[str, int] = field(default_factory=dict)


# ---------------------------------------------------------------------------- math

_VARIABLES = "xyznktmpwurbcq"
_MATH_TEMPLATES: tuple[str, ...] = (
    "Solve {eq} for {v}. Be concise: show the key steps, one per line, "
    "and end with '{v} = <value>'.",
    "What is {v} in {eq}? Keep it short, one step per line, and finish with {v} = <value>.",
    "Find the value of {v} if {eq}. Brief steps please, and make the last line '{v} = <value>'.",
    "Can you help me solve {eq}? I need {v}. Show short steps and end with the line {v} = <value>.",
    "{eq}, solve for {v}. Be brief, one step per line, final line {v} = <value>.",
    "Work out {v} from the equation {eq}. A few short steps, then '{v} = <value>' on its own line.",
    "Quick algebra question: {eq}. What's {v}? Short working please, ending in {v} = <value>.",
)
_MATH_CORE: tuple[tuple[str, str], ...] = (
    ("check", "Is {v} = {c} a solution of {eq}? Answer yes or no, with a one-sentence reason."),
    ("answer_only", "Solve {eq} for {v}. Only give the final answer, no explanation."),
    ("decimal", "Solve {eq} for {v} and give {v} as a decimal rounded to two decimal places."),
    (
        "plain_words",
        "Explain in plain words, without equations, how to solve {eq} for {v}. Keep it short.",
    ),
)
_FORMS = ("av+b=c", "av-b=c", "a(v+b)=c", "av+b=cv+d", "v/a+b=c")


@dataclass(frozen=True, slots=True)
class _Equation:
    form: str
    numbers: tuple[int, ...]
    solution: int

    def render(self, v: str) -> str:
        n = self.numbers
        if self.form == "av+b=c":
            return f"{_coef(n[0], v)} + {n[1]} = {n[2]}"
        if self.form == "av-b=c":
            return f"{_coef(n[0], v)} - {n[1]} = {n[2]}"
        if self.form == "a(v+b)=c":
            return f"{n[0]}({v} {_signed(n[1])}) = {n[2]}"
        if self.form == "av+b=cv+d":
            return f"{_coef(n[0], v)} {_signed(n[1])} = {_coef(n[2], v)} {_signed(n[3])}"
        if self.form == "v/a+b=c":
            return f"{v}/{n[0]} {_signed(n[1])} = {n[2]}"
        raise ValueError(self.form)


def _coef(a: int, v: str) -> str:
    return f"{a}{v}" if a not in (1, -1) else (v if a == 1 else f"-{v}")


def _signed(n: int) -> str:
    return f"+ {n}" if n >= 0 else f"- {-n}"


def _nonzero(rng: random.Random, lo: int, hi: int) -> int:
    while True:
        n = rng.randint(lo, hi)
        if n != 0:
            return n


def _equation(rng: random.Random, form: str) -> _Equation:
    s = _nonzero(rng, -12, 12)
    if form == "av+b=c":
        a, b = _nonzero(rng, -9, 9), rng.randint(1, 20)
        a = a if abs(a) > 1 else 3
        return _Equation(form, (a, b, a * s + b), s)
    if form == "av-b=c":
        a, b = rng.randint(2, 9), rng.randint(1, 20)
        return _Equation(form, (a, b, a * s - b), s)
    if form == "a(v+b)=c":
        a, b = rng.randint(2, 9), _nonzero(rng, -9, 9)
        return _Equation(form, (a, b, a * (s + b)), s)
    if form == "av+b=cv+d":
        a = rng.randint(2, 12)
        c = rng.randint(1, 11)
        c = c if c != a else a - 1
        b = _nonzero(rng, -20, 20)
        return _Equation(form, (a, b, c, (a - c) * s + b), s)
    if form == "v/a+b=c":
        a, m, b = rng.randint(2, 6), _nonzero(rng, -6, 6), _nonzero(rng, -12, 12)
        return _Equation(form, (a, b, m + b), a * m)
    raise ValueError(form)


def sympy_solution(equation: str, variable: str) -> Fraction:
    """The unique rational solution of a linear `equation` in `variable`, by sympy.

    Raises ValueError when the equation is not linear in `variable` or has no unique solution.
    """
    import sympy
    from sympy.parsing.sympy_parser import (
        implicit_multiplication_application,
        parse_expr,
        standard_transformations,
    )

    sym = sympy.Symbol(variable)
    tr = (*standard_transformations, implicit_multiplication_application)
    lhs_src, rhs_src = equation.split("=")
    local = {variable: sym}
    lhs = parse_expr(lhs_src, local_dict=local, transformations=tr)
    rhs = parse_expr(rhs_src, local_dict=local, transformations=tr)
    expr = sympy.expand(lhs - rhs)
    if expr.free_symbols != {sym} or sympy.degree(expr, sym) != 1:
        raise ValueError(f"{equation!r} is not linear in {variable}")
    roots = sympy.solve(sympy.Eq(lhs, rhs), sym)
    if len(roots) != 1 or not roots[0].is_Rational:
        raise ValueError(f"{equation!r} has no unique rational solution")
    root = roots[0]
    return Fraction(int(root.p), int(root.q))


def _math_request(
    seed: int,
    base_id: str,
    kind: str,
    idx: int,
    prompt: str,
    eq: str,
    v: str,
    *,
    core: bool = False,
    detail: str = "",
    solution: Fraction | None = None,
) -> Request:
    rid = base_id if kind == "base" else f"{base_id}/{kind}/{idx}"
    if solution is None:
        solution = sympy_solution(eq, v)
    return Request(
        id=rid,
        seed=seed,
        family="math",
        base_id=base_id,
        kind=kind,
        prompt=prompt,
        core=core,
        detail=detail,
        variable=v,
        equation=eq,
        solution=solution,
    )


def _math_family(
    rng: random.Random, seed: int, bases: int, k: int
) -> tuple[list[Request], list[Request]]:
    base_reqs: list[Request] = []
    variants: list[Request] = []
    seen_eq: set[str] = set()
    for i in range(bases):
        base_id = f"s{seed}-math-{i}"
        form = _FORMS[i % len(_FORMS)]
        while True:
            eq0 = _equation(rng, form)
            if eq0.render("x") not in seen_eq:
                break
        seen_eq.add(eq0.render("x"))
        v = rng.choice(_VARIABLES[:6])
        t = rng.randrange(len(_MATH_TEMPLATES))
        template = _MATH_TEMPLATES[t]
        eq = eq0.render(v)
        base = _math_request(
            seed, base_id, "base", 0, template.format(eq=eq, v=v), eq, v, detail=form
        )
        assert base.solution == eq0.solution
        base_reqs.append(base)

        others = [j for j in range(len(_MATH_TEMPLATES)) if j != t]
        for n, j in enumerate(rng.sample(others, k)):
            prompt = _MATH_TEMPLATES[j].format(eq=eq, v=v)
            variants.append(
                _math_request(seed, base_id, "rewording", n, prompt, eq, v, detail=f"template {j}")
            )
        letters = [c for c in _VARIABLES if c != v]
        for n, w in enumerate(rng.sample(letters, k)):
            eq_w = eq0.render(w)
            prompt = template.format(eq=eq_w, v=w)
            variants.append(
                _math_request(seed, base_id, "rename", n, prompt, eq_w, w, detail=f"{v} -> {w}")
            )
        used = {eq0.numbers}
        for n in range(k):
            while True:
                other = _equation(rng, form)
                if other.numbers not in used and other.solution != eq0.solution:
                    break
            used.add(other.numbers)
            eq_c = other.render(v)
            prompt = template.format(eq=eq_c, v=v)
            variants.append(
                _math_request(
                    seed, base_id, "constants", n, prompt, eq_c, v, detail=f"{eq} -> {eq_c}"
                )
            )
        for n, (name, core_t) in enumerate(rng.sample(_MATH_CORE, k)):
            cand = eq0.solution + rng.choice((0, 1, -2))
            prompt = core_t.format(eq=eq, v=v, c=cand)
            variants.append(
                _math_request(
                    seed,
                    base_id,
                    "core",
                    n,
                    prompt,
                    eq,
                    v,
                    core=True,
                    detail=name,
                    solution=Fraction(eq0.solution),
                )
            )
    return base_reqs, variants


# ---------------------------------------------------------------------------- json


@dataclass(frozen=True, slots=True)
class _Subject:
    noun: str  # "person"
    keys: tuple[tuple[str, str], ...]  # (key, type), the first two always requested
    renames: tuple[tuple[str, str], ...]  # (key, new name)
    others: tuple[str, ...]  # other subjects that fit the same keys (core change)


_SUBJECTS: tuple[_Subject, ...] = (
    _Subject(
        "person",
        (
            ("name", "string"),
            ("age", "integer"),
            ("city", "string"),
            ("email", "string"),
            ("occupation", "string"),
            ("is_student", "boolean"),
            ("height_cm", "number"),
        ),
        (("name", "full_name"), ("city", "home_town"), ("email", "email_address")),
        ("customer", "teacher", "patient"),
    ),
    _Subject(
        "book",
        (
            ("title", "string"),
            ("author", "string"),
            ("year", "integer"),
            ("pages", "integer"),
            ("genre", "string"),
            ("in_print", "boolean"),
            ("price_usd", "number"),
        ),
        (("title", "book_title"), ("year", "published_year"), ("pages", "page_count")),
        ("magazine", "comic", "cookbook"),
    ),
    _Subject(
        "smartphone",
        (
            ("model", "string"),
            ("brand", "string"),
            ("price_usd", "number"),
            ("storage_gb", "integer"),
            ("release_year", "integer"),
            ("has_5g", "boolean"),
            ("color", "string"),
        ),
        (("model", "model_name"), ("brand", "manufacturer"), ("storage_gb", "storage")),
        ("tablet", "smartwatch", "laptop"),
    ),
    _Subject(
        "restaurant",
        (
            ("name", "string"),
            ("cuisine", "string"),
            ("rating", "number"),
            ("seats", "integer"),
            ("open_late", "boolean"),
            ("city", "string"),
            ("head_chef", "string"),
        ),
        (("name", "restaurant_name"), ("rating", "stars"), ("seats", "capacity")),
        ("bakery", "food truck", "cafe"),
    ),
    _Subject(
        "movie",
        (
            ("title", "string"),
            ("director", "string"),
            ("year", "integer"),
            ("runtime_minutes", "integer"),
            ("rating", "number"),
            ("genre", "string"),
            ("is_sequel", "boolean"),
        ),
        (("title", "film_title"), ("director", "directed_by"), ("year", "release_year")),
        ("documentary", "tv series", "stage play"),
    ),
    _Subject(
        "car",
        (
            ("make", "string"),
            ("model", "string"),
            ("year", "integer"),
            ("price_usd", "number"),
            ("electric", "boolean"),
            ("color", "string"),
            ("mileage_km", "integer"),
        ),
        (("make", "manufacturer"), ("year", "model_year"), ("color", "paint_color")),
        ("motorbike", "van", "tractor"),
    ),
    _Subject(
        "city park",
        (
            ("name", "string"),
            ("area_hectares", "number"),
            ("opened", "integer"),
            ("has_playground", "boolean"),
            ("city", "string"),
            ("daily_visitors", "integer"),
            ("dogs_allowed", "boolean"),
        ),
        (("name", "park_name"), ("opened", "opening_year"), ("city", "location")),
        ("botanical garden", "zoo", "nature reserve"),
    ),
    _Subject(
        "hotel",
        (
            ("name", "string"),
            ("stars", "integer"),
            ("city", "string"),
            ("price_per_night", "number"),
            ("has_pool", "boolean"),
            ("rooms", "integer"),
            ("manager", "string"),
        ),
        (("name", "hotel_name"), ("stars", "star_rating"), ("rooms", "room_count")),
        ("hostel", "campsite", "guest house"),
    ),
    _Subject(
        "planet",
        (
            ("name", "string"),
            ("radius_km", "number"),
            ("moons", "integer"),
            ("has_rings", "boolean"),
            ("distance_au", "number"),
            ("atmosphere", "string"),
            ("habitable", "boolean"),
        ),
        (("name", "planet_name"), ("moons", "moon_count"), ("radius_km", "radius")),
        ("moon", "asteroid", "comet"),
    ),
    _Subject(
        "employee",
        (
            ("name", "string"),
            ("department", "string"),
            ("salary", "number"),
            ("start_year", "integer"),
            ("remote", "boolean"),
            ("manager", "string"),
            ("employee_id", "integer"),
        ),
        (("name", "employee_name"), ("salary", "annual_salary"), ("department", "team")),
        ("contractor", "intern", "volunteer"),
    ),
    _Subject(
        "recipe",
        (
            ("name", "string"),
            ("servings", "integer"),
            ("vegetarian", "boolean"),
            ("prep_minutes", "integer"),
            ("cuisine", "string"),
            ("calories", "integer"),
            ("difficulty", "string"),
        ),
        (("name", "recipe_name"), ("servings", "portions"), ("prep_minutes", "prep_time")),
        ("cocktail", "smoothie", "dessert"),
    ),
    _Subject(
        "concert",
        (
            ("artist", "string"),
            ("venue", "string"),
            ("date", "string"),
            ("ticket_price", "number"),
            ("sold_out", "boolean"),
            ("capacity", "integer"),
            ("city", "string"),
        ),
        (("artist", "performer"), ("venue", "location"), ("ticket_price", "price")),
        ("festival", "theatre show", "comedy night"),
    ),
)
_FILLERS = ("fictional", "imaginary", "made-up", "pretend", "hypothetical", "sample")
_JSON_TEMPLATES: tuple[str, ...] = (
    "Give me a JSON object for {subj} with the keys {klist}. No other keys.",
    "Output only a JSON object describing {subj} that has exactly these fields: {klist}.",
    "I need some test data: a JSON object for {subj}. Keys: {klist}. Nothing else, please.",
    "Create {subj} as JSON. Use these keys:\n{bullets}",
    "Return a JSON object representing {subj}, with fields {klist} and no other fields.",
    "Please write JSON for {subj}; it must have the properties {klist} (no extra keys).",
)
_JSON_CORE: tuple[str, ...] = ("yaml", "array", "other_subject", "one_line")


def _article(words: str) -> str:
    return "an" if words[0] in "aeiou" else "a"


def _subject_phrase(filler: str, noun: str) -> str:
    words = f"{filler} {noun}"
    return f"{_article(words)} {words}"


def _key_list(keys: Sequence[tuple[str, str]], style: int) -> str:
    if style == 0:  # "a (string), b (integer) and c (string)"
        items = [f"{k} ({t})" for k, t in keys]
        return ", ".join(items[:-1]) + " and " + items[-1]
    return ", ".join(f"{k}: {t}" for k, t in keys)  # "a: string, b: integer, c: string"


def _json_prompt(template: int, subj: str, keys: Sequence[tuple[str, str]], style: int) -> str:
    bullets = "\n".join(f"- {k} ({t})" for k, t in keys)
    return _JSON_TEMPLATES[template].format(
        subj=subj, klist=_key_list(keys, style), bullets=bullets
    )


def _json_request(
    seed: int,
    base_id: str,
    kind: str,
    idx: int,
    prompt: str,
    keys: Sequence[tuple[str, str]],
    *,
    core: bool = False,
    detail: str = "",
) -> Request:
    rid = base_id if kind == "base" else f"{base_id}/{kind}/{idx}"
    return Request(
        id=rid,
        seed=seed,
        family="json",
        base_id=base_id,
        kind=kind,
        prompt=prompt,
        core=core,
        detail=detail,
        keys=tuple(k for k, _ in keys),
        types=tuple(keys),
    )


def _json_family(
    rng: random.Random, seed: int, bases: int, k: int
) -> tuple[list[Request], list[Request]]:
    if bases > len(_SUBJECTS):
        raise ValueError(f"at most {len(_SUBJECTS)} JSON bases")
    base_reqs: list[Request] = []
    variants: list[Request] = []
    for i, subject in enumerate(rng.sample(_SUBJECTS, bases)):
        base_id = f"s{seed}-json-{i}"
        n_keys = rng.choice((3, 4))
        pool = list(subject.keys[2:])
        rng.shuffle(pool)
        keys = [*subject.keys[:2], *pool[: n_keys - 2]]
        spare = pool[n_keys - 2 :]
        filler = rng.choice(_FILLERS)
        subj = _subject_phrase(filler, subject.noun)
        t = rng.randrange(len(_JSON_TEMPLATES))
        style = rng.randrange(2)
        base = _json_request(
            seed, base_id, "base", 0, _json_prompt(t, subj, keys, style), keys, detail=subject.noun
        )
        base_reqs.append(base)

        others = [j for j in range(len(_JSON_TEMPLATES)) if j != t]
        for n, j in enumerate(rng.sample(others, k)):
            f2 = rng.choice([f for f in _FILLERS if f != filler])
            prompt = _json_prompt(j, _subject_phrase(f2, subject.noun), keys, 1 - style)
            variants.append(
                _json_request(seed, base_id, "rewording", n, prompt, keys, detail=f"template {j}")
            )
        for n, extra in enumerate(rng.sample(spare, k)):
            new_keys = [*keys, extra]
            prompt = _json_prompt(t, subj, new_keys, style)
            variants.append(
                _json_request(
                    seed, base_id, "key_added", n, prompt, new_keys, detail=f"+{extra[0]}"
                )
            )
        renames = [(old, new) for old, new in subject.renames if old in dict(keys)]
        for n in range(k):
            if n % 2 == 1 and renames:
                old, new = renames[(n // 2) % len(renames)]
                new_keys = [(new if kk == old else kk, tt) for kk, tt in keys]
                detail = f"{old} -> {new}"
            else:
                # remove one of the non-identity keys (3 keys -> the 2nd/3rd; never the 1st)
                removable = [kk for kk, _ in keys[1:]]
                gone = removable[(n // 2) % len(removable)]
                new_keys = [(kk, tt) for kk, tt in keys if kk != gone]
                detail = f"-{gone}"
            prompt = _json_prompt(t, subj, new_keys, style)
            variants.append(
                _json_request(
                    seed, base_id, "key_removed_or_renamed", n, prompt, new_keys, detail=detail
                )
            )
        for n, name in enumerate(rng.sample(_JSON_CORE, k)):
            klist = _key_list(keys, style)
            if name == "yaml":
                prompt = f"Give me a YAML document (not JSON) for {subj} with the keys {klist}."
            elif name == "array":
                prompt = (
                    f"Give me a JSON array of three objects, each one {subj} with the keys {klist}."
                )
            elif name == "other_subject":
                other = rng.choice(subject.others)
                prompt = _json_prompt(t, _subject_phrase(filler, other), keys, style)
            else:
                prompt = _json_prompt(t, subj, keys, style) + " Put it on one line, minified."
            variants.append(
                _json_request(seed, base_id, "core", n, prompt, keys, core=True, detail=name)
            )
    return base_reqs, variants


# ---------------------------------------------------------------------------- the workload


def generate_workload(seed: int, bases_per_family: int = 10, k: int = 3) -> Workload:
    """The workload of one seed: `bases_per_family` bases per family, `k` variants per kind."""
    if bases_per_family < 1 or k < 1:
        raise ValueError("bases_per_family and k must be >= 1")
    if k > 3:
        raise ValueError("k must be <= 3 (the JSON key pools and core templates hold 3-4 each)")
    math_bases, math_vars = _math_family(random.Random(f"math-{seed}"), seed, bases_per_family, k)
    json_bases, json_vars = _json_family(random.Random(f"json-{seed}"), seed, bases_per_family, k)
    requests = math_vars + json_vars
    random.Random(f"order-{seed}").shuffle(requests)
    bases = math_bases + json_bases
    prompts = [r.prompt for r in (*bases, *requests)]
    if len(set(prompts)) != len(prompts):
        dup = [p for p, c in Counter(prompts).items() if c > 1]
        raise AssertionError(f"duplicate prompts in the workload: {dup[:3]}")
    counts = Counter(f"{r.family}/{r.kind}" for r in requests)
    return Workload(seed, tuple(bases), tuple(requests), dict(sorted(counts.items())))


def expected_count(bases_per_family: int = 10, k: int = 3) -> int:
    """Evaluation requests per seed: 2 families x bases x 4 kinds x k."""
    return 2 * bases_per_family * 4 * k

"""The `structured` workload: one JSON object matching a nested JSON Schema stated in the prompt.

Why one module (over ~500 lines): most of it is the subject table (`_SUBJECTS`: ten schemas with
the edits each allows); the edit functions are a few lines each and read best next to it.

Apps that want structured output put the schema in the prompt and ask the model for an object
that matches it (and, where the model supports it, constrain decoding to the schema: the
benchmark does so for every arm alike, see `harness.MemoBackend`). Each base prompt asks for one
object of a realistic subject (an order with line items, a product with variants, a user profile
with an address, an event with a status enum, ...) whose schema nests objects, arrays of objects
and enums; its prose names the subject and states one or two values (a customer's name, a city)
that the object must hold. Every base gets `k` variants (default 3) of each kind:

- ``rewording``: another phrasing from the schema task's reviewed lexicon, same schema and
  subject (meaning-preserving);
- ``field_added``, ``field_removed``, ``field_renamed``: a top-level or nested property added,
  removed or renamed in the schema;
- ``nested_field_added``: a property added inside a nested object or an array's item object;
- ``enum_changed``: an enum's values replaced;
- ``subject_change``: the same schema for another subject (other stated values): a core change,
  a cached answer for the base is wrong for it whatever its shape.

Ground truth is the request's own schema (`Request.schema`, JSON text) and the values its prose
states (`Request.stated`, JSON Pointer -> value): an answer is right when it validates against
the schema and holds the stated values (`checks.check_structured`). So a 10-base seed holds
10 x 7 kinds x 3 variants = 210 evaluation requests, served in a seeded shuffled order.
Everything is a pure function of the seed.
"""

from __future__ import annotations

import copy
import json
import random
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from stepcache_bench.workload import Request, Workload

STRUCTURED_KINDS: tuple[str, ...] = (
    "rewording",
    "field_added",
    "field_removed",
    "field_renamed",
    "nested_field_added",
    "enum_changed",
    "subject_change",
)
#: Kinds whose schema differs from the base's: a served answer must validate against the new one.
SCHEMA_CHANGES: tuple[str, ...] = STRUCTURED_KINDS[1:6]

Schema = dict[str, Any]

# ---------------------------------------------------------------------------- schema builders


def _str(max_length: int | None = None) -> Schema:
    return {"type": "string"} if max_length is None else {"type": "string", "maxLength": max_length}


def _int(lo: int | None = None, hi: int | None = None) -> Schema:
    out: Schema = {"type": "integer"}
    if lo is not None:
        out["minimum"] = lo
    if hi is not None:
        out["maximum"] = hi
    return out


def _num(lo: float | None = 0, hi: float | None = None) -> Schema:
    out: Schema = {"type": "number"}
    if lo is not None:
        out["minimum"] = lo
    if hi is not None:
        out["maximum"] = hi
    return out


_BOOL: Schema = {"type": "boolean"}
_DATE: Schema = {"type": "string", "format": "date"}


def _enum(*values: str) -> Schema:
    return {"type": "string", "enum": list(values)}


def _obj(**props: Schema) -> Schema:
    """An object schema: every property required, no other property allowed."""
    return {
        "type": "object",
        "properties": props,
        "required": list(props),
        "additionalProperties": False,
    }


def _arr(item: Schema, hi: int = 2) -> Schema:
    return {"type": "array", "items": item, "minItems": 1, "maxItems": hi}


# ---------------------------------------------------------------------------- subjects

Path = tuple[str, ...]  # property names from the root; "*" steps into an array's items


def _path(text: str) -> Path:
    return tuple(text.strip("/").split("/"))


@dataclass(frozen=True, slots=True)
class _Subject:
    """One kind of object, its schema and the edits each variant kind may make to it."""

    name: str
    phrase: str  # the subject in prose, with a {} per stated value
    slots: tuple[str, ...]  # JSON Pointer of each stated value, in phrase order
    values: tuple[tuple[str, ...], ...]  # the base's values first, then other subjects'
    schema: Schema
    added: tuple[tuple[str, Schema], ...]  # top-level properties a variant may add
    removed: tuple[str, ...]  # paths a variant may remove
    renamed: tuple[tuple[str, str], ...]  # (path, new name)
    nested: tuple[tuple[str, str, Schema], ...]  # (object path, property, schema)
    enums: tuple[tuple[str, tuple[str, ...]], ...]  # (path of an enum, its new values)


_SUBJECTS: tuple[_Subject, ...] = (
    _Subject(
        "order",
        "an order placed by {} from {}",
        ("/customer/name", "/customer/address/city"),
        (
            ("Maria Lopez", "Lisbon"),
            ("Kenji Sato", "Osaka"),
            ("Amara Okafor", "Lagos"),
            ("Lukas Weber", "Munich"),
        ),
        _obj(
            order_id=_str(),
            customer=_obj(name=_str(), email=_str(), address=_obj(street=_str(), city=_str())),
            line_items=_arr(_obj(product=_str(), quantity=_int(1, 20), unit_price=_num())),
            status=_enum("pending", "shipped", "delivered", "cancelled"),
            total=_num(),
        ),
        (("currency", _enum("USD", "EUR", "GBP")), ("gift_wrap", _BOOL), ("coupon", _str(12))),
        ("/total", "/customer/email", "/customer/address/street"),
        (
            ("/order_id", "order_number"),
            ("/total", "grand_total"),
            ("/line_items/*/quantity", "qty"),
        ),
        (
            ("/customer", "phone", _str()),
            ("/customer/address", "postal_code", _str()),
            ("/line_items/*", "sku", _str()),
        ),
        (
            ("/status", ("PENDING", "SHIPPED", "DELIVERED", "CANCELLED")),
            ("/status", ("placed", "packed", "in_transit", "received")),
            ("/status", ("open", "closed")),
        ),
    ),
    _Subject(
        "product",
        "a product called {} made by {}",
        ("/name", "/brand"),
        (
            ("NovaSleeve", "Brightline"),
            ("LumaDesk Lamp", "Glowforge Labs"),
            ("Trail Runner 2", "Northpeak"),
            ("Aero Kettle", "Copperleaf"),
        ),
        _obj(
            sku=_str(),
            name=_str(),
            brand=_str(),
            price=_obj(amount=_num(), currency=_enum("USD", "EUR", "GBP")),
            dimensions=_obj(width_cm=_num(), height_cm=_num(), depth_cm=_num()),
            variants=_arr(_obj(color=_str(), stock=_int(0))),
            availability=_enum("in_stock", "out_of_stock", "preorder"),
        ),
        (("weight_kg", _num()), ("warranty_years", _int(0, 10)), ("eco_friendly", _BOOL)),
        ("/sku", "/dimensions/depth_cm", "/variants/*/stock"),
        (("/sku", "product_code"), ("/price/amount", "value"), ("/variants/*/color", "colour")),
        (
            ("/price", "discount_percent", _num(0, 100)),
            ("/dimensions", "weight_g", _num()),
            ("/variants/*", "size", _enum("S", "M", "L")),
        ),
        (
            ("/availability", ("IN_STOCK", "OUT_OF_STOCK", "PREORDER")),
            ("/price/currency", ("CHF", "SEK", "NOK")),
            ("/availability", ("available", "sold_out")),
        ),
    ),
    _Subject(
        "user profile",
        "a user profile for {} who lives in {}",
        ("/full_name", "/address/city"),
        (
            ("Priya Nair", "Toronto"),
            ("Jonas Berg", "Oslo"),
            ("Lucia Moreno", "Seville"),
            ("Tariq Haddad", "Amman"),
        ),
        _obj(
            username=_str(),
            full_name=_str(),
            age=_int(13, 120),
            address=_obj(street=_str(), city=_str(), postal_code=_str()),
            preferences=_obj(
                language=_enum("en", "es", "fr", "de"),
                newsletter=_BOOL,
                theme=_enum("light", "dark"),
            ),
            roles=_arr(_obj(role=_enum("admin", "editor", "viewer"), since=_int(2000, 2030))),
        ),
        (("bio", _str(80)), ("verified", _BOOL), ("last_login", _DATE)),
        ("/age", "/address/postal_code", "/preferences/theme"),
        (
            ("/username", "handle"),
            ("/address/postal_code", "zip"),
            ("/preferences/newsletter", "subscribed"),
        ),
        (
            ("/address", "state", _str()),
            ("/preferences", "timezone", _str()),
            ("/roles/*", "granted_by", _str()),
        ),
        (
            ("/preferences/language", ("en-US", "es-ES", "fr-FR", "de-DE")),
            ("/preferences/theme", ("system", "high_contrast")),
            ("/roles/*/role", ("owner", "member", "guest")),
        ),
    ),
    _Subject(
        "event",
        "an event titled {} held in {}",
        ("/title", "/venue/city"),
        (
            ("Data Days", "Copenhagen"),
            ("Harbour Jazz Night", "Hamburg"),
            ("Open Robotics Summit", "Tallinn"),
            ("Spring Book Fair", "Porto"),
        ),
        _obj(
            title=_str(),
            date=_DATE,
            venue=_obj(name=_str(), city=_str(), capacity=_int(1)),
            status=_enum("scheduled", "postponed", "cancelled", "completed"),
            speakers=_arr(_obj(name=_str(), topic=_str(60))),
            ticket=_obj(price=_num(), currency=_enum("EUR", "USD", "GBP")),
        ),
        (("online", _BOOL), ("organizer", _str()), ("max_attendees", _int(1))),
        ("/venue/capacity", "/speakers/*/topic", "/date"),
        (
            ("/venue/name", "venue_name"),
            ("/speakers/*/topic", "talk_title"),
            ("/date", "starts_on"),
        ),
        (
            ("/venue", "address", _str()),
            ("/speakers/*", "company", _str()),
            ("/ticket", "refundable", _BOOL),
        ),
        (
            ("/status", ("SCHEDULED", "POSTPONED", "CANCELLED", "COMPLETED")),
            ("/status", ("planned", "live", "ended")),
            ("/ticket/currency", ("DKK", "SEK", "NOK")),
        ),
    ),
    _Subject(
        "support ticket",
        "a support ticket opened by {} at {}",
        ("/reporter/name", "/reporter/company"),
        (
            ("Tom Becker", "Fernwood Bakery"),
            ("Aiko Tanaka", "Blue Heron Travel"),
            ("Sam Carter", "Redwood Dental"),
            ("Ines Duarte", "Atlas Freight"),
        ),
        _obj(
            ticket_id=_str(),
            subject=_str(60),
            priority=_enum("low", "medium", "high", "urgent"),
            reporter=_obj(name=_str(), email=_str(), company=_str()),
            messages=_arr(_obj(author=_str(), body=_str(80))),
            category=_enum("billing", "technical", "account"),
        ),
        (("opened_on", _DATE), ("resolved", _BOOL), ("assignee", _str())),
        ("/reporter/email", "/category", "/messages/*/author"),
        (("/ticket_id", "id"), ("/subject", "summary"), ("/messages/*/body", "text")),
        (
            ("/reporter", "phone", _str()),
            ("/messages/*", "internal", _BOOL),
            ("/reporter", "plan", _enum("free", "pro", "enterprise")),
        ),
        (
            ("/priority", ("P1", "P2", "P3", "P4")),
            ("/priority", ("LOW", "MEDIUM", "HIGH", "URGENT")),
            ("/category", ("payments", "bug", "login")),
        ),
    ),
    _Subject(
        "job posting",
        "a job posting for a {} at {}",
        ("/title", "/company/name"),
        (
            ("Backend Engineer", "Kestrel Analytics"),
            ("Data Analyst", "Harbor Health"),
            ("Product Designer", "Willow Labs"),
            ("Site Reliability Engineer", "Granite Cloud"),
        ),
        _obj(
            title=_str(),
            company=_obj(name=_str(), city=_str()),
            employment_type=_enum("full_time", "part_time", "contract"),
            salary=_obj(min=_int(0), max=_int(0), currency=_enum("USD", "EUR", "GBP")),
            requirements=_arr(_obj(skill=_str(), years=_int(0, 20))),
            remote=_BOOL,
        ),
        (("posted_on", _DATE), ("visa_sponsorship", _BOOL), ("team", _str())),
        ("/remote", "/company/city", "/requirements/*/years"),
        (
            ("/company/city", "location"),
            ("/salary/min", "minimum"),
            ("/requirements/*/skill", "name"),
        ),
        (
            ("/company", "industry", _str()),
            ("/salary", "period", _enum("year", "month", "hour")),
            ("/requirements/*", "required", _BOOL),
        ),
        (
            ("/employment_type", ("FULL_TIME", "PART_TIME", "CONTRACT")),
            ("/employment_type", ("permanent", "temporary", "freelance")),
            ("/salary/currency", ("CAD", "AUD", "NZD")),
        ),
    ),
    _Subject(
        "flight booking",
        "a flight booking for {} departing from {}",
        ("/passenger/name", "/origin"),
        (
            ("Elena Rossi", "Rome"),
            ("David Kim", "Seoul"),
            ("Fatima Zahra", "Casablanca"),
            ("Oliver Hughes", "Dublin"),
        ),
        _obj(
            booking_ref=_str(),
            passenger=_obj(name=_str(), email=_str()),
            origin=_str(),
            destination=_str(),
            flights=_arr(_obj(flight_number=_str(), date=_DATE)),
            cabin=_enum("economy", "premium_economy", "business", "first"),
            baggage=_obj(checked_bags=_int(0, 3), cabin_bag=_BOOL),
        ),
        (
            ("total_price", _num()),
            ("insurance", _BOOL),
            ("seat_preference", _enum("window", "aisle")),
        ),
        ("/passenger/email", "/baggage/cabin_bag", "/destination"),
        (
            ("/booking_ref", "confirmation_code"),
            ("/destination", "arrival_city"),
            ("/flights/*/flight_number", "code"),
        ),
        (
            ("/passenger", "frequent_flyer", _str()),
            ("/baggage", "sports_equipment", _BOOL),
            ("/flights/*", "seat", _str()),
        ),
        (
            ("/cabin", ("ECONOMY", "PREMIUM_ECONOMY", "BUSINESS", "FIRST")),
            ("/cabin", ("basic", "standard", "flex")),
            ("/cabin", ("Y", "W", "J", "F")),
        ),
    ),
    _Subject(
        "recipe",
        "a {} recipe called {}",
        ("/cuisine", "/name"),
        (
            ("Greek", "Lemon Orzo Salad"),
            ("Thai", "Green Curry Noodles"),
            ("Mexican", "Black Bean Tacos"),
            ("Italian", "Pesto Gnocchi"),
        ),
        _obj(
            name=_str(),
            cuisine=_str(),
            servings=_int(1, 12),
            difficulty=_enum("easy", "medium", "hard"),
            ingredients=_arr(
                _obj(item=_str(), amount=_num(), unit=_enum("g", "ml", "piece", "tbsp")), 3
            ),
            nutrition=_obj(calories=_int(0), protein_g=_num()),
        ),
        (("vegetarian", _BOOL), ("prep_minutes", _int(1, 240)), ("author", _str())),
        ("/servings", "/nutrition/protein_g", "/ingredients/*/unit"),
        (
            ("/servings", "portions"),
            ("/nutrition/calories", "kcal"),
            ("/ingredients/*/item", "ingredient"),
        ),
        (
            ("/nutrition", "fat_g", _num()),
            ("/nutrition", "carbs_g", _num()),
            ("/ingredients/*", "optional", _BOOL),
        ),
        (
            ("/difficulty", ("beginner", "intermediate", "advanced")),
            ("/difficulty", ("EASY", "MEDIUM", "HARD")),
            ("/ingredients/*/unit", ("grams", "millilitres", "pieces", "tablespoons")),
        ),
    ),
    _Subject(
        "library book",
        "a library book titled {} written by {}",
        ("/title", "/author/name"),
        (
            ("The Quiet Harbor", "Nadia Farouk"),
            ("Northern Lights", "Erik Lund"),
            ("Salt and Stone", "Grace Mbeki"),
            ("The Last Orchard", "Hana Novak"),
        ),
        _obj(
            isbn=_str(),
            title=_str(),
            author=_obj(name=_str(), nationality=_str()),
            loan=_obj(borrower=_str(), due_date=_DATE, renewals=_int(0, 3)),
            format=_enum("hardcover", "paperback", "ebook", "audiobook"),
            reviews=_arr(_obj(reviewer=_str(), stars=_int(1, 5))),
        ),
        (("pages", _int(1)), ("language", _str()), ("available", _BOOL)),
        ("/isbn", "/author/nationality", "/loan/renewals"),
        (("/isbn", "isbn13"), ("/loan/borrower", "member"), ("/reviews/*/stars", "rating")),
        (
            ("/author", "birth_year", _int(1800, 2010)),
            ("/loan", "overdue", _BOOL),
            ("/reviews/*", "comment", _str(80)),
        ),
        (
            ("/format", ("HARDCOVER", "PAPERBACK", "EBOOK", "AUDIOBOOK")),
            ("/format", ("print", "digital", "audio")),
            ("/format", ("hardback", "softcover", "e-book", "audio")),
        ),
    ),
    _Subject(
        "apartment listing",
        "an apartment listing in {} posted by {}",
        ("/address/city", "/agent/name"),
        (
            ("Vienna", "Sofia Graf"),
            ("Krakow", "Piotr Nowak"),
            ("Valencia", "Carmen Ruiz"),
            ("Utrecht", "Daan Visser"),
        ),
        _obj(
            listing_id=_str(),
            address=_obj(street=_str(), city=_str()),
            agent=_obj(name=_str(), phone=_str()),
            price=_obj(amount=_num(), currency=_enum("EUR", "PLN", "CHF")),
            rooms=_arr(_obj(kind=_enum("bedroom", "bathroom", "kitchen"), area_m2=_num()), 3),
            listing_type=_enum("rent", "sale"),
            furnished=_BOOL,
        ),
        (("year_built", _int(1800, 2030)), ("pets_allowed", _BOOL), ("floor", _int(0, 60))),
        ("/furnished", "/address/street", "/agent/phone"),
        (("/listing_id", "reference"), ("/price/amount", "value"), ("/rooms/*/area_m2", "size_m2")),
        (
            ("/address", "postal_code", _str()),
            ("/agent", "agency", _str()),
            ("/rooms/*", "has_window", _BOOL),
        ),
        (
            ("/listing_type", ("RENT", "SALE")),
            ("/listing_type", ("lease", "purchase")),
            ("/price/currency", ("USD", "GBP")),
        ),
    ),
)

#: Lead phrasings; any two differ only in words of the schema task's lexicon (`SCHEMA_LEXICON`).
_LEADS: tuple[str, ...] = (
    "Return a JSON object that matches this schema",
    "Please give me one object that conforms to the schema",
    "Generate a single JSON object following the JSON schema",
    "Produce a valid instance matching the following schema",
    "Reply with only one JSON object that follows this schema",
    "Create JSON data that matches this JSON schema",
    "Output an object valid against the schema",
)


def structured_prompt(lead: int, subject: str, schema: Mapping[str, Any]) -> str:
    """The prompt: a lead phrasing, the subject, and the schema in a fenced block."""
    return f"{_LEADS[lead]} for {subject}:\n```json\n{json.dumps(schema)}\n```"


def _subject_text(subject: _Subject, values: Sequence[str]) -> str:
    return subject.phrase.format(*values)


def stated_values(prompt: str) -> dict[str, str]:
    """The values `prompt`'s subject states, by JSON Pointer ({} when it states none of this
    workload's subjects). For the fake model: it answers with them, as a real model would."""
    for subject in _SUBJECTS:
        for values in subject.values:
            if _subject_text(subject, values) in prompt:
                return dict(zip(subject.slots, values, strict=True))
    return {}


# ---------------------------------------------------------------------------- schema edits


def _parent(schema: Schema, path: Path) -> Schema:
    """The object schema that holds the last property of `path`."""
    node = schema
    for part in path[:-1]:
        node = node["items"] if part == "*" else node["properties"][part]
    return node


def _node(schema: Schema, path: Path) -> Schema:
    node = schema
    for part in path:
        node = node["items"] if part == "*" else node["properties"][part]
    return node


def _add(schema: Schema, at: Path, name: str, sub: Schema) -> Schema:
    out = copy.deepcopy(schema)
    node = _node(out, at)
    assert name not in node["properties"], name
    node["properties"][name] = copy.deepcopy(sub)
    node["required"].append(name)
    return out


def _remove(schema: Schema, path: Path) -> Schema:
    out = copy.deepcopy(schema)
    node = _parent(out, path)
    del node["properties"][path[-1]]
    node["required"].remove(path[-1])
    return out


def _rename(schema: Schema, path: Path, new: str) -> Schema:
    out = copy.deepcopy(schema)
    node = _parent(out, path)
    old = path[-1]
    assert new not in node["properties"], new
    node["properties"] = {(new if k == old else k): v for k, v in node["properties"].items()}
    node["required"] = [new if k == old else k for k in node["required"]]
    return out


def _set_enum(schema: Schema, path: Path, values: Sequence[str]) -> Schema:
    out = copy.deepcopy(schema)
    _node(out, path)["enum"] = list(values)
    return out


def _touches(path: Path, slots: Sequence[str]) -> bool:
    """True when `path` is a stated value's pointer or one of its ancestors."""
    return any(_path(s)[: len(path)] == path for s in slots)


# ---------------------------------------------------------------------------- the workload


def _request(
    seed: int,
    base_id: str,
    kind: str,
    idx: int,
    prompt: str,
    schema: Schema,
    stated: Mapping[str, str],
    detail: str,
) -> Request:
    return Request(
        id=base_id if kind == "base" else f"{base_id}/{kind}/{idx}",
        seed=seed,
        family="structured",
        base_id=base_id,
        kind=kind,
        prompt=prompt,
        core=kind == "subject_change",
        detail=detail,
        keys=tuple(schema["properties"]),
        workload="structured",
        schema=json.dumps(schema),
        stated=tuple(stated.items()),
    )


def _variants(
    seed: int, base_id: str, subject: _Subject, lead: int, rng: random.Random, k: int
) -> list[Request]:
    schema = subject.schema
    subj = _subject_text(subject, subject.values[0])
    stated = dict(zip(subject.slots, subject.values[0], strict=True))
    out: list[Request] = []

    def add(kind: str, n: int, new_schema: Schema, detail: str) -> None:
        prompt = structured_prompt(lead, subj, new_schema)
        out.append(_request(seed, base_id, kind, n, prompt, new_schema, stated, detail))

    others = [j for j in range(len(_LEADS)) if j != lead]
    for n, j in enumerate(rng.sample(others, k)):
        prompt = structured_prompt(j, subj, schema)
        out.append(_request(seed, base_id, "rewording", n, prompt, schema, stated, f"lead {j}"))
    for n, (name, sub) in enumerate(rng.sample(subject.added, k)):
        add("field_added", n, _add(schema, (), name, sub), f"+/{name}")
    for n, gone in enumerate(rng.sample(subject.removed, k)):
        assert not _touches(_path(gone), subject.slots), gone
        add("field_removed", n, _remove(schema, _path(gone)), f"-{gone}")
    for n, (old, new) in enumerate(rng.sample(subject.renamed, k)):
        assert not _touches(_path(old), subject.slots), old
        add("field_renamed", n, _rename(schema, _path(old), new), f"{old} -> {new}")
    for n, (at, name, sub) in enumerate(rng.sample(subject.nested, k)):
        add("nested_field_added", n, _add(schema, _path(at), name, sub), f"+{at}/{name}")
    for n, (at, values) in enumerate(rng.sample(subject.enums, k)):
        add("enum_changed", n, _set_enum(schema, _path(at), values), f"{at}: {list(values)}")
    for n, values in enumerate(rng.sample(subject.values[1:], k)):
        other = _subject_text(subject, values)
        prompt = structured_prompt(lead, other, schema)
        truth = dict(zip(subject.slots, values, strict=True))
        out.append(
            _request(
                seed, base_id, "subject_change", n, prompt, schema, truth, f"{subj} -> {other}"
            )
        )
    return out


def generate_structured_workload(seed: int, bases: int = 10, k: int = 3) -> Workload:
    """The structured workload of one seed: `bases` subjects, `k` variants of each kind."""
    if not 1 <= bases <= len(_SUBJECTS):
        raise ValueError(f"bases must be between 1 and {len(_SUBJECTS)}")
    if not 1 <= k <= 3:
        raise ValueError("k must be between 1 and 3 (each subject holds 3 edits of each kind)")
    rng = random.Random(f"structured-{seed}")
    base_reqs: list[Request] = []
    requests: list[Request] = []
    for i, subject in enumerate(rng.sample(_SUBJECTS, bases)):
        base_id = f"s{seed}-structured-{i}"
        lead = rng.randrange(len(_LEADS))
        subj = _subject_text(subject, subject.values[0])
        stated = dict(zip(subject.slots, subject.values[0], strict=True))
        prompt = structured_prompt(lead, subj, subject.schema)
        base_reqs.append(
            _request(seed, base_id, "base", 0, prompt, subject.schema, stated, subject.name)
        )
        requests.extend(_variants(seed, base_id, subject, lead, rng, k))
    random.Random(f"structured-order-{seed}").shuffle(requests)
    prompts = [r.prompt for r in (*base_reqs, *requests)]
    if len(set(prompts)) != len(prompts):
        dup = [p for p, c in Counter(prompts).items() if c > 1]
        raise AssertionError(f"duplicate prompts in the structured workload: {dup[:2]}")
    counts = Counter(f"{r.family}/{r.kind}" for r in requests)
    return Workload(seed, tuple(base_reqs), tuple(requests), dict(sorted(counts.items())))


def request_schemas(workload: Workload) -> dict[str, Schema]:
    """prompt -> the schema its answer is constrained to (structured requests only)."""
    return {
        r.prompt: json.loads(r.schema) for r in (*workload.bases, *workload.requests) if r.schema
    }

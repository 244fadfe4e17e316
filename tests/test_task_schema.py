"""The JSON Schema task: nested objects and arrays of objects reused pointer by pointer."""

from __future__ import annotations

import copy
import json
import re
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from stepcache_core import CacheConfig, InMemoryStore, Path, StepCache, StepOrigin, TaskRegistry
from stepcache_core.tasks.base import Check, PatchRequest
from stepcache_core.tasks.json import JsonObjectTask
from stepcache_core.tasks.schema import (
    CANONICAL_ASK,
    JsonSchemaTask,
    SchemaSpec,
    detect_schema_spec,
    schema_request,
)
from stepcache_core.tasks.schema.spec import FORMAT_CHECKER
from stepcache_core.types import Completion, StepOutcome
from tests.conftest import HashEmbedder, ScriptedBackend

TASK = JsonSchemaTask()
ASK = "Describe the lead of the acme rocket project."

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "minLength": 1},
        "age": {"type": "integer", "minimum": 18, "maximum": 99},
        "email": {"type": "string", "format": "email"},
        "address": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "country": {"type": "string"}},
            "required": ["city", "country"],
            "additionalProperties": False,
        },
        "team": {"type": "array", "items": {"$ref": "#/$defs/member"}, "minItems": 2},
    },
    "required": ["name", "age", "email", "address", "team"],
    "additionalProperties": False,
    "$defs": {
        "member": {
            "type": "object",
            "properties": {
                "who": {"type": "string"},
                "role": {"enum": ["dev", "ops", "design"]},
            },
            "required": ["who", "role"],
            "additionalProperties": False,
        }
    },
}

ANSWER: dict[str, Any] = {
    "name": "Ada Stone",
    "age": 41,
    "email": "ada@acme.test",
    "address": {"city": "Lyon", "country": "France"},
    "team": [{"who": "Bo", "role": "dev"}, {"who": "Cy", "role": "ops"}],
}


def variant(**changes: Any) -> dict[str, Any]:
    """SCHEMA with `changes` applied: pointer text -> new sub-schema (None deletes it)."""
    schema = copy.deepcopy(SCHEMA)
    for pointer, value in changes.items():
        *path, last = pointer.replace("__", "/").split("/")
        node = schema
        for part in path:
            node = node[part]
        if value is None:
            del node[last]
        else:
            node[last] = value
    return schema


def spec_of(prompt: str) -> SchemaSpec:
    spec = TASK.detect(prompt)
    assert spec is not None, prompt
    return spec


def asked_pointers(prompt: str) -> list[str]:
    """The pointers a patch prompt asks for (one ``"/pointer": schema`` line each)."""
    return re.findall(r'^"(/[^"]*)": ', prompt, re.M)


def validates(text: str, schema: dict[str, Any]) -> bool:
    """Independent of the task: exactly the object (fence allowed), valid against `schema`."""
    body = re.sub(r"^```[^\n]*\n|\n```$", "", text.strip())
    validator = Draft202012Validator(schema, format_checker=FORMAT_CHECKER)
    return bool(validator.is_valid(json.loads(body)))


class Recorder:
    """A patch `generate` that answers with `reply(prompt)` and records every prompt."""

    def __init__(self, reply: dict[str, Any]) -> None:
        self.reply = reply
        self.prompts: list[str] = []

    def __call__(self, prompt: str, max_tokens: int | None, assemble: Any = None) -> Completion:
        self.prompts.append(prompt)
        return Completion(json.dumps({k: self.reply[k] for k in asked_pointers(prompt)}))


def patch(
    cached_schema: dict[str, Any], new_schema: dict[str, Any], reply: dict[str, Any]
) -> tuple[list[StepOutcome], list[Check], Recorder]:
    """Verify ANSWER (cached under `cached_schema`) against `new_schema`, then patch it."""
    old, new = spec_of(schema_request(ASK, cached_schema)), spec_of(schema_request(ASK, new_schema))
    steps = TASK.segment(json.dumps(ANSWER, indent=2))
    checks = TASK.verify(steps, old, new)
    generate = Recorder(reply)
    out = TASK.patch(PatchRequest(schema_request(ASK, new_schema), new, steps, checks), generate)
    assert out is not None
    return out, checks, generate


def served(out: list[StepOutcome]) -> dict[str, Any]:
    value: dict[str, Any] = json.loads("".join(o.text for o in out))
    return value


# --- detection --------------------------------------------------------------------------------


def test_schema_request_is_detected_with_refs_inlined() -> None:
    prompt = schema_request(ASK, SCHEMA)
    assert CANONICAL_ASK in prompt
    spec = spec_of(prompt)
    assert "$ref" not in spec.schema_json and "$defs" not in spec.schema_json
    member = spec.at(("team", 0, "role"))[0]
    assert member == {"enum": ["dev", "ops", "design"]}
    assert spec.at(("team", 0, "salary")) == (None, "/team/0/salary is not in the schema")


def test_a_schema_in_prose_is_detected_fenced_or_inline() -> None:
    body = json.dumps(SCHEMA)
    fenced = f"Return a JSON object that matches this schema:\n```json\n{body}\n```\nfor Ada."
    inline = f"Give me an object conforming to the schema {body} for Ada."
    for prompt in (fenced, inline):
        spec = spec_of(prompt)
        assert spec.identity == spec_of(schema_request(ASK, SCHEMA)).identity
    # The fence belongs to the schema's span: neither it nor the schema is in the residue.
    assert TASK.residue(fenced, spec_of(fenced)) == ("for", "Ada")  # a name keeps its case


@pytest.mark.parametrize(
    "prompt",
    [
        # example objects are not schemas
        'Return an object matching the schema of this example: {"name": "Ann", "age": 30}',
        'Return a JSON object that matches the schema {"properties": {"color": "red"}}',
        'Return an object matching this schema: {"type": "array", "items": {"type": "string"}}',
        # not a request for one object matching it
        f"Explain this schema: {json.dumps(SCHEMA)}",
        f"Is this a valid schema for a person? {json.dumps(SCHEMA)}",
        f"Write Python code that returns data matching this schema: {json.dumps(SCHEMA)}",
        f"Return a list of three objects matching this schema: {json.dumps(SCHEMA)}",
        f"Return YAML data matching this schema: {json.dumps(SCHEMA)}",
        f"Here is a schema: {json.dumps(SCHEMA)}",
        # two schemas: which one is meant is a guess
        f"Return an object matching this schema {json.dumps(SCHEMA)} or {json.dumps(SCHEMA)}",
    ],
)
def test_what_is_not_a_schema_request_is_refused(prompt: str) -> None:
    assert detect_schema_spec(prompt) is None


@pytest.mark.parametrize(
    "ref",
    ["https://example.com/member.json", "#/$defs/missing", "#/$defs/member"],
)
def test_remote_missing_and_recursive_refs_are_refused(ref: str) -> None:
    schema = copy.deepcopy(SCHEMA)
    member = schema["$defs"]["member"]
    member["properties"]["mentor"] = {"$ref": ref}  # #/$defs/member: a recursive ref
    assert detect_schema_spec(schema_request(ASK, schema)) is None


def test_builtins_keep_prompts_the_json_task_owns_and_take_schema_requests() -> None:
    registry = TaskRegistry.with_builtins()
    assert registry.names() == ["linear_equation", "json_object", "json_schema"]
    owner = registry.detect(schema_request(ASK, SCHEMA))
    assert owner is not None and owner[0].name == "json_schema"
    prose = f"Return a JSON object that matches this schema: {json.dumps(SCHEMA)}"
    owner = registry.detect(prose)
    # A nested schema is the schema task's, wherever it is written; a flat one stays JSON's.
    assert owner is None or owner[0].name == "json_schema"
    flat = {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}
    owner = registry.detect(f"Return a JSON object that matches this schema: {json.dumps(flat)}")
    assert owner is not None and isinstance(owner[0], JsonObjectTask)


# --- verification and patching -------------------------------------------------------------


def test_an_unchanged_schema_reuses_every_leaf_and_the_answer_validates() -> None:
    spec = spec_of(schema_request(ASK, SCHEMA))
    text = json.dumps(ANSWER, indent=2)
    steps = TASK.segment(text)
    assert "".join(steps) == text and len(steps) == 2 + 9  # prefix, 9 leaves, suffix
    assert all(c.ok for c in TASK.verify(steps, spec, spec))
    assert TASK.integrity(text, spec).ok


def test_adding_a_nested_field_asks_only_for_that_pointer() -> None:
    props = dict(SCHEMA["properties"]["address"]["properties"], zip={"type": "string"})
    new = variant(
        properties__address__properties=props,
        properties__address__required=["city", "country", "zip"],
    )
    out, checks, generate = patch(SCHEMA, new, {"/address/zip": "69001"})
    assert [c.ok for c in checks[1:-1]] == [True] * 9
    assert "missing required /address/zip" in checks[-1].reason
    (prompt,) = generate.prompts
    assert asked_pointers(prompt) == ["/address/zip"]
    assert '"Ada Stone"' in prompt  # the kept values are context, not asked again
    assert served(out)["address"] == {"city": "Lyon", "country": "France", "zip": "69001"}
    patched = [o.text for o in out if o.origin is StepOrigin.PATCHED]
    assert len(patched) == 1 and '"zip": "69001"' in patched[0]
    text = "".join(o.text for o in out)
    assert validates(text, new) and TASK.integrity(text, spec_of(schema_request(ASK, new))).ok


def test_a_changed_enum_rechecks_each_value_against_it() -> None:
    new = variant(**{"$defs__member__properties__role": {"enum": ["dev", "qa", "design"]}})
    out, checks, generate = patch(SCHEMA, new, {"/team/1/role": "qa"})
    by_reason = {c.reason for c in checks if not c.ok}
    assert by_reason == {"/team/1/role: 'ops' is not one of ['dev', 'qa', 'design']"}
    assert asked_pointers(generate.prompts[0]) == ["/team/1/role"]
    value = served(out)
    assert value["team"] == [{"who": "Bo", "role": "dev"}, {"who": "Cy", "role": "qa"}]
    assert validates("".join(o.text for o in out), new)


def test_a_renamed_nested_key_is_patched() -> None:
    new = variant(
        properties__address__properties={
            "town": {"type": "string"},
            "country": {"type": "string"},
        },
        properties__address__required=["town", "country"],
    )
    out, checks, generate = patch(SCHEMA, new, {"/address/town": "Lyon"})
    failed = [c.reason for c in checks[1:-1] if not c.ok]
    assert failed == ["/address/city is not in the schema"]
    assert asked_pointers(generate.prompts[0]) == ["/address/town"]
    assert served(out)["address"] == {"town": "Lyon", "country": "France"}
    assert validates("".join(o.text for o in out), new)


def test_numeric_bounds_and_formats_are_checked_per_leaf() -> None:
    new = variant(
        properties__age={"type": "integer", "minimum": 50},
        properties__email={"type": "string", "format": "ipv4"},
    )
    out, checks, generate = patch(SCHEMA, new, {"/age": 55, "/email": "10.0.0.1"})
    assert asked_pointers(generate.prompts[0]) == ["/age", "/email"]
    assert all(c.wrong for c in checks if not c.ok and c.reason.startswith(("/age", "/email")))
    assert validates("".join(o.text for o in out), new)


def test_array_items_up_to_min_items_are_asked_as_whole_objects() -> None:
    new = variant(properties__team={"type": "array", "items": SCHEMA["$defs"]["member"]})
    new["properties"]["team"]["minItems"] = 3
    member = {"who": "Di", "role": "design"}
    out, _, generate = patch(SCHEMA, new, {"/team/2": member})
    assert asked_pointers(generate.prompts[0]) == ["/team/2"]
    assert served(out)["team"][2] == member
    assert validates("".join(o.text for o in out), new)


def test_patch_uses_schema_constrained_decoding_when_generate_offers_it() -> None:
    class Constrained(Recorder):
        def __init__(self) -> None:
            super().__init__({})
            self.schemas: list[dict[str, Any]] = []

        def complete_json(
            self, prompt: str, schema: dict[str, Any], max_tokens: int | None
        ) -> Completion:
            self.prompts.append(prompt)
            self.schemas.append(schema)
            return Completion('{"/team/1/role": "qa"}')

    new = variant(**{"$defs__member__properties__role": {"enum": ["dev", "qa"]}})
    old, spec = spec_of(schema_request(ASK, SCHEMA)), spec_of(schema_request(ASK, new))
    steps = TASK.segment(json.dumps(ANSWER, indent=2))
    generate = Constrained()
    request = PatchRequest(schema_request(ASK, new), spec, steps, TASK.verify(steps, old, spec))
    out = TASK.patch(request, generate)
    assert out is not None and served(out)["team"][1]["role"] == "qa"
    assert generate.schemas == [
        {
            "type": "object",
            "properties": {"/team/1/role": {"enum": ["dev", "qa"]}},
            "required": ["/team/1/role"],
            "additionalProperties": False,
        }
    ]


def test_integrity_and_proof_of_a_wrong_answer() -> None:
    spec = spec_of(schema_request(ASK, SCHEMA))
    good = json.dumps(ANSWER)
    assert TASK.integrity(f"```json\n{good}\n```", spec).ok
    prose = TASK.integrity(f"Sure! {good}", spec)
    assert not prose.ok and not TASK.proven_wrong(good, spec, prose)
    bad_enum = json.dumps({**ANSWER, "team": [{"who": "Bo", "role": "boss"}, ANSWER["team"][1]]})
    failure = TASK.integrity(bad_enum, spec)
    assert not failure.ok and TASK.proven_wrong(bad_enum, spec, failure)
    extra_key = json.dumps({**ANSWER, "nickname": "Ace"})
    failure = TASK.integrity(extra_key, spec)
    assert not failure.ok and not TASK.proven_wrong(extra_key, spec, failure)
    missing = json.dumps({k: v for k, v in ANSWER.items() if k != "email"})
    failure = TASK.integrity(missing, spec)
    assert not failure.ok and not TASK.proven_wrong(missing, spec, failure)


def test_a_format_the_task_cannot_check_is_never_taken_on_trust() -> None:
    new = variant(properties__email={"type": "string", "format": "uri"})
    spec = spec_of(schema_request(ASK, new))
    failure = TASK.integrity(json.dumps(ANSWER), spec)
    assert not failure.ok and "cannot check format ['uri']" in failure.reason
    assert not failure.wrong
    steps = TASK.segment(json.dumps(ANSWER))
    old = spec_of(schema_request(ASK, SCHEMA))
    assert "cannot check format" in TASK.verify(steps, old, spec)[3].reason


def test_a_prose_change_is_a_core_difference_in_the_residue() -> None:
    spec = spec_of(schema_request(ASK, SCHEMA))
    for other in (
        "Describe the lead of the acme balloon project.",  # a value in prose
        "Describe the two leads of the acme rocket project.",  # a count
        "Décris la responsable du projet de fusée acme.",  # a language
    ):
        prompt = schema_request(other, SCHEMA)
        assert TASK.residue(prompt, spec_of(prompt)) != TASK.residue(
            schema_request(ASK, SCHEMA), spec
        )
    reworded = schema_request(f"Please, {ASK}", SCHEMA)
    assert TASK.residue(reworded, spec_of(reworded)) == TASK.residue(
        schema_request(ASK, SCHEMA), spec
    )


# --- through the engine ------------------------------------------------------------------------


def model(prompt: str) -> str:
    """A scripted model: a full answer to a request, the asked values to a patch prompt."""
    asked = asked_pointers(prompt)
    if asked:
        values = {"/address/zip": "69001", "/team/1/role": "qa", "/address/town": "Lyon"}
        return json.dumps({p: values[p] for p in asked})
    answer = dict(ANSWER)
    if "balloon" in prompt:
        answer["name"] = "Bea Lune"
    return "```json\n" + json.dumps(answer, indent=2) + "\n```"


def test_engine_patches_only_the_new_nested_pointer_and_skips_a_prose_change() -> None:
    cache = StepCache(
        InMemoryStore(),
        embedder=HashEmbedder(),
        tasks=TaskRegistry.with_builtins(),
        config=CacheConfig(),
    )
    backend = ScriptedBackend(model)
    first = cache.generate(schema_request(ASK, SCHEMA), backend)
    assert first.path is Path.MISS and first.verified and first.task == "json_schema"

    props = dict(SCHEMA["properties"]["address"]["properties"], zip={"type": "string"})
    new = variant(
        properties__address__properties=props,
        properties__address__required=["city", "country", "zip"],
    )
    second = cache.generate(schema_request(ASK, new), backend)
    assert second.path is Path.PATCH and second.verified
    assert backend.calls == 2 and asked_pointers(backend.prompts[-1]) == ["/address/zip"]
    assert validates(second.text, new)
    assert json.loads(second.text.strip("`\njson"))["address"]["zip"] == "69001"
    assert sum(s.origin is StepOrigin.PATCHED for s in second.steps) == 1

    third = cache.generate(schema_request(ASK, new), backend)
    assert third.path is Path.EXACT and third.text == second.text and backend.calls == 2

    balloon = "Describe the lead of the acme balloon project."
    fourth = cache.generate(schema_request(balloon, new), backend)
    assert fourth.path is Path.SKIP and backend.calls == 3
    assert "'rocket' -> 'balloon'" in fourth.reason
    assert not asked_pointers(backend.prompts[-1])  # the model answered the whole request
    assert json.loads(fourth.text.strip("`\njson"))["name"] == "Bea Lune"


def test_only_draft_2020_12_is_read() -> None:
    for dialect in ("https://json-schema.org/draft/2020-12/schema", None):
        schema = dict(SCHEMA, **({"$schema": dialect} if dialect else {}))
        assert detect_schema_spec(schema_request(ASK, schema)) is not None
    draft7 = dict(SCHEMA, **{"$schema": "http://json-schema.org/draft-07/schema#"})
    assert detect_schema_spec(schema_request(ASK, draft7)) is None


def test_a_pydantic_model_schema_gets_the_same_machinery() -> None:
    pytest.importorskip("pydantic")  # an adapter-side dependency, not one of the core's
    from enum import StrEnum

    from pydantic import BaseModel, Field

    class Role(StrEnum):
        dev = "dev"
        ops = "ops"

    class Member(BaseModel):
        who: str
        role: Role

    class Address(BaseModel):
        city: str
        country: str = Field(description="the country's English name")

    class Lead(BaseModel):
        name: str
        age: int = Field(ge=18, le=99)
        email: str
        address: Address = Field(description="where the lead lives")
        team: list[Member]

    old_schema = Lead.model_json_schema()
    spec = spec_of(schema_request(ASK, old_schema))
    text = json.dumps(ANSWER, indent=2)
    assert TASK.integrity(text, spec).ok and Lead.model_validate_json(text).age == 41
    # The role enum loses "ops": only that value is asked again.
    new_schema = copy.deepcopy(old_schema)
    new_schema["$defs"]["Role"]["enum"] = ["dev", "qa"]
    new = spec_of(schema_request(ASK, new_schema))
    steps = TASK.segment(text)
    checks = TASK.verify(steps, spec, new)
    generate = Recorder({"/team/1/role": "qa"})
    out = TASK.patch(PatchRequest(schema_request(ASK, new_schema), new, steps, checks), generate)
    assert out is not None and asked_pointers(generate.prompts[0]) == ["/team/1/role"]
    served_text = "".join(o.text for o in out)
    assert TASK.integrity(served_text, new).ok and validates(served_text, new_schema)
    assert json.loads(served_text)["team"] == [
        {"who": "Bo", "role": "dev"},
        {"who": "Cy", "role": "qa"},
    ]


def test_a_reworded_description_in_the_schema_asks_for_the_values_it_describes() -> None:
    """Titles and descriptions are prose: the address is now the office's, the age in months."""
    address = dict(SCHEMA["properties"]["address"], description="the lead's office address")
    new = variant(
        properties__address=address,
        properties__age={"type": "integer", "description": "age in months"},
    )
    office = {"city": "Grenoble", "country": "France"}
    out, checks, generate = patch(SCHEMA, new, {"/age": 492, "/address": office})
    failed = sorted(c.reason for c in checks[1:-1] if not c.ok)
    assert failed == [
        "/address/city: the schema words it otherwise",
        "/address/country: the schema words it otherwise",
        "/age: the schema words it otherwise",
    ]
    # No leaf of the address is kept: it is asked whole.
    assert asked_pointers(generate.prompts[0]) == ["/age", "/address"]
    assert served(out)["address"] == office and served(out)["age"] == 492
    assert served(out)["name"] == "Ada Stone"


def test_a_schema_for_another_kind_of_object_is_a_core_change() -> None:
    """Same words, another object: a company's name is not the person's it was cached for."""
    ask = "Fill this in from the text: Ada Stone founded Stone Rockets in 2011."

    def flat(*keys: str) -> dict[str, Any]:
        return {"type": "object", "properties": {k: {"type": "string"} for k in keys}}

    person, company = (
        schema_request(ask, flat("name", "born")),
        schema_request(ask, flat("name", "founded")),
    )
    assert TASK.residue(person, spec_of(person)) == TASK.residue(company, spec_of(company))
    delta = TASK.compare(person, spec_of(person), company, spec_of(company))
    assert delta.core and "only 1 of the 2 properties" in delta.reason
    grown = schema_request(ask, flat("name", "born", "city"))
    assert not TASK.compare(person, spec_of(person), grown, spec_of(grown)).core


# --- fuzz ---------------------------------------------------------------------------------------

FUZZ = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SCALARS = st.none() | st.booleans() | st.integers() | st.text(max_size=6)
VALUES = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=12,
)


@FUZZ
@given(st.dictionaries(st.text(max_size=5), VALUES, max_size=5), st.sampled_from([None, 2, 4]))
def test_any_object_splits_into_leaves_that_join_back_and_verify_without_error(
    obj: dict[str, Any], indent: int | None
) -> None:
    text = "Here:\n```json\n" + json.dumps(obj, indent=indent) + "\n```"
    steps = TASK.segment(text)
    assert "".join(steps) == text
    spec = spec_of(schema_request(ASK, SCHEMA))
    checks = TASK.verify(steps, spec, spec)
    assert len(checks) == len(steps) and not checks[0].ok  # prose before the object
    assert TASK.integrity(text, spec).ok is False


@FUZZ
@given(st.text(alphabet='{}[]":,abtype objectproperties $ref#/ \n', max_size=120))
def test_detection_never_raises(prompt: str) -> None:
    spec = detect_schema_spec(f"Return an object matching this schema: {prompt}")
    assert spec is None or spec.identity


def test_engine_repairs_only_the_proven_wrong_value_of_a_model_answer() -> None:
    cache = StepCache(InMemoryStore(), embedder=HashEmbedder(), tasks=TaskRegistry.with_builtins())

    def wrong_role(prompt: str) -> str:
        asked = asked_pointers(prompt)
        if asked:
            return json.dumps({p: "ops" for p in asked})
        answer = copy.deepcopy(ANSWER)
        answer["team"][1]["role"] = "boss"
        return json.dumps(answer, indent=2)

    backend = ScriptedBackend(wrong_role)
    result = cache.generate(schema_request(ASK, SCHEMA), backend)
    assert result.path is Path.MISS and result.verified and "repaired" in result.reason
    assert backend.calls == 2 and asked_pointers(backend.prompts[1]) == ["/team/1/role"]
    assert validates(result.text, SCHEMA) and json.loads(result.text) == ANSWER


def test_engine_serves_an_unproven_model_answer_as_written() -> None:
    """Prose around the object or an extra key fails the check but proves nothing."""
    cache = StepCache(InMemoryStore(), embedder=HashEmbedder(), tasks=TaskRegistry.with_builtins())
    chatty = "Sure! Here it is:\n" + json.dumps({**ANSWER, "nickname": "Ace"})
    backend = ScriptedBackend(lambda _: chatty)
    result = cache.generate(schema_request(ASK, SCHEMA), backend)
    assert result.text == chatty and not result.verified and backend.calls == 1


class JsonAwareBackend(ScriptedBackend):
    """A scripted backend that records the schemas it is asked to match."""

    def __init__(self, answer: Any) -> None:
        super().__init__(answer)
        self.schemas: list[Any] = []

    def complete_json(self, prompt: str, schema: Any, max_tokens: int | None = None) -> Any:
        self.schemas.append(schema)
        return self.complete(prompt, max_tokens)


def test_engine_patches_through_schema_constrained_decoding_when_the_backend_has_it() -> None:
    cache = StepCache(InMemoryStore(), embedder=HashEmbedder(), tasks=TaskRegistry.with_builtins())
    backend = JsonAwareBackend(model)
    cache.generate(schema_request(ASK, SCHEMA), backend)
    assert backend.schemas == []  # a fresh answer is the model's own, unconstrained
    props = dict(SCHEMA["properties"]["address"]["properties"], zip={"type": "string"})
    new = variant(
        properties__address__properties=props,
        properties__address__required=["city", "country", "zip"],
    )
    patched = cache.generate(schema_request(ASK, new), backend)
    assert patched.path is Path.PATCH and validates(patched.text, new)
    assert len(backend.schemas) == 1 and "/address/zip" in json.dumps(backend.schemas[0])


# --- values the prose states -------------------------------------------------------------------

JOB: dict[str, Any] = {
    "type": "object",
    "properties": {
        "title": {"type": "string"},
        "company": {"type": "object", "properties": {"name": {"type": "string"}}},
    },
    "required": ["title", "company"],
}
FLIGHT: dict[str, Any] = {
    "type": "object",
    "properties": {
        "passenger": {"type": "object", "properties": {"name": {"type": "string"}}},
        "origin": {"type": "string"},
        "bags": {"type": "integer"},
    },
    "required": ["passenger", "origin"],
}


def job_prompt(lead: str) -> str:
    return (
        f"{lead} for a job posting for a Backend Engineer at Kestrel Analytics:\n"
        f"```json\n{json.dumps(JOB)}\n```"
    )


def flight_prompt(who: str, origin: str, schema: dict[str, Any]) -> str:
    return (
        f"Return a JSON object that matches this schema for a flight booking for {who} "
        f"departing from {origin}:\n```json\n{json.dumps(schema)}\n```"
    )


MISSTATED = json.dumps(
    {"title": "Backend Engineer at Kestrel Analytics", "company": {"name": "Kestrel Analytics"}}
)


def test_an_answer_that_misstates_a_value_the_prose_states_is_unverified_not_wrong() -> None:
    spec = spec_of(job_prompt("Output an object valid against the schema"))
    assert spec.stated == ("Backend Engineer", "Kestrel Analytics")
    check = TASK.integrity(MISSTATED, spec)
    assert not check.ok and not check.wrong
    assert check.reason == "the request states 'Backend Engineer'; no value equals it"
    right = {"title": "backend  engineer", "company": {"name": "Kestrel Analytics"}}
    assert TASK.integrity(json.dumps(right), spec).ok  # case and spacing folded


def test_an_answer_holding_every_stated_value_verifies() -> None:
    spec = spec_of(flight_prompt("Elena Rossi", "Rome", FLIGHT))
    assert spec.stated == ("Elena Rossi", "Rome")
    answer = {"passenger": {"name": "Elena Rossi"}, "origin": "Rome", "bags": 1}
    assert TASK.integrity(json.dumps(answer), spec).ok
    assert not TASK.integrity(json.dumps({**answer, "origin": "Rome, Italy"}), spec).ok


def test_quoted_strings_and_numbers_in_prose_are_stated_values() -> None:
    prompt = flight_prompt("Elena Rossi", "Rome", FLIGHT).replace(
        ":\n", " with 2 bags, 'window':\n"
    )
    spec = spec_of(prompt)
    assert spec.stated == ("window", "2", "Elena Rossi", "Rome")
    answer = {"passenger": {"name": "Elena Rossi"}, "origin": "Rome", "bags": 2, "seat": "window"}
    assert TASK.integrity(json.dumps(answer), spec).ok
    check = TASK.integrity(json.dumps({**answer, "bags": 3}), spec)
    assert not check.ok and not check.wrong and "'2'" in check.reason


def test_a_patched_answer_keeping_a_stale_stated_value_fails_integrity() -> None:
    old_prompt = flight_prompt("Elena Rossi", "Rome", FLIGHT)
    props = dict(FLIGHT["properties"], cabin={"type": "string"})
    new_schema = dict(FLIGHT, properties=props, required=["passenger", "origin", "cabin"])
    new_prompt = flight_prompt("Maria Lopez", "Lisbon", new_schema)
    old, new = spec_of(old_prompt), spec_of(new_prompt)
    assert new.stated == ("Maria Lopez", "Lisbon") and new.identity != old.identity
    steps = TASK.segment(json.dumps({"passenger": {"name": "Elena Rossi"}, "origin": "Rome"}))
    checks = TASK.verify(steps, old, new)
    out = TASK.patch(PatchRequest(new_prompt, new, steps, checks), Recorder({"/cabin": "economy"}))
    assert out is not None and served(out)["passenger"]["name"] == "Elena Rossi"
    check = TASK.integrity("".join(o.text for o in out), new)
    assert not check.ok and not check.wrong and "'Maria Lopez'" in check.reason


def test_a_prompt_without_capitalised_prose_states_nothing() -> None:
    spec = spec_of(schema_request(ASK, SCHEMA))
    assert spec.stated == ()
    assert TASK.integrity(json.dumps(ANSWER), spec).ok


def test_engine_never_reuses_an_answer_that_misstates_a_stated_value() -> None:
    cache = StepCache(InMemoryStore(), embedder=HashEmbedder(), tasks=TaskRegistry.with_builtins())
    backend = ScriptedBackend(lambda _: MISSTATED)
    first = cache.generate(job_prompt("Output an object valid against the schema"), backend)
    assert first.path is Path.MISS and first.text == MISSTATED  # served as written
    reworded = cache.generate(job_prompt("Return a JSON object that matches this schema"), backend)
    assert reworded.path in (Path.MISS, Path.SKIP), reworded.reason
    assert backend.calls == 2 and not reworded.verified and not first.verified

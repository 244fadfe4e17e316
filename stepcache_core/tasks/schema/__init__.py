"""The JSON Schema task family, one module per stage, in request order:

- `spec`: `SchemaSpec`, the schema a request's object must match (local refs inlined);
- `parse`: detection, prompt -> `SchemaSpec`, and `schema_request` for a schema passed explicitly;
- `wording`: the reviewed lexicon of phrasings requests may differ in;
- `steps`: an answer split into one step per leaf value at a JSON Pointer;
- `compare`: how a new schema differs from a cached one;
- `verify`: each leaf checked against the new schema, the whole answer's integrity;
- `patch`: the failing and missing pointers asked from the backend and merged back;
- `task`: `JsonSchemaTask`, which wires the stages together.
"""

from stepcache_core.tasks.schema.parse import CANONICAL_ASK, detect_schema_spec, schema_request
from stepcache_core.tasks.schema.patch import SchemaGenerate
from stepcache_core.tasks.schema.spec import SchemaSpec
from stepcache_core.tasks.schema.task import JsonSchemaTask

__all__ = [
    "CANONICAL_ASK",
    "JsonSchemaTask",
    "SchemaGenerate",
    "SchemaSpec",
    "detect_schema_spec",
    "schema_request",
]

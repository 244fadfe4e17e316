"""The JSON-object task family, one module per stage, in request order:

- `spec`: `JsonSpec`, the object a prompt asks for (keys, value schemas, subject);
- `parse`: detection, prompt -> `JsonSpec` (`detect_json_spec`);
- `text`: the JSON reader every stage uses (objects in free text, one step per member);
- `compare`: how a new request differs from a cached one (`compare_specs`) and its lookup shapes;
- `verify`: each member step checked against the new request, the whole answer's integrity;
- `patch`: the missing keys asked from the backend and merged back in the cached layout;
- `task`: `JsonObjectTask`, which wires the stages together.
"""

from stepcache_core.tasks.json.parse import detect_json_spec
from stepcache_core.tasks.json.spec import FILLER_WORDS, NON_EMPTY, JsonSpec
from stepcache_core.tasks.json.task import JsonObjectTask
from stepcache_core.tasks.json.verify import MemberCheck

__all__ = [
    "FILLER_WORDS",
    "NON_EMPTY",
    "JsonObjectTask",
    "JsonSpec",
    "MemberCheck",
    "detect_json_spec",
]

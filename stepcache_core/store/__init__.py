"""Where cached requests and their steps live: the StepStore protocol, Chroma and in-memory stores.

One record per cached request. Its steps travel inside the same record (a JSON document carrying a
sha256 digest of its content), so an entry is written by a single upsert of that record: a reader
sees the whole entry or none of it, never a request without its steps, and a damaged document
reads as absent. Vectors are explicit (``embedding_function=None``). Scope isolation is
structural: the vectors of each scope (namespace, tenant, context, task) live in a collection of
their own, so a similarity query runs without a metadata filter and cannot reach another scope.

Bounds live in the store, the one place every process's writes pass through: ``max_entries``
(eviction of the least recently *created* entries) and ``ttl_seconds`` (expired entries are neither
returned nor used as templates, and are purged on write).

Modules: `entry` (Entry, Neighbour, entry_key, Bounds), `protocol` (StepStore), `memory`
(InMemoryStore), `unavailable` (UnavailableStore), `codec` (an entry as a Chroma row), `chroma`
(ChromaStore), with its connection in `chroma_connection` and its counters in `chroma_counters`.
"""

from stepcache_core.store.chroma import ChromaStore
from stepcache_core.store.codec import SCHEMA_VERSION
from stepcache_core.store.codec import _decode as _decode  # tests read rows with it
from stepcache_core.store.codec import _encode as _encode  # tests write rows with it
from stepcache_core.store.entry import Bounds, Entry, Neighbour, entry_key, normalize_prompt
from stepcache_core.store.memory import InMemoryStore
from stepcache_core.store.protocol import StepStore
from stepcache_core.store.unavailable import UnavailableStore

__all__ = [
    "SCHEMA_VERSION",
    "Bounds",
    "ChromaStore",
    "Entry",
    "InMemoryStore",
    "Neighbour",
    "StepStore",
    "UnavailableStore",
    "entry_key",
    "normalize_prompt",
]

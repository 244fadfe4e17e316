"""Where cached requests and their steps live (the module moved here; split next)."""

from stepcache_core.store.chroma import *  # noqa: F403
from stepcache_core.store.chroma import SCHEMA_VERSION as SCHEMA_VERSION
from stepcache_core.store.chroma import __all__ as __all__
from stepcache_core.store.chroma import _decode as _decode
from stepcache_core.store.chroma import _encode as _encode

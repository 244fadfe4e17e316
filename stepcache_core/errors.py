"""The small exception tree of StepCache."""


class StepCacheError(Exception):
    """Base class of every StepCache error."""


class ConfigError(StepCacheError, ValueError):
    """A configuration value is out of range or inconsistent."""


class InvalidPromptError(StepCacheError, ValueError):
    """A prompt is not a non-empty string (or is larger than the configured maximum)."""


class StoreError(StepCacheError):
    """The step store failed (unreachable, corrupt row, schema mismatch)."""


class SchemaVersionError(StoreError):
    """The store was written by an unknown or incompatible StepCache schema version."""


class BackendError(StepCacheError):
    """A backend failed to produce a completion."""


class ModelAssetError(StepCacheError):
    """The bundled local model could not be assembled (missing or corrupt package part)."""

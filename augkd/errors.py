"""Errors a user can fix. Each message is one plain sentence that names the fix."""


class AugkdError(Exception):
    """Base of every error augkd raises on purpose for bad input."""


class ConfigError(AugkdError, ValueError):
    """A config or search-space value is missing, unknown or out of range."""


class DataError(AugkdError, ValueError):
    """Data could not be found, decoded or matched to the teacher."""


class ModelError(AugkdError, ValueError):
    """An architecture or checkpoint cannot be built or loaded."""


class DivergedError(AugkdError, RuntimeError):
    """Training produced a non-finite loss."""


class CacheError(AugkdError, RuntimeError):
    """A stage-cache artifact stays corrupt, or its producer failed on bad input."""


class PreflightError(AugkdError, RuntimeError):
    """What every trial needs (data, teacher, GPU) could not be loaded on a worker."""

"""Errors a user can fix, and the exit code each one ends a command with.

Each message is one plain sentence that names the key or file and the fix. This
module imports nothing heavy: `search.py` reads it before Ray or torch load.
"""

from enum import IntEnum


class ExitCode(IntEnum):
    """The failure policy of every entry point (docs/errors.md)."""

    OK = 0
    """The command did what was asked."""
    BUG = 1
    """An unexpected exception: a defect in augkd or a library; the traceback is shown."""
    BAD_INPUT = 2
    """A config, flag, file or storage the user can fix; one sentence names it."""
    ALL_TRIALS_FAILED = 3
    """A search ran, but every trial failed; the sentence names their error."""
    WORKERS_LOST = 4
    """Ray lost the workers of a task more often than its retries allow (spot reclaims,
    out-of-memory kills); the work done is kept and the sentence gives the command that
    continues."""
    INTERRUPTED = 130
    """Ctrl-C (SIGINT), as shells report 128 + 2."""


class AugkdError(Exception):
    """Base of every error augkd raises on purpose for bad input."""

    exit_code: ExitCode = ExitCode.BAD_INPUT
    label = "error"
    """What the one printed line starts with."""


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


class ResourceError(AugkdError, RuntimeError):
    """A stage would need more memory than its device has (augkd.method.memory): refused before
    it allocates, naming the key that sets its size."""


class PreflightError(AugkdError, RuntimeError):
    """What every trial needs (data, teacher, GPU) could not be loaded on a worker."""


class GpuError(AugkdError, RuntimeError):
    """Ray gave a worker a GPU that torch on that node cannot use (driver, torch build)."""


class AccessError(AugkdError, PermissionError):
    """A location the search names (bucket, prefix) cannot be read or written from a worker,
    or lies in another region than the cluster."""


class WorkersLostError(AugkdError, RuntimeError):
    """A task before the trials lost its worker more often than its retries allow."""

    exit_code = ExitCode.WORKERS_LOST


class AllTrialsFailedError(AugkdError, RuntimeError):
    """A search in which no trial succeeded did not do what was asked."""

    exit_code = ExitCode.ALL_TRIALS_FAILED


class Interrupted(AugkdError):
    """Ctrl-C stopped the command; the message says what was kept and how to go on."""

    exit_code = ExitCode.INTERRUPTED
    label = "interrupted"

"""What every entry point shares (the `augkd` commands and `search.py`): the failure
policy that turns how a command ended into one line and an exit code, argument types
that refuse nonsense, and library logging quietened at its source.
"""

from __future__ import annotations

import argparse
import logging
import sys
import traceback
import warnings
from collections.abc import Callable

from augkd.basics.errors import AugkdError, ExitCode

LIBRARY_LOG_LEVELS = {
    "mlflow.store.db.utils": logging.WARNING,  # "Creating initial MLflow database tables..."
    "alembic": logging.WARNING,  # MLflow's schema migrations, step by step
    "optuna": logging.WARNING,  # "A new study created in memory with name: ..."
}
"""Loggers whose INFO lines say nothing a user acts on; their warnings still show."""
LIBRARY_NOTICES = {
    # Ray turns on token auth for a new local cluster (as it should) and warns that it did.
    "ray._private.authentication.authentication_token_setup": (
        "Token authentication is enabled for this Ray cluster",
    ),
    # Tune's results at the end of a fit: a trial cut (Ctrl-C, a time budget) before its
    # first report has no result file yet, which is its normal state; --resume runs it.
    "ray.tune.analysis.experiment_analysis": ("Failed to fetch metrics for",),
}
"""Single warnings that are notices, dropped by their exact start; the logger's other
warnings (e.g. that token auth is off) still show."""
LIBRARY_WARNINGS = (
    # A resumed trial re-runs the epochs after its last checkpoint (exactly: the same
    # values) and reports them again; Optuna keeps the first and says so each time.
    r"The reported value is ignored because this `step=\d+` is already reported",
)
"""Python warnings (regexes of their start) that describe intended behaviour."""


def run_command(
    body: Callable[[], int | None], debug: bool = False, on_interrupt: str = "interrupted"
) -> int:
    """Run a command under the failure policy (augkd.basics.errors.ExitCode) and return its code.

    An AugkdError prints its one sentence; Ctrl-C prints ``on_interrupt``, the command's
    own word on what it left behind. ``debug`` adds the traceback. Any other exception
    is a defect and keeps its traceback (exit 1). The libraries' chatter is quietened
    first, for every command.
    """
    quiet_libraries()
    try:
        code = body()
    except AugkdError as error:
        _say(f"{error.label}: {error}", debug)
        return int(error.exit_code)
    except KeyboardInterrupt:
        _say(on_interrupt, debug)
        return int(ExitCode.INTERRUPTED)
    return int(ExitCode.OK if code is None else code)


def _say(line: str, debug: bool) -> None:
    if debug:
        traceback.print_exc()
    print(line, file=sys.stderr, flush=True)


class ArgumentParser(argparse.ArgumentParser):
    """A bad flag ends like any bad input: one line naming it, exit 2 (no usage dump)."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(ExitCode.BAD_INPUT, f"error: {message}; see `{self.prog} --help`.\n")


def add_debug_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--debug", action="store_true", help="show the traceback behind an error message"
    )


def positive_int(text: str) -> int:
    """argparse type: a whole number of at least 1 (seeds, trials, top-k)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got '{text}'") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, got {value}")
    return value


def positive_float(text: str) -> float:
    """argparse type: a number above 0 (seconds)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got '{text}'") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be above 0, got {text}")
    return value


class _DropNotices(logging.Filter):
    def __init__(self, starts: tuple[str, ...]) -> None:
        super().__init__()
        self.starts = starts

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.starts)


def quiet_libraries() -> None:
    """Drop the libraries' chatter from a command's first lines (real warnings stay)."""
    for name, level in LIBRARY_LOG_LEVELS.items():
        logging.getLogger(name).setLevel(level)
    for pattern in LIBRARY_WARNINGS:
        warnings.filterwarnings("ignore", message=pattern, category=UserWarning)
    for name, starts in LIBRARY_NOTICES.items():
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropNotices) for f in logger.filters):
            logger.addFilter(_DropNotices(starts))

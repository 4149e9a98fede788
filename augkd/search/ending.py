"""How a search ends, recorded truthfully on every exit path: trials still open are
closed as interrupted (Ctrl-C: resumable) or failed (a crash), in MLflow and in the
results table alike, the parent run says how the search ended, and the user gets the
one line that says what to do next.
"""

from __future__ import annotations

import logging
import shlex
import sys
from collections import Counter
from typing import TYPE_CHECKING, Any

from mlflow.entities import RunTag
from mlflow.tracking import MlflowClient

from augkd.errors import AllTrialsFailedError, Interrupted
from augkd.search.results import ResultsTable
from augkd.search.tracking import MLFLOW_STATUS, SEARCH_TAG, TRIAL_TAG

if TYPE_CHECKING:
    from augkd.search.runner import SearchOptions

log = logging.getLogger(__name__)

INTERRUPTED = "interrupted"
FAILED = "failed"
OPEN_ROW_STATUSES = (None, "running")


def close_open_trials(
    tracking_uri: str, experiment: str, search_name: str, search_path: str, outcome: str
) -> int:
    """Give every trial of the search still open (MLflow run RUNNING, table row running)
    the ``outcome``; returns how many MLflow runs were closed."""
    client = MlflowClient(tracking_uri)
    found = client.get_experiment_by_name(experiment)
    closed = 0
    if found is not None:
        runs = client.search_runs(
            [found.experiment_id],
            filter_string=f"tags.`{SEARCH_TAG}` = '{search_name}' and attributes.status = 'RUNNING'",
        )
        for run in runs:
            if run.data.tags.get(TRIAL_TAG) == "parent":
                continue
            client.log_batch(run.info.run_id, tags=[RunTag("augkd.status", outcome)])
            client.set_terminated(run.info.run_id, MLFLOW_STATUS[outcome])
            closed += 1
    table = ResultsTable(search_path)
    open_rows = [tid for tid, row in table.rows.items() if row.get("status") in OPEN_ROW_STATUSES]
    for trial_id in open_rows:
        table.update(trial_id, status=outcome)
    if open_rows:
        table.write()
    return closed


def close_after_exit(
    tracking_uri: str, experiment: str, search_name: str, search_path: str, error: BaseException
) -> None:
    """An exception ends the search (Ctrl-C, a crash, or our own error): whatever of it is
    still RUNNING is closed. Best effort: the original error is the one the user sees."""
    outcome = INTERRUPTED if isinstance(error, (KeyboardInterrupt, Interrupted)) else FAILED
    try:
        close_open_trials(tracking_uri, experiment, search_name, search_path, outcome)
        client = MlflowClient(tracking_uri)
        found = client.get_experiment_by_name(experiment)
        if found is None:
            return
        parents = client.search_runs(
            [found.experiment_id],
            filter_string=(
                f"tags.`{SEARCH_TAG}` = '{search_name}' and tags.`{TRIAL_TAG}` = 'parent' "
                "and attributes.status = 'RUNNING'"
            ),
        )
        tags = [RunTag("augkd.status", outcome)]
        if outcome == FAILED:
            tags.append(RunTag("augkd.error", f"{type(error).__name__}: {error}"[:5000]))
        for parent in parents:
            client.log_batch(parent.info.run_id, tags=tags)
            client.set_terminated(parent.info.run_id, MLFLOW_STATUS[outcome])
    except Exception as cleanup_error:  # the store itself may be what failed
        log.warning("could not close the search's MLflow runs: %s", cleanup_error)


def search_outcome(rows: list[dict[str, Any]], interrupted: bool) -> str:
    """completed, interrupted, or failed (every trial failed)."""
    if interrupted:
        return INTERRUPTED
    if rows and all(row.get("status") == FAILED for row in rows):
        return FAILED
    return "completed"


def all_failed_error(rows: list[dict[str, Any]], results_uri: str) -> AllTrialsFailedError:
    """One sentence naming the error the trials share (or the most common one)."""
    errors = Counter(_last_line(row.get("error")) for row in rows)
    message, count = errors.most_common(1)[0]
    if count == len(rows):
        shared = f"with the same error: {message}"
    else:
        shared = f"({count} of them with: {message}; each trial's error is in {results_uri})"
    return AllTrialsFailedError(f"All {len(rows)} trials failed {shared}")


def _last_line(error: Any) -> str:
    """A trial's error sentence; for a crash, the last line of its traceback."""
    lines = [line.strip() for line in str(error or "").splitlines() if line.strip()]
    return lines[-1] if lines else "no error was reported"


def resume_command(
    options: SearchOptions,
    name: str,
    storage: str,
    tracking_uri: str,
    program: str | None = None,
    resume: bool = True,
) -> str:
    """The exact command that continues this search with the same space and settings;
    ``resume`` False before Tune saved anything (it starts the search under the same name,
    reading the stages already cached)."""
    if program is None:
        program = sys.argv[0] if sys.argv[0].endswith("search.py") else "search.py"
    parts = ["python", program, *(["--resume"] if resume else []), "--name", name]
    parts += ["--storage", storage]
    parts += ["--space", options.space, "--tracking-uri", tracking_uri]
    if options.smoke_test:
        parts.append("--smoke-test")
    if options.num_samples is not None:
        parts += ["--num-samples", str(options.num_samples)]
    if options.address:
        parts += ["--address", options.address]
    for override in options.overrides:
        parts += ["--set", override]
    return shlex.join(parts)

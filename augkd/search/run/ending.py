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

from augkd.basics.errors import AllTrialsFailedError, ConfigError, Interrupted
from augkd.basics.metric_names import TEST_ACC1
from augkd.hardware.peaks import task_peak_metrics
from augkd.method.memory import KILLED_FOR_MEMORY
from augkd.search.answer.ties import tie_notes
from augkd.search.records.results import ResultsTable, format_leaderboard, load_results, rank
from augkd.search.records.tracking import MLFLOW_STATUS, SEARCH_TAG, TRIAL_TAG
from augkd.search.run.study import publish
from augkd.storage.locations import experiment_name

if TYPE_CHECKING:
    from augkd.search.prepare.request import SearchOptions, SearchPlace
    from augkd.search.prepare.space import SearchSpace

log = logging.getLogger(__name__)

INTERRUPTED = "interrupted"
FAILED = "failed"
TIME_BUDGET = "time_budget"
"""A search's own ending (not a trial's): its --time-budget ran out; the trials it cut are
interrupted, resumable."""
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


def record_end(
    space: SearchSpace,
    place: SearchPlace,
    seconds: float,
    interrupted: bool,
    echo,
    shared_seconds: float = 0.0,
    budget_reached: bool = False,
    shared_peaks: dict[str, dict[str, float]] | None = None,
) -> tuple[list[dict[str, Any]], str]:
    """After Tune's fit: the trials' ends, the study, the parent run (with where the
    compute went) and the leaderboard, whatever the outcome. Returns the rows and the outcome
    (completed, interrupted, failed, time_budget). ``budget_reached``: the time budget
    stopped the trials (``interrupted`` is then true too). ``shared_peaks``: the peak
    memory of each task before the trials, logged on the parent run."""
    experiment = experiment_name(space.name)
    if interrupted:
        close_open_trials(
            place.tracking_uri, experiment, place.name, place.search_path, INTERRUPTED
        )
    publish(place.search_path)  # before any exit: a resumed or failed search keeps its study
    rows = _rows(place.search_path)
    outcome = TIME_BUDGET if budget_reached else search_outcome(rows, interrupted)
    spent = compute_spent(rows, shared_seconds)
    peaks = task_peak_metrics(shared_peaks or {})
    finish_parent(space, place.tracking_uri, place.name, rows, seconds, outcome, spent | peaks)
    if spent["trial_seconds"] > 0:
        echo(f"[search] compute: shared stages {shared_seconds:.0f} s before the trials; trials "
             f"{spent['trial_seconds']:.0f} trial-seconds, "
             f"{spent['before_first_report_share']:.0%} of them before a first report "
             "(out of ASHA's reach)")  # fmt: skip
    echo(
        f"\n[search] leaderboard (ranked by {space.objective.label()}; "
        "test shown, never used to choose)"
    )
    echo(format_leaderboard(rows, space.objective))
    for note in tie_notes(rows, space):
        echo(f"[search] note: {note}")
    return rows, outcome


def _rows(search_path: str) -> list[dict[str, Any]]:
    try:
        return load_results(search_path)
    except ConfigError:  # no trial ever started (e.g. a time budget of zero)
        return []


def compute_spent(rows: list[dict[str, Any]], shared_seconds: float) -> dict[str, float]:
    """Where a search's compute went: the shared stages before the trials (wall seconds),
    the trials' seconds (Tune's), and the share of those spent before a first report."""
    trial = sum(r.get("trial_seconds") or 0.0 for r in rows)
    before = sum(r.get("setup_seconds") or 0.0 for r in rows)
    return {
        "shared_stage_seconds": shared_seconds,
        "trial_seconds": trial,
        "before_first_report_share": before / trial if trial > 0 else 0.0,
    }


def finish_parent(
    space, tracking_uri, name, rows, seconds, outcome: str, spent: dict[str, float] | None = None
) -> None:
    """The parent run's summary: trial counts, cache savings and the best completed trial
    by the search's objective (its value under the metric's own name)."""
    from augkd.search.records.tracking import SearchTracker

    tracker = SearchTracker(tracking_uri, experiment_name(space.name), name)
    objective = space.objective
    completed = [r for r in rank(rows, objective) if r.get("status") == "completed"]
    summary: dict[str, float] = {"search_seconds": seconds, "trials": float(len(rows))}
    for status in ("completed", "pruned", "failed", INTERRUPTED):
        summary[f"trials_{status}"] = float(sum(r.get("status") == status for r in rows))
    summary.update(cache_savings(rows))
    summary.update(spent or {})
    tags = {"augkd.status": outcome, "augkd.objective": objective.label()}
    if completed:
        best = completed[0]
        if best.get(objective.metric) is not None:
            summary[objective.metric] = best[objective.metric]
        if best.get(TEST_ACC1) is not None:
            summary[f"best_{TEST_ACC1}"] = best[TEST_ACC1]
        tags["augkd.best_trial_id"] = best["trial_id"]
    tracker.finish(summary, tags, MLFLOW_STATUS[outcome])


def cache_savings(rows: list[dict[str, Any]]) -> dict[str, float]:
    """Hits, misses and an estimate of compute saved: hits x mean producing time."""
    out: dict[str, float] = {}
    saved = 0.0
    for stage in ("module1", "module2"):
        hits = [r for r in rows if r.get(f"{stage}_cache_hit") == 1.0]
        misses = [r for r in rows if r.get(f"{stage}_cache_hit") == 0.0]
        out[f"{stage}_cache_hits"] = float(len(hits))
        out[f"{stage}_cache_misses"] = float(len(misses))
        if misses:
            produce = sum(r.get(f"{stage}_seconds") or 0.0 for r in misses) / len(misses)
            saved += len(hits) * produce
    out["cache_seconds_saved"] = saved
    return out


def search_outcome(rows: list[dict[str, Any]], interrupted: bool) -> str:
    """completed, interrupted, or failed (every trial failed)."""
    if interrupted:
        return INTERRUPTED
    if rows and all(row.get("status") == FAILED for row in rows):
        return FAILED
    return "completed"


def all_failed_error(
    rows: list[dict[str, Any]], results_uri: str, resume: str | None = None
) -> AllTrialsFailedError:
    """One sentence naming the error the trials share (or the most common one); when that is
    a kill for memory, with ``resume``, the command that resumes the search."""
    errors = Counter(_last_line(row.get("error")) for row in rows)
    message, count = errors.most_common(1)[0]
    if resume and KILLED_FOR_MEMORY in message:
        message = f"{message} with: {resume}"
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

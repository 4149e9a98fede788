"""Finding and reading a search: its results table, its space and its tracking store,
and the small helpers every figure shares."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from augkd.basics.dotted import get_dotted, short_names
from augkd.basics.errors import ConfigError
from augkd.basics.metric_names import EPOCH, STEP, STEPS
from augkd.storage.locations import (
    SEARCH_NAME,
    SEARCH_PATH_ENV,
    SPACE_FILE,
    default_storage,
    given_search_path,
    latest_search,
    resolve_search,
    resolve_tracking_uri,
    sqlite_file,
)

TOP_K = 3
FINISHED = ("completed", "pruned")
NO_SEARCH = "(no search)"


def resolve_search_path(
    search_path: str | None = None, workdir: str | Path | None = None
) -> str | None:
    """The argument, else $AUGKD_SEARCH_PATH, else the latest search in the default storage.

    A storage root stands for its latest search; what is not found stays as given,
    for the caller's note.
    """
    given = given_search_path(search_path)
    if given is None:
        return latest_search(default_storage(workdir))
    try:
        return resolve_search(given)
    except ConfigError:
        return given


@dataclass
class SearchData:
    """Everything the sections draw from: the results table, the space, the store."""

    search_path: str
    tracking_uri: str
    rows: list[dict[str, Any]] = field(default_factory=list)
    space: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.search_path.rstrip("/").rsplit("/", 1)[-1]

    @property
    def space_name(self) -> str:
        if self.space and self.space.get("name"):
            return str(self.space["name"])
        match = SEARCH_NAME.match(self.name)
        return match["space"] if match else self.name

    @property
    def objective(self):
        """What the search optimised (space.Objective): every figure ranks and colours by it."""
        from augkd.search.prepare.space import objective_of

        return objective_of(self.space)

    @property
    def param_keys(self) -> list[str]:
        """The searched hyperparameters (dotted config keys), in the space's order."""
        from augkd.search.records.results import param_keys

        keys = list((self.space or {}).get("params") or {})
        return keys + [k for k in param_keys(self.rows) if k not in keys]

    @property
    def param_names(self) -> dict[str, str]:
        """Each searched key's shortest unambiguous name, for headings and axes."""
        return short_names(self.param_keys)

    def param_spec(self, key: str) -> dict[str, Any]:
        return ((self.space or {}).get("params") or {}).get(key) or {}

    @property
    def base(self) -> dict[str, Any]:
        return (self.space or {}).get("base_resolved") or {}

    def status_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for row in self.rows:
            status = str(row.get("status") or "unknown")
            counts[status] = counts.get(status, 0) + 1
        return counts

    def summary(self) -> str:
        if not self.rows:
            return f"{self.name}: no trials recorded."
        counts = ", ".join(f"{n} {status}" for status, n in sorted(self.status_counts().items()))
        return f"{self.name}: {len(self.rows)} trials ({counts})."


def _exists(uri: str) -> tuple[bool, bool]:
    """(exists, is a folder) for a local path or a pyarrow-filesystem URI."""
    from pyarrow import fs as pafs

    from augkd.storage.files import resolve_filesystem

    filesystem, path = resolve_filesystem(uri)
    kind = filesystem.get_file_info(path).type
    return kind != pafs.FileType.NotFound, kind == pafs.FileType.Directory


def load_search(
    search_path: str | None = None,
    tracking_uri: str | None = None,
    strict: bool = False,
    workdir: str | Path | None = None,
    echo: Callable[[str], None] | None = None,
) -> SearchData:
    """Read a search's results table and space; what is missing becomes a note.

    ``search_path`` may be a search folder or a storage root (its latest search).
    ``strict`` (the CLI) raises ConfigError for a path that is not a search, an empty
    folder or an unreadable results table; without it the notebook still renders,
    with notes. ``workdir`` is where ``python search.py`` ran (default: here).
    """
    from augkd.search.prepare.space import recorded_space
    from augkd.search.records.results import load_results

    if strict:
        resolved: str | None = resolve_search(search_path, echo)
    else:
        resolved = resolve_search_path(search_path, workdir)
    if resolved is None:
        data = SearchData(NO_SEARCH, resolve_tracking_uri(tracking_uri, workdir))
        data.notes.append(
            f"No search found: set {SEARCH_PATH_ENV} to a search folder or storage root, or "
            f"run `python search.py` in the working directory (it writes {default_storage(workdir)})."
        )
        return data
    data = SearchData(resolved, resolve_tracking_uri(tracking_uri, workdir))
    exists, is_folder = _exists(resolved)
    if not (exists and is_folder):
        data.notes.append(f"Search folder '{resolved}' does not exist.")
        return data
    try:
        data.rows = load_results(resolved)
    except ConfigError as error:
        data.notes.append(str(error))
    except Exception as error:  # a half-written or foreign file
        if strict:
            raise ConfigError(
                f"The results table of '{resolved}' cannot be read ({type(error).__name__}); "
                "it may be truncated: re-run the search with --resume to rewrite it."
            ) from None
        data.notes.append(f"The results table of '{resolved}' cannot be read ({error}).")
    try:
        data.space = recorded_space(resolved)
    except Exception:
        data.space = None
    if data.space is None:
        data.notes.append(
            f"No readable {SPACE_FILE} in '{resolved}': param ranges come from the trials, "
            "and fANOVA importance and ASHA's rungs are left out."
        )
    data.tracking_uri = search_tracking_uri(tracking_uri, data.space, workdir)
    if strict and missing_store(data.tracking_uri):
        raise ConfigError(
            f"The MLflow store of search '{resolved}' was not found: "
            f"'{sqlite_file(data.tracking_uri)}' does not exist; pass --tracking-uri the store "
            "the search logged to (the `mlflow ui --backend-store-uri` it printed)."
        )
    return data


def missing_store(uri: str) -> bool:
    """A SQLite store whose file does not exist: opening it with MLflow would create an
    empty one, so the report says so instead."""
    database = sqlite_file(uri)
    return database is not None and not database.is_file()


def search_tracking_uri(
    given: str | None, space: dict[str, Any] | None, workdir: str | Path | None = None
) -> str:
    """The store a search logged to: --tracking-uri, else $AUGKD_TRACKING_URI, else the one
    the search recorded in its space file (when it is there), else mlflow.db here."""
    if given or os.environ.get("AUGKD_TRACKING_URI"):
        return resolve_tracking_uri(given, workdir)
    recorded = (space or {}).get("tracking_uri")
    if isinstance(recorded, str) and recorded and not missing_store(recorded):
        return recorded
    return resolve_tracking_uri(None, workdir)


def num(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def trial_history(row: dict[str, Any]) -> list[dict[str, Any]]:
    try:
        history = json.loads(row.get("history_json") or "[]")
    except (TypeError, ValueError):
        return []
    return [h for h in history if isinstance(h, dict) and num(h.get(EPOCH)) is not None]


def ranked(data: SearchData) -> list[dict[str, Any]]:
    """The trials, completed first, best first by the search's objective."""
    from augkd.search.records.results import rank

    return rank(data.rows, data.objective)


def with_status(data: SearchData, *statuses: str) -> list[dict[str, Any]]:
    return [r for r in ranked(data) if r.get("status") in statuses]


def finished(data: SearchData) -> list[dict[str, Any]]:
    """Completed and pruned trials that reported a value of the objective."""
    metric = data.objective.metric
    return [r for r in with_status(data, *FINISHED) if num(r.get(metric)) is not None]


def param_value(row: dict[str, Any], key: str) -> Any:
    """A trial's sampled value of a searched key (None when it was not sampled)."""
    from augkd.search.records.results import param_column

    return row.get(param_column(key))


def error_line(value: Any, width: int = 120) -> str | None:
    if not value:
        return None
    lines = [line.strip() for line in str(value).strip().splitlines() if line.strip()]
    text = lines[-1] if lines else str(value)
    return text if len(text) <= width else text[: width - 1] + "…"


def config_value(data: SearchData, row: dict[str, Any], key: str) -> Any:
    """A trial's value for a dotted config key: its sampled param, else the base config."""
    sampled = param_value(row, key)
    return sampled if sampled is not None else get_dotted(data.base, key)


def scheduler_settings(data: SearchData):
    """The space's ASHA settings, validated (None when the space is missing or foreign)."""
    from augkd.search.prepare.space import SchedulerSettings

    try:
        return SchedulerSettings.model_validate((data.space or {}).get("scheduler") or {})
    except ValueError:
        return None


def history_step(entry: dict[str, Any]) -> float | None:
    """A report's optimizer step (its epoch in tables written before budgets were in steps)."""
    return num(entry.get(STEP)) if num(entry.get(STEP)) is not None else num(entry.get(EPOCH))


def budget_steps(data: SearchData) -> int | None:
    """The Module-3 budget in optimizer steps: the space's scheduler.max_steps, else the
    budget the trials reported."""
    settings = scheduler_settings(data)
    if settings is not None and settings.max_steps:
        return int(settings.max_steps)
    reported = [num(h.get(STEPS)) for row in data.rows for h in trial_history(row)]
    return int(max(r for r in reported if r)) if any(reported) else None


def asha_rungs(data: SearchData) -> list[float]:
    """ASHA's milestones in optimizer steps (first bracket), as the search placed them."""
    settings, top = scheduler_settings(data), budget_steps(data)
    if settings is None or not top or data.space is None:
        return []
    return settings.milestones(top)

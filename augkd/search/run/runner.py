"""Run (or resume) one search: Ray Tune + Optuna + ASHA over AuG-KD trials.

Read top to bottom, these are the search's steps, each in its own module: the space as
asked and where it writes (prepare/request), hold its name (prepare/name_lock), start or
join Ray (run/ray_session), the preflight and the shared stages (stages/before_trials),
build or restore the Tuner (run/tuner), fit, record how it ended (run/ending), export the
best configs and print the next commands (answer/next_steps).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from augkd.basics.entry import quiet_libraries
from augkd.basics.errors import Interrupted
from augkd.search.answer.next_steps import export_best_configs, print_next_commands
from augkd.search.prepare.name_lock import hold_search_name
from augkd.search.prepare.request import SearchOptions, SearchPlace, place_search, requested_space
from augkd.search.prepare.sampler import sampler_warnings
from augkd.search.prepare.space import SearchSpace
from augkd.search.records.backup import RecordKeeper, restore_records
from augkd.search.run.ending import (
    FAILED,
    INTERRUPTED,
    TIME_BUDGET,
    all_failed_error,
    close_after_exit,
    record_end,
    resume_command,
)
from augkd.search.run.interrupt import CtrlC
from augkd.search.run.ray_session import check_address, init_ray
from augkd.search.run.tuner import build_or_restore_tuner
from augkd.search.stages.before_trials import run_before_trials
from augkd.storage.files import join_uri
from augkd.storage.locations import (
    RESULTS_FILE,
    experiment_name,
    sqlite_tracking_uri,
    stage_cache_root,
)

__all__ = ["SearchOptions", "SearchOutcome", "run_full_budget_search", "run_search"]


@dataclass
class SearchOutcome:
    search_path: str
    tracking_uri: str
    rows: list[dict[str, Any]]
    exported: list[Path]
    shared: Any = None
    """What the preflight found and which shared stages were produced (prepare/shared_plan.SharedStages)."""


def run_search(options: SearchOptions, echo=print) -> SearchOutcome:
    """Raises Interrupted after Ctrl-C (trials saved, resume command given) and
    AllTrialsFailedError when no trial succeeded; nothing stays RUNNING in MLflow."""
    quiet_libraries()
    _quiet_tune()
    check_address(options.address)  # an address where no Ray listens: refused first, in seconds
    space = requested_space(options, echo)
    place = place_search(options, space)
    with hold_search_name(
        place.search_path, place.name, place.storage, options.resume,
        space.name_lease_seconds, echo,
    ):  # fmt: skip
        return _run_held(options, space, place, echo)


def _run_held(
    options: SearchOptions, space: SearchSpace, place: SearchPlace, echo
) -> SearchOutcome:
    """The search, once its name is held: nothing before this touches its records."""
    if options.resume:  # the records a lost head took with it come back from storage
        restore_records(place.tracking_uri, place.search_path, echo)
    ray_start = init_ray(options.address)
    echo(f"[search] {ray_start.summary}")
    minutes = space.records_minutes
    with RecordKeeper(place.tracking_uri, place.search_path, minutes * 60, echo):
        try:
            return _SearchRun(options, space, place, echo, ray_start.started_here).fit_and_record()
        except BaseException as error:  # whatever ended it, nothing of it stays RUNNING
            close_after_exit(
                place.tracking_uri, experiment_name(space.name), place.name, place.search_path,
                error,
            )  # fmt: skip
            raise


def run_full_budget_search(
    space: str, storage: Path, trials: int, overrides: list[str], echo=print, **options: Any
) -> SearchOutcome:
    """Every trial drawn at random and run to its full budget, on a local Ray of its own
    unless this process runs one: the sample a study of a space needs (rung correlations,
    selection rules), which TPE's focus and ASHA's stops would bias. ``options``: more
    SearchOptions fields (name, smoke_test)."""
    return run_search(
        SearchOptions(
            space=space,
            address="local",  # never $RAY_ADDRESS's cluster
            storage=str(storage),
            tracking_uri=sqlite_tracking_uri(storage),
            num_samples=trials,
            overrides=["sampler.name=random", "scheduler.name=fifo", *overrides],
            **options,
        ),
        echo=echo,
    )


def _quiet_tune() -> None:
    # Tune's newer console output prints a config box and a TensorBoard hint even at
    # verbose=0; its classic one is silent there. ProgressView shows the search.
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    # A trial that fails on bad input reports {"failed": 1, "error": ...} without the
    # objective, so that it is not retried; Tune must accept that result.
    os.environ["TUNE_DISABLE_STRICT_METRIC_CHECKING"] = "1"


@dataclass
class _SearchRun:
    options: SearchOptions
    space: SearchSpace
    place: SearchPlace
    echo: Any
    started_locally: bool

    def fit_and_record(self) -> SearchOutcome:
        space, place, echo = self.space, self.place, self.echo
        name, search_path = place.name, place.search_path
        tuner, shared, started = None, None, time.time()
        try:
            with CtrlC(echo) as ctrl_c:
                again = resume_command(
                    self.options, name, place.storage, place.tracking_uri,
                    resume=self.options.resume,
                )  # fmt: skip
                shared = run_before_trials(
                    space, stage_cache_root(place.storage), echo, self.started_locally, again
                )
                budget = self.options.time_budget
                own_budget = budget is not None and ctrl_c.active  # else Tune's own does
                tuner = build_or_restore_tuner(
                    space, place.storage, name, search_path, place.tracking_uri,
                    replace(self.options, time_budget=None) if own_budget else self.options,
                    shared.preflight["train_images"],
                )  # fmt: skip
                for warning in sampler_warnings(space):
                    echo(f"[search] note: {warning}")
                echo(f"[search] {name}: {space.num_samples} trials, sampler {space.sampler.name}, "
                     f"scheduler {space.scheduler.name}, storage {search_path}")  # fmt: skip
                started = time.time()  # the search's own time, after the shared stages
                if own_budget:
                    ctrl_c.start_budget(budget)
                tuner.fit()
            interrupted = ctrl_c.requested
        except KeyboardInterrupt:  # a second Ctrl-C, or one before Tune took over
            if tuner is None:
                raise Interrupted(
                    f"search '{name}' stopped before any trial started (finished stages stay "
                    "cached); run the same command again to start it"
                ) from None
            interrupted = True
        rows, outcome = record_end(
            space, place, time.time() - started, interrupted, echo,
            shared.seconds if shared is not None else 0.0, ctrl_c.budget_reached,
            shared.peak_memory if shared is not None else None,
        )  # fmt: skip
        if outcome == TIME_BUDGET:
            echo(self._budget_line(rows))
        if outcome == INTERRUPTED:
            raise Interrupted(
                f"search '{name}' stopped with its trials saved; resume it with: "
                + resume_command(self.options, name, place.storage, place.tracking_uri)
            )
        if outcome == FAILED:
            again = resume_command(self.options, name, place.storage, place.tracking_uri)
            raise all_failed_error(rows, join_uri(search_path, RESULTS_FILE), again)
        exported = export_best_configs(search_path, self.options.export_top_k, echo)
        print_next_commands(search_path, place.tracking_uri, echo)
        return SearchOutcome(search_path, place.tracking_uri, rows, exported, shared)

    def _budget_line(self, rows: list[dict[str, Any]]) -> str:
        """The one line of a search that ran out of time: what it cut, and how to go on."""
        cut = sum(row.get("status") == INTERRUPTED for row in rows)
        again = resume_command(
            self.options, self.place.name, self.place.storage, self.place.tracking_uri
        )
        budget = f"[search] time budget of {self.options.time_budget:g} s reached"
        if not cut:
            return f"{budget} with no trial running; start the rest with: {again}"
        return (
            f"{budget}: {cut} trial(s) stopped and kept as interrupted; continue the search "
            f"with: {again}"
        )

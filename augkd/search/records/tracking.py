"""MLflow tracking from the driver only: one parent run per search, one child run per
trial, and the results table, all written by one Tune callback.

Logging from one process keeps a SQLite store free of lock contention, and lets a
resumed search find and continue its own runs instead of opening duplicates.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import time
from pathlib import Path
from typing import Any

from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient
from ray.tune import Callback

from augkd.basics.dotted import flatten_dotted
from augkd.basics.metric_names import (
    BEST_EPOCH,
    BEST_VAL_ACC1,
    EPOCH,
    MIXUP_SHARE,
    STEP,
    STEPS,
    STUDENT_PARAMS,
    TEST_METRICS,
    TRAIN_LOSS,
    VAL_ACC1,
    VAL_LOSS,
)
from augkd.hardware.peaks import PEAK_MEMORY_KEYS
from augkd.search.records.model_logging import log_student_model
from augkd.search.records.results import ResultsTable, history_of, param_column
from augkd.search.records.source_tags import source_tags
from augkd.search.run.interrupt import interrupt_requested
from augkd.search.run.optuna_bridge import trial_outcome
from augkd.search.run.trainable import BEST_STUDENT_FILE, DIAGNOSTICS_DIR, memory_kill_sentence
from augkd.storage.locations import sqlite_file

log = logging.getLogger(__name__)

TRIAL_TAG = "augkd.trial_id"
SEARCH_TAG = "augkd.search"
HISTORY_KEYS = (EPOCH, STEP, STEPS, VAL_ACC1, VAL_LOSS, BEST_VAL_ACC1, MIXUP_SHARE, TRAIN_LOSS)
"""Kept per epoch in the results table (with whatever the search ranks by)."""
EPOCH_ROW_KEYS = (VAL_ACC1, VAL_LOSS, BEST_VAL_ACC1, BEST_EPOCH)
"""Kept per trial, updated every epoch (with whatever the search ranks by)."""
FINAL_ROW_KEYS = (
    "module1_seconds", "module2_seconds", "module1_cache_hit", "module2_cache_hit",
    STUDENT_PARAMS, *TEST_METRICS, *EPOCH_ROW_KEYS, *PEAK_MEMORY_KEYS,
)  # fmt: skip
"""Kept per trial from its last result."""
RUN_SETTINGS = ("threads", "device")
"""Config keys a trial resolves itself; its first epoch reports them."""
MLFLOW_STATUS = {
    "completed": "FINISHED",
    "pruned": "KILLED",
    "failed": "FAILED",
    "interrupted": "KILLED",  # Ctrl-C: resumable, see augkd.search.run.ending
    "time_budget": "FINISHED",  # a search that ran its --time-budget; its cut trials resume
}


def _artifact_location(uri: str) -> str | None:
    database = sqlite_file(uri)
    if database is not None:
        return database.parent.joinpath("mlartifacts").as_uri()
    return None  # a server decides (e.g. its --artifacts-destination on S3)


class SearchTracker:
    """The parent run of one search (found again on resume)."""

    def __init__(self, uri: str, experiment: str, search_name: str) -> None:
        self.uri = uri
        self.client = MlflowClient(uri)
        found = self.client.get_experiment_by_name(experiment)
        if found is None:
            self.experiment_id = self.client.create_experiment(
                experiment, artifact_location=_artifact_location(uri)
            )
        else:
            self.experiment_id = found.experiment_id
        existing = self.client.search_runs(
            [self.experiment_id],
            filter_string=f"tags.`{SEARCH_TAG}` = '{search_name}' and tags.`{TRIAL_TAG}` = 'parent'",
        )
        if existing:
            self.parent_run_id = existing[0].info.run_id
            self.client.update_run(self.parent_run_id, status="RUNNING")
        else:
            run = self.client.create_run(
                self.experiment_id,
                run_name=search_name,
                tags={SEARCH_TAG: search_name, TRIAL_TAG: "parent", **source_tags()},
            )
            self.parent_run_id = run.info.run_id
        self.search_name = search_name

    def log_search(self, params: dict[str, Any], space_yaml: str) -> None:
        current = self.client.get_run(self.parent_run_id).data.params
        fresh = [Param(k, str(v)[:6000]) for k, v in params.items() if k not in current]
        if fresh:
            self.client.log_batch(self.parent_run_id, params=fresh)
        self.client.log_text(self.parent_run_id, space_yaml, "search_space.yaml")

    def finish(
        self, summary: dict[str, float], tags: dict[str, str], status: str = "FINISHED"
    ) -> None:
        metrics = [Metric(k, float(v), int(time.time() * 1000), 0) for k, v in summary.items()]
        self.client.log_batch(
            self.parent_run_id, metrics=metrics, tags=[RunTag(k, v) for k, v in tags.items()]
        )
        self.client.set_terminated(self.parent_run_id, status)


def _numeric(result: dict[str, Any]) -> dict[str, float]:
    return {
        k: float(v)
        for k, v in result.items()
        if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(float(v))
    }


class SearchRecorder(Callback):
    """Child runs in MLflow and rows of the results table, from Tune's events.

    Tune pickles its callbacks with the experiment, before ``setup``; everything
    stateful is built in ``setup``, so a restored search re-reads the table and
    finds its MLflow runs again instead of opening new ones.
    """

    def __init__(
        self,
        uri: str,
        experiment: str,
        search_name: str,
        search_path: str,
        base_config: dict[str, Any] | None = None,
        cache_root: str | None = None,
        ranked_by: tuple[str, ...] = (),
    ) -> None:
        self.settings = (uri, experiment, search_name, search_path)
        self.base_config = base_config or {}
        self.cache_root = cache_root
        self.ranked_by = tuple(ranked_by)
        """The metrics the search ranks by (objectives, rung metric): kept like val Acc@1."""
        self.run_ids: dict[str, str] = {}
        self.logged_epoch: dict[str, float] = {}
        self.started: dict[str, float] = {}
        self.last_write = 0.0

    def _with_ranked(self, keys: tuple[str, ...]) -> tuple[str, ...]:
        # getattr: a search pickled before ranked_by existed resumes with the defaults
        return tuple(dict.fromkeys((*keys, *getattr(self, "ranked_by", ()))))

    @property
    def history_keys(self) -> tuple[str, ...]:
        return self._with_ranked(HISTORY_KEYS)

    @property
    def epoch_row_keys(self) -> tuple[str, ...]:
        return self._with_ranked(EPOCH_ROW_KEYS)

    @property
    def final_row_keys(self) -> tuple[str, ...]:
        return self._with_ranked(FINAL_ROW_KEYS)

    def setup(self, **info) -> None:
        uri, experiment, search_name, search_path = self.settings
        self.tracker = SearchTracker(uri, experiment, search_name)
        self.client = self.tracker.client
        self.table = ResultsTable(search_path)
        self.run_ids, self.logged_epoch = {}, {}

    def _write_table_soon(self) -> None:
        if time.time() - self.last_write > 5:
            self.table.write()
            self.last_write = time.time()

    # -- runs -------------------------------------------------------------
    def _run_for(self, trial) -> str:
        trial_id = trial.trial_id
        if trial_id in self.run_ids:
            return self.run_ids[trial_id]
        found = self.client.search_runs(
            [self.tracker.experiment_id],
            filter_string=(
                f"tags.`{TRIAL_TAG}` = '{trial_id}' and "
                f"tags.`mlflow.parentRunId` = '{self.tracker.parent_run_id}'"
            ),
        )
        if found:
            run = found[0]
            run_id = run.info.run_id
            self.logged_epoch[trial_id] = run.data.metrics.get(EPOCH, 0.0)
            self._recover_history(trial_id, run_id, int(self.logged_epoch[trial_id]))
            if run.info.status != "RUNNING":
                self.client.update_run(run_id, status="RUNNING")
            if "augkd.status" in run.data.tags:  # e.g. interrupted: it runs again now
                self.client.delete_tag(run_id, "augkd.status")
        else:
            run_id = self.client.create_run(
                self.tracker.experiment_id,
                run_name=f"{self.tracker.search_name}/{trial_id}",
                tags={
                    "mlflow.parentRunId": self.tracker.parent_run_id,
                    TRIAL_TAG: trial_id,
                    SEARCH_TAG: self.tracker.search_name,
                    **source_tags(),
                },
            ).info.run_id
            self._log_params(run_id, self._full_config(trial.config))
            self.logged_epoch[trial_id] = 0.0
        self.run_ids[trial_id] = run_id
        self.table.update(
            trial_id,
            mlflow_run_id=run_id,
            **{param_column(k): v for k, v in trial.config.items()},
        )
        return run_id

    def _full_config(self, sampled: dict[str, Any]) -> dict[str, Any]:
        """The trial's whole config, flattened: the base with its sampled values and the
        stage cache; threads and device follow from the trial's first epoch."""
        full = flatten_dotted(self.base_config)
        full.update(sampled)
        if self.cache_root is not None:
            full["teacher.cache_dir"] = self.cache_root
        return {k: v for k, v in full.items() if k not in RUN_SETTINGS}

    def _recover_history(self, trial_id: str, run_id: str, logged: int) -> None:
        """After a killed driver, MLflow (written every epoch) may hold epochs that the
        results table (written every few seconds) lost; take them back from MLflow, since
        those epochs will not be reported again."""
        row = self.table.rows.get(trial_id, {})
        history = {int(h[EPOCH]): h for h in history_of(row)}
        if all(epoch in history for epoch in range(1, logged + 1)):
            return
        # MLflow's x-axis is the optimizer step; the history is keyed by epoch.
        epoch_at = {m.step: int(m.value) for m in self.client.get_metric_history(run_id, EPOCH)}
        for key in self.history_keys:
            for metric in self.client.get_metric_history(run_id, key):
                epoch = epoch_at.get(metric.step)
                if epoch is not None and 1 <= epoch <= logged:
                    history.setdefault(epoch, {}).setdefault(key, metric.value)
        if not history:  # nothing to take back (MLflow had no epoch of it either)
            return
        self.table.update(
            trial_id,
            history_json=json.dumps([history[k] for k in sorted(history)]),
            epochs_run=float(max(history)),
        )

    def _log_params(self, run_id: str, params: dict[str, Any]) -> None:
        items = [Param(k, str(v)[:6000]) for k, v in sorted(params.items())]
        for start in range(0, len(items), 100):  # MLflow takes 100 params per batch
            self.client.log_batch(run_id, params=items[start : start + 100])

    def on_trial_start(self, iteration, trials, trial, **info) -> None:
        self._run_for(trial)
        self.started.setdefault(trial.trial_id, time.time())
        self.table.update(trial.trial_id, status="running")

    def on_trial_result(self, iteration, trials, trial, result, **info) -> None:
        run_id = self._run_for(trial)
        epoch = result.get(EPOCH)
        if epoch is None or epoch <= self.logged_epoch.get(trial.trial_id, 0.0):
            return  # a re-report after a restore: already logged
        step = int(epoch)
        stamp = int(time.time() * 1000)
        if self.logged_epoch.get(trial.trial_id, 0.0) == 0.0:
            self._log_params(run_id, {k: result[k] for k in RUN_SETTINGS if k in result})
        numeric = {k: v for k, v in _numeric(result).items() if k not in RUN_SETTINGS}
        # MLflow's x-axis is Module 3's optimizer step, the unit of budgets and rungs.
        mlflow_step = int(result.get(STEP, epoch))
        metrics = [Metric(k, v, stamp, mlflow_step) for k, v in numeric.items()]
        self.client.log_batch(run_id, metrics=metrics)
        self.logged_epoch[trial.trial_id] = epoch
        row = self.table.rows.get(trial.trial_id, {})
        history = {int(h[EPOCH]): h for h in history_of(row)}
        history[step] = {k: result[k] for k in self.history_keys if k in result}
        self.table.update(
            trial.trial_id,
            history_json=json.dumps([history[k] for k in sorted(history)]),
            epochs_run=float(epoch),
            steps_run=result.get(STEP),
            **{k: result.get(k) for k in self.epoch_row_keys},
        )
        self._write_table_soon()

    def on_trial_complete(self, iteration, trials, trial, **info) -> None:
        self._finish(trial, error=False)

    def on_trial_error(self, iteration, trials, trial, **info) -> None:
        self._finish(trial, error=True)

    def _finish(self, trial, error: bool) -> None:
        run_id = self._run_for(trial)
        result = dict(trial.last_result or {})
        outcome = trial_outcome(result, error)
        message = result.get("error") or ""
        if error and trial.error_file and os.path.exists(trial.error_file):
            message = Path(trial.error_file).read_text()[-2000:]  # the traceback's end
            killed = memory_kill_sentence(message, self.base_config, dict(trial.config or {}))
            message = killed or message
        tags = [RunTag("augkd.status", outcome)]
        if message:
            tags.append(RunTag("augkd.error", str(message)[:5000]))
        self.client.log_batch(run_id, tags=tags)
        row = {
            "status": outcome,
            "error": str(message) if message else None,
            "wall_seconds": time.time() - self.started.get(trial.trial_id, time.time()),
        }
        row |= {key: result[key] for key in self.final_row_keys if key in result}
        row |= {k: v for k, v in result.items() if k.startswith("diag_")}
        # Where the trial's seconds went: every stage it ran (Module 3's included), what it
        # spent before its first report (out of ASHA's reach), and Tune's total.
        row |= {k: v for k, v in result.items() if k.endswith("_seconds") and k != "epoch_seconds"}
        # A trial over several seeds (objective.seeds): each seed's own val and test too.
        row |= {k: v for k, v in result.items() if re.fullmatch(r".+_seed\d+", k)}
        if "time_total_s" in result:
            row["trial_seconds"] = result["time_total_s"]
        if outcome in ("completed", "pruned"):
            self._log_diagnostics(run_id, trial)
        if outcome == "completed":
            self._log_final_artifacts(run_id, trial, row)
        self.table.update(trial.trial_id, **row)
        self.table.write()
        self.client.set_terminated(run_id, MLFLOW_STATUS[outcome])

    def _log_final_artifacts(self, run_id: str, trial, row: dict[str, Any]) -> None:
        checkpoint = trial.checkpoint
        if checkpoint is None:
            return
        with checkpoint.as_directory() as folder:
            config_path = Path(folder) / "config.yaml"
            if config_path.exists():
                row["config_yaml"] = config_path.read_text()
                self.client.log_artifact(run_id, str(config_path))
            weights = Path(folder) / BEST_STUDENT_FILE
            if weights.exists():
                self.client.log_artifact(run_id, str(weights), "weights")
            try:
                row["model_uri"] = log_student_model(self.tracker.uri, run_id, Path(folder))
            except Exception as error:  # the trial's record matters more than its model
                log.warning("could not log trial %s's model: %s", trial.trial_id, error)

    def _log_diagnostics(self, run_id: str, trial) -> None:
        """The diagnostics' PNGs of the trial's last checkpoint, under ``diagnostics/``."""
        if trial.checkpoint is None:
            return
        with trial.checkpoint.as_directory() as folder:
            pictures = Path(folder) / DIAGNOSTICS_DIR
            if pictures.is_dir():
                self.client.log_artifacts(run_id, str(pictures), DIAGNOSTICS_DIR)

    def on_experiment_end(self, trials, **info) -> None:
        if interrupt_requested():  # Tune stopped the running trials; they are not over
            self.table.write()  # the driver records them as interrupted, not pruned/failed
            return
        for trial in trials:
            if trial.trial_id in self.run_ids and trial.status in ("TERMINATED", "ERROR"):
                run = self.client.get_run(self.run_ids[trial.trial_id])
                if run.info.status == "RUNNING":
                    self._finish(trial, error=trial.status == "ERROR")
        self.table.write()

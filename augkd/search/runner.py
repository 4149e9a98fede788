"""Run (or resume) one search: Ray Tune + Optuna + ASHA over AuG-KD trials."""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from augkd.config import parse_override
from augkd.dotted import get_dotted, set_dotted
from augkd.entry import quiet_libraries
from augkd.errors import ConfigError, Interrupted
from augkd.locations import (
    SPACE_FILE,
    default_storage,
    default_tracking_uri,
    latest_search,
    local_folder,
    stage_cache_root,
    storage_root,
)
from augkd.search.checks import check_before_ray, check_resumable
from augkd.search.ending import (
    FAILED,
    INTERRUPTED,
    all_failed_error,
    close_after_exit,
    close_open_trials,
    resume_command,
    search_outcome,
)
from augkd.search.interrupt import CtrlC
from augkd.search.records import RecordKeeper, restore_records
from augkd.search.results import (
    RESULTS_FILE,
    export_best,
    format_leaderboard,
    join_uri,
    load_results,
    rank,
)
from augkd.search.space import (
    SearchSpace,
    load_space,
    read_space_file,
    resolve_space_path,
    sampler_warnings,
)
from augkd.search.study import open_commands, publish

log = logging.getLogger(__name__)

SMOKE_TEST = {
    "num_samples": 4,
    "max_concurrent": 2,
    "base": {
        "teacher": {"epochs": 15},
        "module1": {"epochs": 1, "iters_per_epoch": 6, "student_steps": 2},
        "encoder_adapt": {"epochs": 1},
        "module2": {"epochs": 2},
        "module3": {"epochs": 4},
    },
    "scheduler": {"grace_period": 1, "reduction_factor": 2, "max_epochs": 4},
}
SPACE_KEYS = set(SearchSpace.model_fields)


@dataclass
class SearchOptions:
    space: str = "fonts"
    storage: str | None = None
    """None: $AUGKD_STORAGE, else augkd_runs in the working directory."""
    name: str | None = None
    tracking_uri: str | None = None
    num_samples: int | None = None
    time_budget: float | None = None
    resume: bool = False
    smoke_test: bool = False
    overrides: list[str] = field(default_factory=list)
    address: str | None = None
    export_top_k: int = 1


@dataclass
class SearchOutcome:
    search_path: str
    tracking_uri: str
    rows: list[dict[str, Any]]
    exported: list[Path]
    shared: Any = None
    """What the preflight found and which shared stages were produced (prestage.SharedStages)."""


def _split_overrides(overrides: list[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """--set keys of the search space (sampler.name=random) vs of the trial config."""
    space_values: dict[str, Any] = {}
    config_values: dict[str, Any] = {}
    for text in overrides:
        key, value = parse_override(text)
        target = space_values if key.split(".")[0] in SPACE_KEYS else config_values
        set_dotted(target, key, value)
    return space_values, config_values


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def prepare_space(options: SearchOptions) -> SearchSpace:
    """Load and validate the space with every override; fails before Ray starts."""
    path = resolve_space_path(options.space)
    raw = read_space_file(path)
    space_values, config_values = _split_overrides(options.overrides)
    extra: dict[str, Any] = {}
    if options.smoke_test:
        extra = _merge(extra, SMOKE_TEST)
    extra = _merge(extra, space_values)
    if config_values:
        extra = _merge(extra, {"base": config_values})
    if options.num_samples is not None:
        extra["num_samples"] = options.num_samples
    merged = _merge(raw, extra)
    space = load_space(path, {k: merged[k] for k in merged}, set(space_values))
    return _smoke_module2_grid(space) if options.smoke_test else space


def _smoke_module2_grid(space: SearchSpace) -> SearchSpace:
    """--smoke-test trains two AnchorNets, not a whole grid: the first categorical Module-2
    param keeps its base value and one more; the others keep the base value alone."""
    trimmed = False
    for key, param in space.params.items():
        if not key.startswith("module2.") or param.type != "categorical" or param.when:
            continue
        value = get_dotted(space.base_resolved, key)
        others = [choice for choice in param.choices or [] if choice != value]
        keep = [value, *others[:1]] if not trimmed else [value]
        param.choices = keep if value in (param.choices or []) else (param.choices or [])[:2]
        trimmed = True
    return space


def init_ray(address: str | None) -> bool:
    """Join a running cluster when there is one; otherwise start a local one (returns True)."""
    import ray

    if ray.is_initialized():
        return False
    quiet: dict[str, Any] = {"log_to_driver": False, "logging_level": logging.WARNING}
    target = address or os.environ.get("RAY_ADDRESS")
    if target and target != "local":
        ray.init(address=target, **quiet)
        return False
    if not target:
        try:
            ray.init(address="auto", **quiet)
            log.info("joined the running Ray cluster")
            return False
        except (ConnectionError, RuntimeError, ValueError):
            pass
    ray.init(include_dashboard=False, **quiet)
    return True


def run_search(options: SearchOptions, echo=print) -> SearchOutcome:
    """Raises Interrupted after Ctrl-C (trials saved, resume command given) and
    AllTrialsFailedError when no trial succeeded; nothing stays RUNNING in MLflow."""
    quiet_libraries()
    # Tune's newer console output prints a config box and a TensorBoard hint even at
    # verbose=0; its classic one is silent there. ProgressView shows the search.
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    # A trial that fails on bad input reports {"failed": 1, "error": ...} without the
    # objective, so that it is not retried; Tune must accept that result.
    os.environ["TUNE_DISABLE_STRICT_METRIC_CHECKING"] = "1"
    space = prepare_space(options)
    tracking_uri = options.tracking_uri or default_tracking_uri()
    storage = storage_root(options.storage or default_storage())
    check_before_ray(space, storage, tracking_uri)
    name = options.name
    if options.resume and name is None:
        latest = latest_search(storage, space.name)
        name = latest.rsplit("/", 1)[-1] if latest else None
        if name is None:
            raise ConfigError(
                f"--resume found no earlier '{space.name}' search under {storage}; "
                "pass --name of the search to resume."
            )
    name = name or f"{space.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    search_path = join_uri(storage, name)
    if options.resume:
        check_resumable(search_path)
        restore_records(tracking_uri, search_path, echo)

    started_locally = init_ray(options.address)
    run = _SearchRun(
        options, space, storage, name, search_path, tracking_uri, echo, started_locally
    )
    with RecordKeeper(tracking_uri, search_path, space.records_minutes * 60, echo):
        try:
            return run.fit_and_record()
        except BaseException as error:  # whatever ended it, nothing of it stays RUNNING
            close_after_exit(tracking_uri, run.experiment, name, search_path, error)
            raise


@dataclass
class _SearchRun:
    options: SearchOptions
    space: SearchSpace
    storage: str
    name: str
    search_path: str
    tracking_uri: str
    echo: Any
    started_locally: bool

    @property
    def experiment(self) -> str:
        return f"augkd-{self.space.name}"

    def fit_and_record(self) -> SearchOutcome:
        space, name, search_path, echo = self.space, self.name, self.search_path, self.echo
        from augkd.search.prestage import prepare_search

        tuner, started = None, time.time()
        try:
            with CtrlC(echo) as ctrl_c:
                again = resume_command(
                    self.options, name, self.storage, self.tracking_uri,
                    resume=self.options.resume,
                )  # fmt: skip
                shared = prepare_search(
                    space, stage_cache_root(self.storage), echo, self.started_locally, again
                )
                tuner = _build_or_restore_tuner(
                    space, self.storage, name, search_path, self.tracking_uri, self.options
                )
                for warning in sampler_warnings(space):
                    echo(f"[search] note: {warning}")
                echo(f"[search] {name}: {space.num_samples} trials, sampler {space.sampler.name}, "
                     f"scheduler {space.scheduler.name}, storage {search_path}")  # fmt: skip
                started = time.time()  # the search's own time, after the shared stages
                tuner.fit()
            interrupted = ctrl_c.requested
        except KeyboardInterrupt:  # a second Ctrl-C, or one before Tune took over
            if tuner is None:
                raise Interrupted(
                    f"search '{name}' stopped before any trial started (finished stages stay "
                    "cached); run the same command again to start it"
                ) from None
            interrupted = True
        if interrupted:
            close_open_trials(self.tracking_uri, self.experiment, name, search_path, INTERRUPTED)
        publish(search_path)  # before any exit: a resumed or failed search keeps its study
        rows = _rows(search_path)
        outcome = search_outcome(rows, interrupted)
        _finish_parent(space, self.tracking_uri, name, rows, time.time() - started, outcome)
        echo("\n[search] leaderboard (ranked by val; test shown, never used to choose)")
        echo(format_leaderboard(rows))
        if outcome == INTERRUPTED:
            raise Interrupted(
                f"search '{name}' stopped with its trials saved; resume it with: "
                + resume_command(self.options, name, self.storage, self.tracking_uri)
            )
        if outcome == FAILED:
            raise all_failed_error(rows, join_uri(search_path, RESULTS_FILE))
        exported: list[Path] = []
        try:
            exported = export_best(
                search_path,
                self.options.export_top_k,
                os.path.join(local_folder(search_path), "best_configs"),
            )
            echo(f"\n[search] best config: {exported[0]}  "
                 f"(re-run: augkd train --config {exported[0]})")  # fmt: skip
        except ConfigError as error:
            echo(f"\n[search] nothing exported: {error}")
        echo(f"[search] results table: {join_uri(search_path, RESULTS_FILE)}")
        echo(f"[search] open MLflow: mlflow ui --backend-store-uri {self.tracking_uri}")
        dashboard, load = open_commands(search_path)
        echo(f"[search] open the Optuna study: {dashboard}")
        echo(f"[search]   or in Python: {load}")
        return SearchOutcome(search_path, self.tracking_uri, rows, exported, shared)


def _rows(search_path: str) -> list[dict[str, Any]]:
    try:
        return load_results(search_path)
    except ConfigError:  # no trial ever started (e.g. a time budget of zero)
        return []


def _build_or_restore_tuner(space, storage, name, search_path, tracking_uri, options):
    from ray import tune
    from ray.tune.search import ConcurrencyLimiter

    from augkd.search.asha import ResumableASHA
    from augkd.search.checkpointing import judged_epochs
    from augkd.search.optuna_bridge import PruningAwareOptunaSearch
    from augkd.search.progress import ProgressView
    from augkd.search.space import build_sampler, suggest
    from augkd.search.stopping import SameFailureStopper
    from augkd.search.study import default_point, open_storage
    from augkd.search.tracking import SearchRecorder, SearchTracker
    from augkd.search.trainable import run_tune_trial

    cache_root = stage_cache_root(storage)
    rungs = tuple(judged_epochs(space.scheduler.milestones(space.max_epochs())))
    trainable = tune.with_resources(
        tune.with_parameters(
            run_tune_trial, base_config=space.base_resolved, cache_root=cache_root,
            gpu_share=space.resources.gpu, checkpoint_epochs=rungs,
            checkpoint_minutes=space.checkpoint_minutes,
        ),
        {"cpu": space.resources.cpu, "gpu": space.resources.gpu},
    )  # fmt: skip
    experiment = f"augkd-{space.name}"
    if options.resume:
        if not tune.Tuner.can_restore(search_path):
            raise ConfigError(f"--resume: '{search_path}' holds no Tune experiment to restore.")
        open_storage(search_path)  # the restored searcher re-opens this journal
        return tune.Tuner.restore(search_path, trainable=trainable, resume_errored=True)

    objective = space.objective
    metric: Any = objective.metric
    mode: Any = objective.mode
    if space.second_objective is not None:
        metric = [objective.metric, space.second_objective.metric]
        mode = [objective.mode, space.second_objective.mode]
    single = space.second_objective is None
    rung_metric = space.scheduler.rung_metric
    # ASHA gets its own metric with several objectives or a rung metric of its own; Tune
    # then refuses one on TuneConfig.
    own_metric = space.scheduler.name == "asha" and (
        not single or rung_metric not in (None, objective.metric)
    )
    # metric/mode go on TuneConfig and (OptunaSearch with a define-by-run space
    # ignores TuneConfig's) on the searcher; with several objectives the searcher
    # takes the lists and ASHA the first objective.
    point = default_point(space)
    searcher = PruningAwareOptunaSearch(
        space=partial(suggest, space), sampler=build_sampler(space), metric=metric, mode=mode,
        storage=open_storage(search_path), study_name=name,
        points_to_evaluate=[point] if point else None,
    )  # fmt: skip
    if space.scheduler.name == "asha":
        scheduler = ResumableASHA(
            time_attr="epoch",
            metric=(rung_metric or objective.metric) if own_metric else None,
            mode=objective.mode if own_metric else None,
            max_t=space.max_epochs(), grace_period=space.scheduler.grace_period,
            reduction_factor=space.scheduler.reduction_factor,
            brackets=space.scheduler.brackets, search_path=search_path,
        )  # fmt: skip
    else:
        scheduler = tune.schedulers.FIFOScheduler()
    tracker = SearchTracker(tracking_uri, experiment, name)
    tracker.log_search(_search_params(space), space.model_dump_json(indent=2))
    _write_space(search_path, space)
    return tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(
            search_alg=ConcurrencyLimiter(searcher, max_concurrent=space.max_concurrent),
            scheduler=scheduler,
            num_samples=space.num_samples,
            metric=None if own_metric or not single else objective.metric,
            mode=None if own_metric or not single else objective.mode,
            time_budget_s=options.time_budget,
        ),
        run_config=tune.RunConfig(
            name=name,
            storage_path=storage,
            callbacks=[
                SearchRecorder(
                    tracking_uri, experiment, name, search_path, space.base_resolved, cache_root
                ),
                ProgressView(list(space.params), objective.metric),
            ],
            checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
            stop=SameFailureStopper(space.stop_after_same_failures),
            failure_config=tune.FailureConfig(max_failures=space.max_failures),
            verbose=0,
        ),
    )


def _search_params(space: SearchSpace) -> dict[str, Any]:
    return {
        "space": space.name,
        "sampler": space.sampler.model_dump_json(),
        "scheduler": space.scheduler.model_dump_json(),
        "objective": space.objective.model_dump_json(),
        "num_samples": space.num_samples,
        "max_concurrent": space.max_concurrent,
        "resources": space.resources.model_dump_json(),
        "params": ",".join(space.params),
        "method": space.base_resolved.get("method"),
    }


def _finish_parent(space, tracking_uri, name, rows, seconds, outcome: str) -> None:
    from augkd.search.tracking import MLFLOW_STATUS, SearchTracker

    tracker = SearchTracker(tracking_uri, f"augkd-{space.name}", name)
    completed = [r for r in rank(rows) if r.get("status") == "completed"]
    summary: dict[str, float] = {"search_seconds": seconds, "trials": float(len(rows))}
    for status in ("completed", "pruned", "failed", INTERRUPTED):
        summary[f"trials_{status}"] = float(sum(r.get("status") == status for r in rows))
    summary.update(cache_savings(rows))
    tags = {"augkd.status": outcome}
    if completed:
        best = completed[0]
        summary["best_val_acc1"] = best["best_val_acc1"]
        if best.get("test_acc1") is not None:
            summary["best_test_acc1"] = best["test_acc1"]
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


def _write_space(search_path: str, space: SearchSpace) -> None:
    """The resolved space next to the results, for analysis (distributions for fANOVA)."""
    from augkd.storage import write_bytes

    payload = space.model_dump(mode="json")
    payload["base_resolved"] = space.base_resolved
    write_bytes(join_uri(search_path, SPACE_FILE), json.dumps(payload, indent=2).encode())

"""Build the search's Tuner: Optuna proposing (its study in a journal next to the
results), ASHA stopping weak trials at its rungs, the recorder writing MLflow and the
results table, and the trials' own resources; or restore the one a --resume continues."""

from __future__ import annotations

from functools import partial
from typing import Any

from augkd.basics.errors import ConfigError
from augkd.basics.metric_names import STEP
from augkd.search.prepare.sampler import build_sampler, suggest
from augkd.search.prepare.space import SearchSpace, write_recorded_space
from augkd.storage.locations import experiment_name, stage_cache_root


def build_or_restore_tuner(
    space, storage, name, search_path, tracking_uri, options, train_images: int
):
    """A new Tuner (searcher, ASHA, MLflow recorder, progress view) with the space written
    next to the results, or the one --resume restores. ``train_images`` (what the preflight
    found) turns the Module-3 budget into optimizer steps, the unit of ASHA's rungs."""
    from ray import tune
    from ray.tune.search import ConcurrencyLimiter

    from augkd.search.prepare.trial_steps import expected_trial_steps
    from augkd.search.records.tracking import SearchRecorder, SearchTracker
    from augkd.search.run.asha import ResumableASHA
    from augkd.search.run.optuna_bridge import PruningAwareOptunaSearch
    from augkd.search.run.progress import ProgressView
    from augkd.search.run.stopping import SameFailureStopper
    from augkd.search.run.study import default_point, open_storage
    from augkd.search.run.trainable import run_tune_trial

    cache_root = stage_cache_root(storage)
    max_steps = space.max_steps(train_images)
    rungs = tuple(space.scheduler.milestones(max_steps))
    trainable = tune.with_resources(
        tune.with_parameters(
            run_tune_trial, base_config=space.base_resolved, cache_root=cache_root,
            gpu_share=space.resources.gpu, checkpoint_steps=rungs,
            checkpoint_minutes=space.checkpoint_minutes, seeds=space.objective.seeds,
        ),
        {"cpu": space.resources.cpu, "gpu": space.resources.gpu},
    )  # fmt: skip
    experiment = experiment_name(space.name)
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
    rungs_by = space.rung_objective()
    # ASHA gets its own metric with several objectives or a rung metric of its own; Tune
    # then refuses one on TuneConfig.
    own_metric = space.scheduler.name == "asha" and (not single or rungs_by != objective)
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
            time_attr=STEP,
            metric=rungs_by.metric if own_metric else None,
            mode=rungs_by.mode if own_metric else None,
            max_t=max_steps, grace_period=space.scheduler.grace_period,
            reduction_factor=space.scheduler.reduction_factor,
            brackets=space.scheduler.brackets, search_path=search_path,
        )  # fmt: skip
    else:
        scheduler = tune.schedulers.FIFOScheduler()
    tracker = SearchTracker(tracking_uri, experiment, name)
    tracker.log_search(search_params(space), space.model_dump_json(indent=2))
    write_recorded_space(search_path, space, tracking_uri)
    return tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(
            search_alg=ConcurrencyLimiter(searcher, max_concurrent=space.max_concurrent),
            scheduler=scheduler,
            num_samples=space.num_samples,
            metric=None if own_metric or not single else objective.metric,
            mode=None if own_metric or not single else objective.mode,
            time_budget_s=options.time_budget,
            reuse_actors=space.reuse_actors,
        ),
        run_config=tune.RunConfig(
            name=name,
            storage_path=storage,
            callbacks=[
                SearchRecorder(
                    tracking_uri,
                    experiment,
                    name,
                    search_path,
                    space.base_resolved,
                    cache_root,
                    ranked_by=space.tracked_metrics(),
                ),
                ProgressView(
                    list(space.params),
                    objective.metric,
                    expected_steps=expected_trial_steps(space, max_steps).expected,
                ),
            ],
            checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
            stop=SameFailureStopper(space.stop_after_same_failures),
            failure_config=tune.FailureConfig(max_failures=space.max_failures),
            verbose=0,
        ),
    )


def search_params(space: SearchSpace) -> dict[str, Any]:
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

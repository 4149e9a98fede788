"""An evaluation in MLflow: one run per (config, seed) under the search's parent run, and
the verdict and the winner's means on the parent."""

from __future__ import annotations

import math
import time
from typing import Any

import yaml

from augkd.basics.dotted import flatten_dotted
from augkd.basics.errors import ConfigError
from augkd.search.answer.candidates import kept_metrics, search_record
from augkd.search.answer.racing import Evaluation

EVALUATION_TAG = "augkd.evaluation"


VERDICT_TAG = "augkd.verdict"


def find_parent_run(search_path: str, tracking_uri: str | None) -> tuple[Any, str, str]:
    """(client, experiment id, parent run id) of the search in MLflow; a ConfigError
    naming the store when it holds no such search (checked before any run starts)."""
    from mlflow.tracking import MlflowClient

    from augkd.search.records.tracking import SEARCH_TAG, TRIAL_TAG
    from augkd.storage.locations import experiment_name, resolve_tracking_uri

    uri = resolve_tracking_uri(tracking_uri)
    name = search_path.rstrip("/").rsplit("/", 1)[-1]
    space = search_record(search_path)
    client = MlflowClient(uri)
    try:
        experiment = client.get_experiment_by_name(experiment_name(space["name"]))
        parents = (
            client.search_runs(
                [experiment.experiment_id],
                filter_string=f"tags.`{SEARCH_TAG}` = '{name}' and tags.`{TRIAL_TAG}` = 'parent'",
            )
            if experiment is not None
            else []
        )
    except Exception as error:
        raise ConfigError(
            f"Tracking store {uri} cannot be read ({type(error).__name__}); pass "
            "--tracking-uri the store the search logged to."
        ) from None
    if not parents:
        raise ConfigError(
            f"Tracking store {uri} holds no run of search '{name}'; pass --tracking-uri "
            "the store the search logged to."
        )
    return client, experiment.experiment_id, parents[0].info.run_id


def log_evaluation_runs(evaluation: Evaluation, tracking_uri: str | None) -> None:
    """One MLflow run per (candidate, seed) under the search's parent run. An earlier
    evaluation's runs of the same search are deleted first (MLflow's deleted stage, which
    `mlflow gc` purges and `restore_run` undoes), as evaluation.parquet is replaced: the
    store then holds one evaluation, the latest, also after a stopped one was continued."""
    from mlflow.entities import Metric, Param, RunTag

    from augkd.search.records.source_tags import source_tags
    from augkd.search.records.tracking import SEARCH_TAG, TRIAL_TAG

    name = evaluation.search_path.rstrip("/").rsplit("/", 1)[-1]
    client, experiment_id, parent_run_id = find_parent_run(evaluation.search_path, tracking_uri)
    # Timestamped: a continued evaluation logs the parent's summary again, and MLflow shows
    # the latest value of a metric by its timestamp (at equal timestamps, the largest).
    now = int(time.time() * 1000)
    earlier = client.search_runs(
        [experiment_id],
        filter_string=f"tags.`{SEARCH_TAG}` = '{name}' and tags.`{EVALUATION_TAG}` != ''",
    )
    for run in earlier:
        client.delete_run(run.info.run_id)
    for candidate in evaluation.candidates:
        for run in candidate.runs:
            created = client.create_run(
                experiment_id,
                run_name=f"{name}/evaluate/{candidate.label}/seed{run['seed']}",
                tags={
                    "mlflow.parentRunId": parent_run_id,
                    SEARCH_TAG: name,
                    TRIAL_TAG: f"evaluate-{candidate.label}-seed{run['seed']}",
                    EVALUATION_TAG: candidate.label,
                    "augkd.source_trial_id": candidate.trial_id or "",
                    **source_tags(),
                },
            ).info.run_id
            config = yaml.safe_load(run["config_yaml"]) if run.get("config_yaml") else {}
            params = [Param(k, str(v)[:6000]) for k, v in flatten_dotted(config).items()]
            kept = kept_metrics(evaluation.objective)
            metrics = [Metric(k, float(run[k]), now, 0) for k in kept if k in run]
            tags = [RunTag("augkd.error", run["error"][:5000])] if run.get("error") else []
            for start in range(0, max(len(params), 1), 100):
                client.log_batch(
                    created,
                    metrics=metrics if start == 0 else [],
                    params=params[start : start + 100],
                    tags=tags if start == 0 else [],
                )
            client.set_terminated(created, "FAILED" if run.get("error") else "FINISHED")
    summary = []
    if evaluation.winner is not None:
        for metric in kept_metrics(evaluation.objective):
            summary.append(Metric(f"evaluation_{metric}", evaluation.winner.mean(metric), now, 0))
    tags = [RunTag("augkd.evaluation_winner", evaluation.winner.label)] if evaluation.winner else []
    verdict = evaluation.verdict
    if verdict is not None:
        tags += [
            RunTag(VERDICT_TAG, verdict.sentence[:5000]),
            RunTag(f"{VERDICT_TAG}_decision", verdict.decision),
        ]
        summary += [
            Metric("evaluation_seeds", float(len(verdict.seeds)), now, 0),
            Metric("evaluation_runs", float(verdict.runs), now, 0),
            Metric("evaluation_compute_seconds", verdict.compute_seconds, now, 0),
        ]
        for comparison, name in ((verdict.versus_defaults, "defaults"),
                                 (verdict.versus_baseline, "baseline")):  # fmt: skip
            if comparison is not None and comparison.difference is not None:
                summary += [
                    Metric(f"evaluation_vs_{name}_mean", comparison.difference.mean, now, 0),
                    Metric(f"evaluation_vs_{name}_half_width", comparison.half_width, now, 0),
                ]
    client.log_batch(
        parent_run_id, metrics=[m for m in summary if math.isfinite(m.value)], tags=tags
    )

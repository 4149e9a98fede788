"""The report's tables: the leaderboard from the results table, the child runs from MLflow."""

from __future__ import annotations

import warnings
from typing import Any

import pandas as pd

from augkd.basics.metric_names import (
    BEST_EPOCH,
    BEST_VAL_ACC1,
    EPOCH,
    MIXUP_SHARE,
    TEST_ACC1,
    VAL_ACC1,
    label,
)
from augkd.report.loading import (
    SearchData,
    error_line,
    missing_store,
    num,
    param_value,
    ranked,
)
from augkd.report.section import Section
from augkd.storage.locations import experiment_name


def leaderboard(data: SearchData, limit: int | None = None) -> Section:
    """Completed trials first, best first by the objective; test Acc@1 is shown, never
    used to rank."""
    from augkd.search.records.results import leaderboard_metrics

    objective = data.objective
    title = f"Leaderboard (ranked by {objective.label()}; test Acc@1 shown, never used to choose)"
    if not data.rows:
        return Section("leaderboard", title, note="No trials to rank. " + " ".join(data.notes))
    keys, names = data.param_keys, data.param_names
    records = []
    for place, row in enumerate(ranked(data)[:limit], start=1):
        record: dict[str, Any] = {
            "rank": place,
            "trial": row.get("trial_id"),
            "status": row.get("status"),
            **{label(m): num(row.get(m)) for m in leaderboard_metrics(objective)},
            "steps": num(row.get("steps_run")),
            "best epoch": num(row.get(BEST_EPOCH)),
        }
        for key in keys:
            value = param_value(row, key)
            record[names[key]] = round(value, 4) if isinstance(value, float) else value
        record["wall s"] = num(row.get("wall_seconds"))
        record["error"] = error_line(row.get("error"))
        records.append(record)
    table = pd.DataFrame.from_records(records)
    if table["error"].isna().all():
        table = table.drop(columns="error")
    return Section("leaderboard", title, table=table, note=data.summary())


MLFLOW_COLUMNS = {
    "tags.augkd.trial_id": "trial",
    "tags.augkd.status": "augkd.status",
    "status": "mlflow status",
    **{f"metrics.{m}": m for m in (BEST_VAL_ACC1, VAL_ACC1, TEST_ACC1, EPOCH, MIXUP_SHARE)},
    "run_id": "run_id",
}


def mlflow_runs(data: SearchData) -> Section:
    """The search's child runs as MLflow holds them (status tags, last metric values)."""
    key = "mlflow_runs"
    uri = data.tracking_uri
    title = f"Child runs in MLflow ({uri})"
    if missing_store(uri):
        return Section(
            key,
            title,
            note=f"The tracking store {uri} does not exist; set "
            "AUGKD_TRACKING_URI (or --tracking-uri) to the search's store.",
        )
    experiment = experiment_name(data.space_name)
    try:
        import mlflow

        previous = mlflow.get_tracking_uri()
        mlflow.set_tracking_uri(uri)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                runs = mlflow.search_runs(
                    experiment_names=[experiment],
                    filter_string=f"tags.`augkd.trial_id` != 'parent' and "
                    f"tags.`augkd.search` = '{data.name}'",
                    output_format="pandas",
                )
        finally:
            mlflow.set_tracking_uri(previous)
    except Exception as error:
        return Section(
            key,
            title,
            note=f"The tracking store {uri} cannot be read "
            f"({type(error).__name__}: {error_line(error)}).",
        )
    if runs is None or len(runs) == 0:
        return Section(
            key, title, note=f"No child runs of {data.name} in experiment '{experiment}' at {uri}."
        )
    objective = data.objective
    shown = {**MLFLOW_COLUMNS, f"metrics.{objective.metric}": objective.metric}
    columns = [c for c in shown if c in runs.columns]
    table = runs[columns].rename(columns=shown)
    if objective.metric in table.columns:
        table = table.sort_values(
            objective.metric, ascending=objective.mode == "min", na_position="last"
        )
    return Section(
        key, title, table=table.reset_index(drop=True), note=f"experiment '{experiment}'"
    )

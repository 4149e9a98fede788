"""The search's results table (Parquet under its storage path), the leaderboard,
and export of the best trials as configs that `augkd train --config` re-runs."""

from __future__ import annotations

import io
import json
import math
import shlex
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from augkd.dotted import short_names
from augkd.errors import ConfigError, DataError
from augkd.locations import RESULTS_FILE
from augkd.metric_names import BEST_VAL_ACC1, TEST_ACC1, label, ranking_value
from augkd.search.space import Objective, recorded_objective
from augkd.storage import join_uri, read_bytes, uri_is_file, write_bytes

PARAM_PREFIX = "param:"
"""A results-table column holding a sampled value is this prefix and the config key."""
STATUS_ORDER = {"completed": 0, "pruned": 1, "running": 2, "interrupted": 2, "failed": 3}


def param_column(key: str) -> str:
    """The results-table column of a searched config key (module3.a -> param:module3.a)."""
    return PARAM_PREFIX + key


def param_keys(rows: list[dict[str, Any]]) -> list[str]:
    """The searched config keys the rows hold a sampled value for, sorted."""
    return sorted(
        {k.removeprefix(PARAM_PREFIX) for row in rows for k in row if k.startswith(PARAM_PREFIX)}
    )


class ResultsTable:
    """One row per trial, keyed by Tune's trial id; rewritten whole on each update."""

    def __init__(self, search_path: str) -> None:
        self.uri = join_uri(search_path, RESULTS_FILE)
        self.rows: dict[str, dict[str, Any]] = {}
        if uri_is_file(self.uri):
            for row in _read_table(self.uri).to_pylist():
                self.rows[row["trial_id"]] = row

    def update(self, trial_id: str, **values: Any) -> None:
        self.rows.setdefault(trial_id, {"trial_id": trial_id}).update(values)

    def write(self) -> None:
        columns = list(dict.fromkeys(key for row in self.rows.values() for key in row))
        # from_pylist takes its columns from the first row alone: give every row all keys.
        table = pa.Table.from_pylist(
            [{key: row.get(key) for key in columns} for row in self.rows.values()]
        )
        buffer = io.BytesIO()
        pq.write_table(table, buffer)
        write_bytes(self.uri, buffer.getvalue())


def _read_table(uri: str) -> pa.Table:
    try:
        return pq.read_table(io.BytesIO(read_bytes(uri)))
    except (OSError, pa.ArrowException) as error:
        raise DataError(
            f"Results table '{uri}' cannot be read ({str(error).split('. ')[0][:160]}); "
            "it is damaged: restore it from a copy, or move it aside and re-run the search."
        ) from None


def load_results(search_path: str) -> list[dict[str, Any]]:
    """Rows of a finished (or running) search; a clear error when there is none."""
    uri = join_uri(search_path, RESULTS_FILE)
    if not uri_is_file(uri):
        raise ConfigError(
            f"No results table at '{uri}'; pass --search the folder a search wrote "
            "(its storage path and name, e.g. augkd_runs/digits-20261126-120000)."
        )
    return _read_table(uri).to_pylist()


def rank(rows: list[dict[str, Any]], objective: Objective) -> list[dict[str, Any]]:
    """Completed trials first, then best first by the search's objective (test never
    decides; a trial without a value goes last)."""
    return sorted(
        rows,
        key=lambda r: (
            STATUS_ORDER.get(r.get("status"), 4),
            -ranking_value(r.get(objective.metric), objective.mode),
        ),
    )


def leaderboard_metrics(objective: Objective) -> list[str]:
    """The objective first, then best val and test Acc@1 (shown, never used to choose)."""
    return list(dict.fromkeys([objective.metric, BEST_VAL_ACC1, TEST_ACC1]))


def format_leaderboard(rows: list[dict[str, Any]], objective: Objective, limit: int = 20) -> str:
    if not rows:
        return "no trials yet"
    keys = param_keys(rows)
    metrics = leaderboard_metrics(objective)
    fixed = ["#", "trial", "status", *map(label, metrics), "steps"]
    names = short_names(keys, taken=fixed)
    header = fixed + [names[k] for k in keys]
    lines = []
    for place, row in enumerate(rank(rows, objective)[:limit], start=1):
        cells = [
            str(place),
            str(row["trial_id"]),
            str(row.get("status", "?")),
            *(_fmt(row.get(metric)) for metric in metrics),
            _fmt(row.get("steps_run")),
        ] + [_fmt(row.get(param_column(k))) for k in keys]
        lines.append(cells)
    widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(header)]
    render = lambda cells: "  ".join(c.rjust(w) for c, w in zip(cells, widths, strict=True))  # noqa: E731
    return "\n".join([render(header), *(render(line) for line in lines)])


def _fmt(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 100 else f"{value:.1f}"
    return str(value)


def ranked_completed(search_path: str) -> list[dict[str, Any]]:
    """Completed trials, best first by the search's objective; a ConfigError when there
    is none."""
    objective = recorded_objective(search_path)
    ranked = [
        r for r in rank(load_results(search_path), objective) if r.get("status") == "completed"
    ]
    if not ranked:
        raise ConfigError(
            f"Search '{search_path}' has no completed trial to export; let it run longer "
            "or resume it with --resume."
        )
    return ranked


def best_completed(search_path: str) -> dict[str, Any]:
    return ranked_completed(search_path)[0]


def export_best(search_path: str, top_k: int, out_dir: str) -> list[Path]:
    """Write the top-k completed trials' full configs; they re-run unchanged."""
    ranked = ranked_completed(search_path)
    objective = recorded_objective(search_path)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for place, row in enumerate(ranked[:top_k], start=1):
        config = yaml.safe_load(row["config_yaml"])
        values = ", ".join(f"{m} {_fmt(row.get(m))}" for m in leaderboard_metrics(objective))
        header = (
            f"# exported from {search_path}, trial {row['trial_id']}, rank {place} "
            f"by {objective.label()}\n"
            f"# {values}\n"
            f"# re-run: {shlex.join(['augkd', 'train', '--config', str(out / f'rank{place}.yaml')])}\n"
        )
        path = out / f"rank{place}.yaml"
        path.write_text(header + yaml.safe_dump(config, sort_keys=False))
        written.append(path)
    (out / "summary.json").write_text(
        json.dumps(
            [
                {k: v for k, v in r.items() if k not in ("config_yaml", "history_json")}
                for r in ranked[:top_k]
            ],
            indent=2,
            default=str,
        )
    )
    return written

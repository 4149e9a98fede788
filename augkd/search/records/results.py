"""The search's results table (Parquet under its storage path), the leaderboard,
and export of the best trials as configs that `augkd train --config` re-runs."""

from __future__ import annotations

import io
import json
import math
import re
import shlex
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from augkd.basics.dotted import short_names
from augkd.basics.errors import ConfigError, DataError
from augkd.basics.metric_names import BEST_VAL_ACC1, STEP, TEST_ACC1, label, ranking_key
from augkd.search.prepare.space import Objective, recorded_objective
from augkd.storage.files import join_uri, read_bytes, uri_is_file, write_bytes
from augkd.storage.locations import RESULTS_FILE

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
    """Completed trials first, then best first by the search's objective, ties broken by
    val loss (test never decides; a trial without a value goes last)."""

    def order(row: dict[str, Any]) -> tuple[float, ...]:
        better = ranking_key(row, objective.metric, objective.mode)
        return (STATUS_ORDER.get(row.get("status"), 4), *(-value for value in better))

    return sorted(rows, key=order)


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


def history_of(row: dict[str, Any]) -> list[dict[str, Any]]:
    """A results-table row's per-val-pass reports, oldest first (none before its first)."""
    return json.loads(row.get("history_json") or "[]")


def report_at_step(row: dict[str, Any], metric: str, step: float) -> dict[str, Any] | None:
    """The trial's last val pass at or before optimizer step ``step`` that holds ``metric``
    (what ASHA compared at a rung there); None when it reported none by then."""
    seen = [
        h for h in history_of(row) if h.get(STEP) is not None and h[STEP] <= step and metric in h
    ]
    return seen[-1] if seen else None


def steps_reached(row: dict[str, Any]) -> float:
    """The last optimizer step the trial reported (0 for none)."""
    return max((float(h[STEP]) for h in history_of(row) if h.get(STEP) is not None), default=0.0)


def ranked_at_common_step(
    rows: list[dict[str, Any]], objective: Objective, top_k: int
) -> list[tuple[dict[str, Any], float]]:
    """The ``top_k`` best trials (row, step judged at), compared at equal fidelity: at the
    highest optimizer step that at least ``top_k`` trials reached (a rung, under ASHA, or the
    full budget when enough completed), by the objective's value there. Only completed
    trials would leave fewer candidates than asked whenever ASHA completes fewer; a trial
    stopped at a rung is judged where it stood against the others at that same step.
    Ties go to the lower val loss there. Failed trials are never candidates."""
    usable = [r for r in rows if r.get("status") != "failed" and steps_reached(r) > 0]
    if not usable:
        return []
    reached = sorted((steps_reached(r) for r in usable), reverse=True)
    step = reached[min(top_k, len(reached)) - 1]
    judged = []
    for row in usable:
        report = report_at_step(row, objective.metric, step) if steps_reached(row) >= step else None
        if report is not None:
            judged.append((row, step, ranking_key(report, objective.metric, objective.mode)))
    judged.sort(key=lambda item: item[2], reverse=True)
    return [(row, step) for row, step, _ in judged[:top_k]]


def best_completed(search_path: str) -> dict[str, Any]:
    return ranked_completed(search_path)[0]


RANK_FILE = re.compile(r"rank(\d+)\.yaml")


def _remove_stale_ranks(out: Path, kept: int) -> None:
    """An earlier, larger export into the same folder left rank files this one did not
    write; beside the new summary they would pass for its ranks."""
    for path in out.glob("rank*.yaml"):
        match = RANK_FILE.fullmatch(path.name)
        if match and int(match[1]) > kept:
            path.unlink()


def export_best(search_path: str, top_k: int, out_dir: str) -> list[Path]:
    """Write the top-k completed trials' full configs (they re-run unchanged), and only
    those: rank files of an earlier export beyond them are removed."""
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
    _remove_stale_ranks(out, len(written))
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


def fewer_completed(search_path: str, written: int, top_k: int) -> str:
    """The line that says an export holds fewer configs than its --top-k asked for."""
    trials = "trial" if written == 1 else "trials"
    return (
        f"note: only {written} {trials} of '{search_path}' completed, so {written} of the "
        f"{top_k} configs --top-k asked for were written; resume the search for more."
    )

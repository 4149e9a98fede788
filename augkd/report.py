"""Compare the trials of a finished search: leaderboard, parallel coordinates,
fANOVA importance, val curves against ASHA's rungs, mixup schedules, AuG-KD against
the baselines, and the child runs in MLflow.

Shared by ``analysis/compare_trials.ipynb`` (one function a cell) and
``augkd report --search PATH`` (PNG figures and a static ``index.html``). Every
section either draws its figure or says, in a note, why it cannot; a search with one
trial, only failed trials or no finished trial gives notes, never a traceback.
"""

from __future__ import annotations

import html
import io
import json
import math
import os
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from augkd.errors import ConfigError
from augkd.metrics import mean_std

REPO_ROOT = Path(__file__).resolve().parents[1]
SEARCH_NAME = re.compile(r"^(?P<space>.+)-(?P<stamp>\d{8}-\d{6})$")
SPACE_FILE = "search_space.json"
BASELINES_FILE = "baselines.json"
OBJECTIVE = "best_val_acc1"
TOP_K = 3
FINISHED = ("completed", "pruned")
METHOD_LABELS = {"augkd": "AuG-KD", "ce": "CE", "kd": "KD", "dfkd": "DFKD"}


# -- finding and loading a search ----------------------------------------------------
def default_storage() -> Path:
    """Where ``python search.py`` run from the repository root writes its searches."""
    storage = os.environ.get("AUGKD_STORAGE", "augkd_runs")
    path = Path(storage).expanduser()
    if path.is_absolute():
        return path
    root = REPO_ROOT if (REPO_ROOT / "search.py").is_file() else Path.cwd()
    return root / path


def default_tracking_uri() -> str:
    """$AUGKD_TRACKING_URI, else the repository root's mlflow.db (what search.py writes)."""
    if os.environ.get("AUGKD_TRACKING_URI"):
        return os.environ["AUGKD_TRACKING_URI"]
    root = REPO_ROOT if (REPO_ROOT / "search.py").is_file() else Path.cwd()
    return f"sqlite:///{root / 'mlflow.db'}"


def latest_search_path(storage: str | Path | None = None) -> str | None:
    """The most recent ``<space>-<YYYYmmdd-HHMMSS>`` folder under the storage, if any."""
    root = Path(storage) if storage is not None else default_storage()
    if not root.is_dir():
        return None
    found = [
        (match["stamp"], child.name)
        for child in root.iterdir()
        if child.is_dir() and (match := SEARCH_NAME.match(child.name))
    ]
    return str(root / max(found)[1]) if found else None


def resolve_search_path(search_path: str | None = None) -> str | None:
    """The argument, else $AUGKD_SEARCH_PATH, else the latest search under augkd_runs/."""
    return search_path or os.environ.get("AUGKD_SEARCH_PATH") or latest_search_path()


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
    def param_keys(self) -> list[str]:
        """The searched hyperparameters (dotted config keys), in the space's order."""
        keys = list((self.space or {}).get("params") or {})
        from_rows = sorted(
            {k.removeprefix("param:") for r in self.rows for k in r if k.startswith("param:")}
        )
        return keys + [k for k in from_rows if k not in keys]

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

    from augkd.storage import resolve_filesystem

    filesystem, path = resolve_filesystem(uri)
    kind = filesystem.get_file_info(path).type
    return kind != pafs.FileType.NotFound, kind == pafs.FileType.Directory


def load_search(
    search_path: str | None = None, tracking_uri: str | None = None, strict: bool = False
) -> SearchData:
    """Read a search's results table and space; what is missing becomes a note.

    ``strict`` raises ConfigError when the search folder itself does not exist (the
    CLI's typo check); without it the notebook still renders, with notes.
    """
    from augkd.search.results import join_uri, load_results
    from augkd.storage import read_bytes

    resolved = resolve_search_path(search_path)
    uri = tracking_uri or default_tracking_uri()
    if resolved is None:
        if strict:
            raise ConfigError("No search given and none found under augkd_runs/; pass --search.")
        data = SearchData("(no search)", uri)
        data.notes.append(
            f"No search found: set AUGKD_SEARCH_PATH to a search folder, or run "
            f"`python search.py` from the repository root (it writes {default_storage()})."
        )
        return data
    data = SearchData(resolved, uri)
    exists, is_folder = _exists(resolved)
    if not (exists and is_folder):
        if strict:
            raise ConfigError(
                f"Search folder '{resolved}' does not exist; pass --search the folder a "
                "search wrote (e.g. augkd_runs/digits-20261126-120000)."
            )
        data.notes.append(f"Search folder '{resolved}' does not exist.")
        return data
    try:
        data.rows = load_results(resolved)
    except ConfigError as error:
        data.notes.append(str(error))
    except Exception as error:  # a half-written or foreign file
        data.notes.append(f"The results table of '{resolved}' cannot be read ({error}).")
    try:
        data.space = json.loads(read_bytes(join_uri(resolved, SPACE_FILE)))
    except Exception:
        data.notes.append(
            f"No readable {SPACE_FILE} in '{resolved}': param ranges come from the trials, "
            "and fANOVA importance and ASHA's rungs are left out."
        )
    return data


# -- small helpers -------------------------------------------------------------------
def _num(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _history(row: dict[str, Any]) -> list[dict[str, Any]]:
    try:
        history = json.loads(row.get("history_json") or "[]")
    except (TypeError, ValueError):
        return []
    return [h for h in history if isinstance(h, dict) and _num(h.get("epoch")) is not None]


def _ranked(data: SearchData) -> list[dict[str, Any]]:
    from augkd.search.results import rank

    return rank(data.rows)


def _with_status(data: SearchData, *statuses: str) -> list[dict[str, Any]]:
    return [r for r in _ranked(data) if r.get("status") in statuses]


def _finished(data: SearchData) -> list[dict[str, Any]]:
    """Completed and pruned trials that reported a best val Acc@1."""
    return [r for r in _with_status(data, *FINISHED) if _num(r.get(OBJECTIVE)) is not None]


def _short_names(keys: list[str]) -> dict[str, str]:
    """module3.a -> a, unless two keys share their last part."""
    last = [k.split(".")[-1] for k in keys]
    return {k: (s if last.count(s) == 1 else k) for k, s in zip(keys, last, strict=True)}


def _error_line(value: Any, width: int = 120) -> str | None:
    if not value:
        return None
    lines = [line.strip() for line in str(value).strip().splitlines() if line.strip()]
    text = lines[-1] if lines else str(value)
    return text if len(text) <= width else text[: width - 1] + "…"


def _config_value(data: SearchData, row: dict[str, Any], key: str) -> Any:
    """A trial's value for a dotted config key: its sampled param, else the base config."""
    if row.get(f"param:{key}") is not None:
        return row[f"param:{key}"]
    node: Any = data.base
    for part in key.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    return node


def max_epochs(data: SearchData) -> int | None:
    scheduler = (data.space or {}).get("scheduler") or {}
    value = scheduler.get("max_epochs") or (data.base.get("module3") or {}).get("epochs")
    return int(value) if _num(value) else None


def asha_rungs(data: SearchData) -> list[float]:
    """ASHA's milestones: grace_period * reduction_factor**k up to max_epochs."""
    scheduler = (data.space or {}).get("scheduler") or {}
    top = max_epochs(data)
    grace, factor = _num(scheduler.get("grace_period")), _num(scheduler.get("reduction_factor"))
    if scheduler.get("name") != "asha" or not top or not grace or not factor or factor <= 1:
        return []
    rungs, milestone = [], grace
    while milestone <= top + 1e-9:
        rungs.append(milestone)
        milestone *= factor
    return rungs


# -- sections ------------------------------------------------------------------------
@dataclass
class Section:
    """One figure or table of the report, or the note that stands in for it."""

    key: str
    title: str
    figure: Figure | None = None
    table: pd.DataFrame | None = None
    note: str | None = None

    def png(self) -> bytes | None:
        if self.figure is None:
            return None
        buffer = io.BytesIO()
        self.figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
        return buffer.getvalue()


def leaderboard(data: SearchData, limit: int | None = None) -> Section:
    """Completed trials first, by best val Acc@1; test Acc@1 is shown, never used to rank."""
    title = "Leaderboard (ranked by best val Acc@1; test Acc@1 shown, never used to choose)"
    if not data.rows:
        return Section("leaderboard", title, note="No trials to rank. " + " ".join(data.notes))
    keys = data.param_keys
    names = _short_names(keys)
    records = []
    for place, row in enumerate(_ranked(data)[:limit], start=1):
        record: dict[str, Any] = {
            "rank": place,
            "trial": row.get("trial_id"),
            "status": row.get("status"),
            "best val acc1": _num(row.get(OBJECTIVE)),
            "test acc1": _num(row.get("test_acc1")),
            "epochs": _num(row.get("epochs_run")),
            "best epoch": _num(row.get("best_epoch")),
        }
        for key in keys:
            value = row.get(f"param:{key}")
            record[names[key]] = round(value, 4) if isinstance(value, float) else value
        record["wall s"] = _num(row.get("wall_seconds"))
        record["error"] = _error_line(row.get("error"))
        records.append(record)
    table = pd.DataFrame.from_records(records)
    if table["error"].isna().all():
        table = table.drop(columns="error")
    return Section("leaderboard", title, table=table, note=data.summary())


def plot_parallel_coordinates(data: SearchData) -> Section:
    """One line per trial over the searched params, coloured by best val Acc@1."""
    import numpy as np
    from matplotlib import colormaps
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    key = "parallel_coordinates"
    title = "Parallel coordinates of the searched hyperparameters, coloured by best val Acc@1"
    keys = data.param_keys
    if not keys:
        return Section(key, title, note="No searched hyperparameters recorded.")
    rows = [r for r in data.rows if any(r.get(f"param:{k}") is not None for k in keys)]
    scored = [r for r in rows if _num(r.get(OBJECTIVE)) is not None]
    if not scored:
        return Section(key, title, note="No trial reported a val accuracy yet: nothing to colour.")

    names = _short_names(keys)
    axes_info = []  # (label, function value -> [0, 1], tick labels [(pos, text)])
    for k in keys:
        spec = data.param_spec(k)
        values = [r.get(f"param:{k}") for r in rows if r.get(f"param:{k}") is not None]
        if spec.get("type") == "categorical" or any(isinstance(v, str | bool) for v in values):
            choices = list(spec.get("choices") or [])
            choices += [v for v in dict.fromkeys(values) if v not in choices]
            span = max(len(choices) - 1, 1)
            position = {
                repr(c): i / span if len(choices) > 1 else 0.5 for i, c in enumerate(choices)
            }
            ticks = [(position[repr(c)], str(c)) for c in choices]
            axes_info.append((names[k], lambda v, p=position: p.get(repr(v), np.nan), ticks))
            continue
        numbers = [n for n in map(_num, values) if n is not None]
        low = _num(spec.get("low"))
        high = _num(spec.get("high"))
        low = low if low is not None else min(numbers, default=0.0)
        high = high if high is not None else max(numbers, default=1.0)
        log = spec.get("type") == "log_float" and low > 0
        f_low, f_high = (math.log10(low), math.log10(high)) if log else (low, high)
        width = (f_high - f_low) or 1.0

        def scale(v, log=log, f_low=f_low, width=width):
            n = _num(v)
            if n is None or (log and n <= 0):
                return np.nan
            return ((math.log10(n) if log else n) - f_low) / width

        ticks = [(0.0, f"{low:.3g}"), (1.0, f"{high:.3g}")]
        label = f"{names[k]}\n(log)" if log else names[k]
        axes_info.append((label, scale, ticks))

    objective = [_num(r.get(OBJECTIVE)) for r in scored]
    o_low, o_high = min(objective), max(objective)
    if o_high - o_low < 1e-9:
        o_low, o_high = o_low - 1.0, o_high + 1.0
    norm = Normalize(o_low, o_high)
    cmap = colormaps["viridis"]

    figure = Figure(figsize=(max(6.0, 1.5 * (len(keys) + 1)), 4.5))
    ax = figure.subplots()
    n_axes = len(axes_info) + 1
    xs = np.arange(n_axes)
    for row in sorted(rows, key=lambda r: _num(r.get(OBJECTIVE)) or -math.inf):
        value = _num(row.get(OBJECTIVE))
        ys = [f(row.get(f"param:{k}")) for k, (_, f, _) in zip(keys, axes_info, strict=True)]
        ys.append(norm(value) if value is not None else np.nan)
        status = row.get("status")
        if value is None:
            ax.plot(xs[:-1], ys[:-1], color="0.6", linestyle=":", linewidth=1.2)
        else:
            ax.plot(
                xs,
                ys,
                color=cmap(norm(value)),
                linewidth=2.0 if status == "completed" else 1.2,
                linestyle="-" if status == "completed" else "--",
                alpha=0.9,
            )
    for i, (_, _, ticks) in enumerate(axes_info):
        ax.axvline(i, color="0.3", linewidth=0.8)
        for pos, text in ticks:
            ax.annotate(
                text,
                (i, pos),
                xytext=(3, 0),
                textcoords="offset points",
                fontsize=7,
                va="center",
                color="0.2",
            )
    ax.axvline(n_axes - 1, color="0.3", linewidth=0.8)
    for pos, text in ((0.0, f"{o_low:.3g}"), (1.0, f"{o_high:.3g}")):
        ax.annotate(
            text,
            (n_axes - 1, pos),
            xytext=(3, 0),
            textcoords="offset points",
            fontsize=7,
            va="center",
        )
    ax.set_xticks(xs, [label for label, _, _ in axes_info] + ["best val acc1"], fontsize=8)
    ax.set_yticks([])
    ax.set_ylim(-0.08, 1.08)
    ax.set_xlim(-0.2, n_axes - 0.6)
    for side in ("left", "right", "top"):
        ax.spines[side].set_visible(False)
    figure.colorbar(ScalarMappable(norm, cmap), ax=ax, label="best val Acc@1", pad=0.02)
    statuses = ", ".join(f"{n} {s}" for s, n in sorted(data.status_counts().items()))
    ax.set_title(
        f"{data.name}: {statuses}\n(solid: completed, dashed: pruned, grey dotted: no val acc)",
        fontsize=9,
    )
    return Section(key, title, figure=figure)


def _distribution(spec: dict[str, Any]):
    from optuna.distributions import (
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )

    kind = spec.get("type")
    if kind == "categorical":
        return CategoricalDistribution(list(spec["choices"]))
    if kind == "int":
        return IntDistribution(int(spec["low"]), int(spec["high"]), step=int(spec.get("step") or 1))
    if kind == "log_float":
        return FloatDistribution(float(spec["low"]), float(spec["high"]), log=True)
    if kind == "float":
        step = spec.get("step")
        return FloatDistribution(float(spec["low"]), float(spec["high"]), step=step)
    raise ValueError(f"unknown param type {kind!r}")


def _optuna():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tqdm's "IProgress not found" inside Jupyter
        import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def importance_study(data: SearchData):
    """An Optuna study rebuilt from the table: completed and pruned trials, each with its
    best val Acc@1. Returns (study, completed, pruned, skipped)."""
    optuna = _optuna()
    distributions = {}
    for k in data.param_keys:
        spec = data.param_spec(k)
        if spec:
            distributions[k] = _distribution(spec)
    study = optuna.create_study(direction="maximize")
    counts = {"completed": 0, "pruned": 0}
    skipped = 0
    for row in _finished(data):
        params = {k: row[f"param:{k}"] for k in distributions if row.get(f"param:{k}") is not None}
        try:
            trial = optuna.trial.create_trial(
                params=params,
                distributions={k: distributions[k] for k in params},
                value=_num(row[OBJECTIVE]),
                state=optuna.trial.TrialState.COMPLETE,
            )
        except ValueError:
            skipped += 1  # a value outside its distribution (a space edited since)
            continue
        study.add_trial(trial)
        counts[row["status"]] += 1
    return study, counts["completed"], counts["pruned"], skipped


def plot_importance(data: SearchData) -> Section:
    """fANOVA importance of the params for best val Acc@1."""
    optuna = _optuna()
    key = "importance"
    title = "Hyperparameter importance (fANOVA)"
    if data.space is None or not (data.space.get("params") or {}):
        return Section(key, title, note=f"No {SPACE_FILE} with the params' distributions.")
    study, completed, pruned, skipped = importance_study(data)
    finished = completed + pruned
    if finished < 2:
        return Section(
            key,
            title,
            note=f"fANOVA needs at least 2 finished (completed or pruned) trials with a val "
            f"accuracy; this search has {finished}.",
        )
    if len({t.value for t in study.trials}) < 2:
        return Section(
            key,
            title,
            note="Every finished trial scored the same best val Acc@1: "
            "there is no variance to attribute.",
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            importances = optuna.importance.get_param_importances(
                study, evaluator=optuna.importance.FanovaImportanceEvaluator(seed=0)
            )
    except Exception as error:
        return Section(key, title, note=f"fANOVA could not be computed ({error}).")
    if not importances:
        return Section(key, title, note="No param was sampled in every finished trial.")
    names = list(importances)[::-1]
    figure = Figure(figsize=(6.5, 0.45 * len(names) + 1.6))
    ax = figure.subplots()
    ax.barh(range(len(names)), [importances[n] for n in names], color="tab:blue")
    ax.set_yticks(range(len(names)), names, fontsize=8)
    ax.set_xlabel("importance for best val Acc@1 (fANOVA, sums to 1)")
    extra = f"; {skipped} skipped (outside the space)" if skipped else ""
    if finished < 10:
        extra += f"; rough with {finished} trials"
    ax.set_title(
        f"fANOVA over {completed} completed + {pruned} pruned trials\n(pruned ones at "
        f"their best val Acc@1 before ASHA stopped them{extra})",
        fontsize=9,
    )
    return Section(
        key, f"{title} over {completed} completed + {pruned} pruned trials", figure=figure
    )


def plot_curves(data: SearchData, top_k: int = TOP_K) -> Section:
    """Val Acc@1 per epoch of the top completed trials against the pruned ones."""
    key = "val_curves"
    title = f"Val Acc@1 per epoch: top {top_k} completed trials against the pruned ones"
    top = [r for r in _with_status(data, "completed") if _history(r)][:top_k]
    pruned = [r for r in _with_status(data, "pruned") if _history(r)]
    failed = [r for r in _with_status(data, "failed", "running") if _history(r)]
    if not (top or pruned or failed):
        return Section(key, title, note="No trial reported a val accuracy for any epoch.")
    figure = Figure(figsize=(7.0, 4.2))
    ax = figure.subplots()
    groups = [
        (top, {"marker": "o", "linewidth": 2}, None),
        (pruned, {"marker": "o", "markersize": 3, "linewidth": 1, "color": "0.55", "linestyle": "--"},
         f"pruned ({len(pruned)})"),
        (failed, {"marker": "x", "linewidth": 1, "color": "tab:red", "linestyle": ":"},
         f"failed/running ({len(failed)})"),
    ]  # fmt: skip
    for rows, style, group_label in groups:
        for j, row in enumerate(rows):
            history = _history(row)
            if group_label is None:  # the top trials: one colour and label each
                style = {**style, "color": f"C{j}"}
                label = f"#{j + 1} {row['trial_id']} (best {_num(row[OBJECTIVE]):.1f})"
            else:
                label = group_label if j == 0 else None
            ax.plot(
                [h["epoch"] for h in history], [h.get("val_acc1") for h in history],
                label=label, **style,
            )  # fmt: skip
    rungs = asha_rungs(data)
    for i, milestone in enumerate(rungs):
        ax.axvline(
            milestone,
            color="tab:purple",
            linestyle=":",
            linewidth=1.2,
            label="ASHA rungs" if i == 0 else None,
        )
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch (Module 3)")
    ax.set_ylabel("val Acc@1 (%)")
    extra = "" if top else " (no completed trial)"
    rung_text = ", ".join(f"{m:g}" for m in rungs) or "none"
    ax.set_title(
        f"{data.name}: val Acc@1 per epoch{extra}\nASHA rungs at epochs {rung_text}", fontsize=9
    )
    ax.legend(fontsize=7, loc="best")
    ax.grid(alpha=0.3)
    return Section(key, title, figure=figure)


def schedule_curve(data: SearchData, row: dict[str, Any]) -> tuple[list[int], list[float]] | None:
    """s(e) over every epoch, recomputed from the trial's config (AuG-KD's plan)."""
    from augkd.method.plans import METHOD_PLANS
    from augkd.method.schedules import MIXUP_SCHEDULES, mixup_schedule

    method = _config_value(data, row, "method") or "augkd"
    plan = METHOD_PLANS.get(method)
    if plan is None or plan.batches != "mixup":
        return None
    kind = plan.schedule or _config_value(data, row, "module3.schedule")
    total = _num(_config_value(data, row, "module3.epochs"))
    a = _num(_config_value(data, row, "module3.a"))
    b = _num(_config_value(data, row, "module3.b"))
    if kind not in MIXUP_SCHEDULES or not total or a is None or b is None or a <= 0:
        return None
    epochs = list(range(int(total)))
    # Module 3 draws epoch e (0-based) with s(e); the table's epochs count from 1.
    return [e + 1 for e in epochs], [mixup_schedule(kind, e, int(total), a, b) for e in epochs]


def plot_mixup_schedule(data: SearchData, top_k: int = TOP_K) -> Section:
    """The student-domain share s(e) of the best trials."""
    key = "mixup_schedule"
    title = f"Mixup schedule s(e) of the top {top_k} trials"
    finished = _finished(data)
    best = [r for r in finished if r["status"] == "completed"][:top_k] or finished[:top_k]
    if not best:
        return Section(
            key,
            title,
            note="No completed or pruned trial with a val accuracy: no schedule to show.",
        )
    figure = Figure(figsize=(7.0, 4.0))
    ax = figure.subplots()
    drawn = 0
    for i, row in enumerate(best):
        kind = _config_value(data, row, "module3.schedule")
        a, b = (
            _num(_config_value(data, row, "module3.a")),
            _num(_config_value(data, row, "module3.b")),
        )
        label = (
            f"{row['trial_id']} ({kind}, a={a:.2f}, b={b:.2f})"
            if a is not None and b is not None
            else str(row["trial_id"])
        )
        curve = schedule_curve(data, row)
        if curve is not None:
            ax.plot(*curve, color=f"C{i}", linewidth=1.8, drawstyle="default", label=label)
            drawn += 1
        history = [h for h in _history(row) if _num(h.get("mixup_share")) is not None]
        if history:
            ax.plot(
                [h["epoch"] for h in history],
                [h["mixup_share"] for h in history],
                linestyle="none",
                marker="o",
                color=f"C{i}",
                markersize=5,
                label=None if curve is not None else label,
            )
            drawn += curve is None
    if not drawn:
        return Section(
            key, title, note="The best trials recorded no mixup share and use no mixup schedule."
        )
    ax.set_ylim(-0.02, 1.05)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch (Module 3)")
    ax.set_ylabel("s(e): share of student-domain images")
    status = best[0].get("status")
    ax.set_title(
        f"s(e) of the top {len(best)} {status} trials (lines: recomputed, dots: logged)", fontsize=9
    )
    ax.legend(fontsize=7, loc="lower right")
    ax.grid(alpha=0.3)
    return Section(key, title, figure=figure)


def find_baselines(data: SearchData, path: str | None = None) -> str | None:
    """The multi-seed evaluation: the argument, $AUGKD_BASELINES_JSON, or SEARCH/baselines.json."""
    from augkd.search.results import join_uri

    candidates = [path, os.environ.get("AUGKD_BASELINES_JSON")]
    if data.search_path != "(no search)":
        candidates.append(join_uri(data.search_path, BASELINES_FILE))
    for candidate in candidates:
        if candidate and _exists(candidate)[0]:
            return candidate
    return None


def plot_baselines(data: SearchData, path: str | None = None, metric: str = "test_acc1") -> Section:
    """AuG-KD against the baselines: mean ± std over seeds, every seed as a dot."""
    from augkd.storage import read_bytes

    key = "baselines"
    title = "AuG-KD against the baselines (test Acc@1, mean ± std over seeds)"
    found = find_baselines(data, path)
    if found is None:
        return Section(
            key,
            title,
            note=f"No multi-seed evaluation found: write {BASELINES_FILE} into the search folder "
            'or set AUGKD_BASELINES_JSON (format: {"methods": {"augkd": {"test_acc1": '
            '[seed0, seed1, ...]}, "ce": {...}}}).',
        )
    try:
        methods = json.loads(read_bytes(found))["methods"]
        series = {
            name: [v for v in map(_num, values[metric]) if v is not None]
            for name, values in methods.items()
            if isinstance(values, dict) and isinstance(values.get(metric), list)
        }
    except Exception as error:
        return Section(
            key, title, note=f"{found} cannot be read as a multi-seed evaluation ({error})."
        )
    series = {name: values for name, values in series.items() if values}
    if not series:
        return Section(key, title, note=f"{found} holds no method with {metric} values.")
    order = sorted(series, key=lambda n: (n != "augkd", n))
    means, stds = zip(*(mean_std(series[n]) for n in order), strict=True)
    figure = Figure(figsize=(max(5.0, 1.0 * len(order) + 2), 4.0))
    ax = figure.subplots()
    colors = ["tab:red" if n == "augkd" else "tab:gray" for n in order]
    ax.bar(range(len(order)), means, yerr=stds, capsize=5, color=colors, alpha=0.75)
    for i, name in enumerate(order):
        ax.scatter([i] * len(series[name]), series[name], color="black", s=12, zorder=3)
    ax.set_xticks(range(len(order)), [METHOD_LABELS.get(n, n) for n in order])
    ax.set_ylabel(f"{metric} (%)")
    seeds = sorted({len(v) for v in series.values()})
    ax.set_title(
        f"{metric}: mean ± std over {'/'.join(map(str, seeds))} seeds ({Path(found).name})",
        fontsize=9,
    )
    ax.grid(axis="y", alpha=0.3)
    return Section(key, title, figure=figure)


MLFLOW_COLUMNS = {
    "tags.augkd.trial_id": "trial",
    "tags.augkd.status": "augkd.status",
    "status": "mlflow status",
    "metrics.best_val_acc1": "best_val_acc1",
    "metrics.val_acc1": "val_acc1",
    "metrics.test_acc1": "test_acc1",
    "metrics.epoch": "epoch",
    "metrics.mixup_share": "mixup_share",
    "run_id": "run_id",
}


def mlflow_runs(data: SearchData) -> Section:
    """The search's child runs as MLflow holds them (status tags, last metric values)."""
    key = "mlflow_runs"
    uri = data.tracking_uri
    title = f"Child runs in MLflow ({uri})"
    if uri.startswith("sqlite:///") and not Path(uri.removeprefix("sqlite:///")).is_file():
        return Section(
            key,
            title,
            note=f"The tracking store {uri} does not exist; set "
            "AUGKD_TRACKING_URI (or --tracking-uri) to the search's store.",
        )
    experiment = f"augkd-{data.space_name}"
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
            f"({type(error).__name__}: {_error_line(error)}).",
        )
    if runs is None or len(runs) == 0:
        return Section(
            key, title, note=f"No child runs of {data.name} in experiment '{experiment}' at {uri}."
        )
    columns = [c for c in MLFLOW_COLUMNS if c in runs.columns]
    table = runs[columns].rename(columns=MLFLOW_COLUMNS)
    if "best_val_acc1" in table.columns:
        table = table.sort_values("best_val_acc1", ascending=False, na_position="last")
    return Section(
        key, title, table=table.reset_index(drop=True), note=f"experiment '{experiment}'"
    )


def sections(data: SearchData, baselines: str | None = None) -> list[Section]:
    """Every section of the report, in order."""
    builders = [
        leaderboard,
        plot_parallel_coordinates,
        plot_importance,
        plot_curves,
        plot_mixup_schedule,
        lambda d: plot_baselines(d, baselines),
        mlflow_runs,
    ]
    names = [
        "leaderboard",
        "parallel_coordinates",
        "importance",
        "val_curves",
        "mixup_schedule",
        "baselines",
        "mlflow_runs",
    ]
    out = []
    for name, build in zip(names, builders, strict=True):
        try:
            out.append(build(data))
        except Exception as error:  # a figure must never take the report down
            out.append(
                Section(
                    name,
                    name,
                    note=f"could not be drawn ({type(error).__name__}: {_error_line(error)})",
                )
            )
    return out


# -- notebook and HTML output --------------------------------------------------------
def show(section: Section) -> None:
    """Display a section in Jupyter: its title, then its figure, table or note."""
    from IPython.display import Image, Markdown, display

    display(Markdown(f"### {section.title}"))
    if section.figure is not None:
        display(Image(data=section.png(), format="png"))
    if section.table is not None:
        display(section.table)
    if section.note:
        display(Markdown(f"*Note:* {section.note}"))


def show_summary(data: SearchData) -> None:
    """Display which search and tracking store the notebook reads, and their notes."""
    from IPython.display import Markdown, display

    lines = [
        f"**{data.summary()}**",
        f"- results: `{data.search_path}`",
        f"- MLflow: `{data.tracking_uri}`",
    ]
    lines += [f"- *Note:* {note}" for note in data.notes]
    display(Markdown("\n".join(lines)))


def _table_html(table: pd.DataFrame) -> str:
    return table.to_html(
        index=False,
        na_rep="-",
        border=0,
        classes="table",
        float_format=lambda v: f"{v:.3g}" if abs(v) < 100 else f"{v:.1f}",
    )


STYLE = """
body { font-family: sans-serif; margin: 2em; max-width: 1100px; }
table.table { border-collapse: collapse; font-size: 0.85em; }
table.table td, table.table th { padding: 3px 8px; border-bottom: 1px solid #ddd; text-align: right; }
.note { color: #555; font-style: italic; }
img { max-width: 100%; }
"""


def write_report(
    search_path: str, out_dir: str | None = None, tracking_uri: str | None = None
) -> Path:
    """Write every figure as PNG and an index.html (figures, leaderboard, MLflow runs)."""
    data = load_search(search_path, tracking_uri, strict=True)
    if out_dir is None:
        local = search_path if "://" not in search_path else str(Path("augkd_exports") / data.name)
        out_dir = str(Path(local) / "report")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    parts = [
        f"<h1>Search {html.escape(data.name)}</h1>",
        f"<p>{html.escape(data.summary())} Results: <code>{html.escape(data.search_path)}</code>; "
        f"MLflow: <code>{html.escape(data.tracking_uri)}</code></p>",
    ]
    parts += [f'<p class="note">{html.escape(note)}</p>' for note in data.notes]
    for section in sections(data):
        parts.append(f'<h2 id="{section.key}">{html.escape(section.title)}</h2>')
        png = section.png()
        if png is not None:
            (out / f"{section.key}.png").write_bytes(png)
            parts.append(f'<img src="{section.key}.png" alt="{html.escape(section.title)}">')
        if section.table is not None:
            parts.append(_table_html(section.table))
        if section.note:
            parts.append(f'<p class="note">{html.escape(section.note)}</p>')
    index = out / "index.html"
    index.write_text(
        "<!DOCTYPE html>\n<html><head><meta charset='utf-8'>"
        f"<title>augkd report: {html.escape(data.name)}</title><style>{STYLE}</style></head>"
        "<body>\n" + "\n".join(parts) + "\n</body></html>\n"
    )
    return index

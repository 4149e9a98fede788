"""Figures over the searched hyperparameters: parallel coordinates and fANOVA importance."""

from __future__ import annotations

import math
import warnings

from matplotlib.figure import Figure

from augkd.basics.metric_names import label, ranking_value
from augkd.report.loading import (
    FINISHED,
    SearchData,
    asha_rungs,
    budget_steps,
    finished,
    history_step,
    num,
    param_value,
    trial_history,
)
from augkd.report.section import Section
from augkd.storage.locations import SPACE_FILE


def plot_parallel_coordinates(data: SearchData) -> Section:
    """One line per trial over the searched params, coloured by the objective."""
    import numpy as np
    from matplotlib import colormaps
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    key = "parallel_coordinates"
    objective = data.objective
    metric = objective.metric
    title = f"Parallel coordinates of the searched hyperparameters, coloured by {metric}"
    keys = data.param_keys
    if not keys:
        return Section(key, title, note="No searched hyperparameters recorded.")
    rows = [r for r in data.rows if any(param_value(r, k) is not None for k in keys)]
    scored = [r for r in rows if num(r.get(metric)) is not None]
    if not scored:
        return Section(key, title, note=f"No trial reported {metric} yet: nothing to colour.")

    names = data.param_names
    axes_info = []  # (label, function value -> [0, 1], tick labels [(pos, text)])
    for k in keys:
        spec = data.param_spec(k)
        values = [param_value(r, k) for r in rows if param_value(r, k) is not None]
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
        numbers = [n for n in map(num, values) if n is not None]
        low = num(spec.get("low"))
        high = num(spec.get("high"))
        low = low if low is not None else min(numbers, default=0.0)
        high = high if high is not None else max(numbers, default=1.0)
        log = spec.get("type") == "log_float" and low > 0
        f_low, f_high = (math.log10(low), math.log10(high)) if log else (low, high)
        width = (f_high - f_low) or 1.0

        def scale(v, log=log, f_low=f_low, width=width):
            n = num(v)
            if n is None or (log and n <= 0):
                return np.nan
            return ((math.log10(n) if log else n) - f_low) / width

        ticks = [(0.0, f"{low:.3g}"), (1.0, f"{high:.3g}")]
        axis_label = f"{names[k]}\n(log)" if log else names[k]
        axes_info.append((axis_label, scale, ticks))

    values = [num(r.get(metric)) for r in scored]
    o_low, o_high = min(values), max(values)
    if o_high - o_low < 1e-9:
        o_low, o_high = o_low - 1.0, o_high + 1.0
    norm = Normalize(o_low, o_high)
    cmap = colormaps["viridis"]

    figure = Figure(figsize=(max(6.0, 1.5 * (len(keys) + 1)), 4.5))
    ax = figure.subplots()
    n_axes = len(axes_info) + 1
    xs = np.arange(n_axes)
    # the best last, drawn on top
    for row in sorted(rows, key=lambda r: ranking_value(num(r.get(metric)), objective.mode)):
        value = num(row.get(metric))
        ys = [f(param_value(row, k)) for k, (_, f, _) in zip(keys, axes_info, strict=True)]
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
    ax.set_xticks(xs, [name for name, _, _ in axes_info] + [label(metric)], fontsize=8)
    ax.set_yticks([])
    ax.set_ylim(-0.08, 1.08)
    ax.set_xlim(-0.2, n_axes - 0.6)
    for side in ("left", "right", "top"):
        ax.spines[side].set_visible(False)
    figure.colorbar(ScalarMappable(norm, cmap), ax=ax, label=objective.label(), pad=0.02)
    statuses = ", ".join(f"{n} {s}" for s, n in sorted(data.status_counts().items()))
    ax.set_title(
        f"{data.name}: {statuses}\n(solid: completed, dashed: pruned, grey dotted: no {metric})",
        fontsize=9,
    )
    return Section(key, title, figure=figure)


def _optuna():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tqdm's "IProgress not found" inside Jupyter
        import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def importance_fidelity(data: SearchData) -> tuple[float, list[dict]] | None:
    """One fidelity for importance: the deepest ASHA rung (or the full budget) that at
    least half of the finished trials reached, with those trials. Mixing fidelities
    would rank a pruned trial's early value against a completed trial's final one."""
    done = [r for r in finished(data) if trial_history(r)]
    top = budget_steps(data)
    levels = sorted({*asha_rungs(data), *([float(top)] if top else [])}, reverse=True)
    for level in levels:
        reached = [r for r in done if _value_at(r, level, data.objective.metric) is not None]
        if len(reached) >= max(2, len(done) / 2):
            return level, reached
    return None


def _value_at(row: dict, level: float, metric: str) -> float | None:
    """``metric`` at the trial's first report at or past optimizer step ``level`` (where
    ASHA judged it)."""
    for entry in trial_history(row):
        step = history_step(entry)
        if step is not None and step >= level:
            return num(entry.get(metric))
    return None


def importance_study(data: SearchData):
    """An in-memory Optuna study of the trials at one fidelity (importance_fidelity),
    each valued by the objective there. Returns (study, optimizer step, statuses)."""
    optuna = _optuna()
    from augkd.search.prepare.space import Param

    distributions = {
        k: Param.model_validate(data.param_spec(k)).distribution()
        for k in data.param_keys
        if data.param_spec(k)
    }
    objective = data.objective
    study = optuna.create_study(direction="maximize" if objective.mode == "max" else "minimize")
    chosen = importance_fidelity(data)
    if chosen is None:
        return study, None, {}
    step, rows = chosen
    statuses: dict[str, int] = {}
    for row in rows:
        params = {k: param_value(row, k) for k in distributions if param_value(row, k) is not None}
        value = _value_at(row, step, objective.metric)
        try:
            trial = optuna.trial.create_trial(
                params=params,
                distributions={k: distributions[k] for k in params},
                value=value,
                state=optuna.trial.TrialState.COMPLETE,
            )
        except ValueError:
            continue  # a value outside its distribution (a space edited since)
        study.add_trial(trial)
        statuses[row["status"]] = statuses.get(row["status"], 0) + 1
    return study, step, statuses


def plot_importance(data: SearchData) -> Section:
    """fANOVA importance of the params for the objective, at one fidelity, drawn by
    optuna.visualization.matplotlib."""
    optuna = _optuna()
    key = "importance"
    title = "Hyperparameter importance (fANOVA)"
    if data.space is None or not (data.space.get("params") or {}):
        return Section(key, title, note=f"No {SPACE_FILE} with the params' distributions.")
    study, step, statuses = importance_study(data)
    if step is None or len(study.trials) < 2:
        return Section(
            key,
            title,
            note="fANOVA needs at least 2 finished (completed or pruned) trials with a value "
            f"of {data.objective.metric} at one step; this search has {len(finished(data))} "
            "finished.",
        )
    if len({t.value for t in study.trials}) < 2:
        return Section(
            key,
            title,
            note=f"Every trial scored the same {data.objective.metric} at step {step:g}: "
            "there is no variance to attribute.",
        )
    from matplotlib import pyplot

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ax = optuna.visualization.matplotlib.plot_param_importances(
                study, evaluator=optuna.importance.FanovaImportanceEvaluator(seed=0)
            )
    except Exception as error:
        return Section(key, title, note=f"fANOVA could not be computed ({error}).")
    figure = ax.figure
    pyplot.close(figure)  # kept by the Section, not by pyplot
    counts = " + ".join(f"{statuses.get(s, 0)} {s}" for s in FINISHED)
    rough = f"; rough with {len(study.trials)} trials" if len(study.trials) < 10 else ""
    ax.set_title(
        f"fANOVA at optimizer step {step:g} over {counts} trials that reached it\n"
        f"({data.objective.metric} there: one fidelity{rough})",
        fontsize=9,
    )
    figure.set_size_inches(6.5, 0.45 * len(data.param_keys) + 1.8)
    return Section(key, f"{title} at step {step:g} over {counts} trials", figure=figure)

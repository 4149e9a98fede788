"""Figures over epochs: val curves against ASHA's rungs, and the mixup schedules s(e)."""

from __future__ import annotations

from typing import Any

from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from augkd.basics.metric_names import EPOCH, EPOCHS, MIXUP_SHARE, VAL_ACC1
from augkd.report.loading import (
    TOP_K,
    SearchData,
    asha_rungs,
    config_value,
    finished,
    history_step,
    num,
    trial_history,
    with_status,
)
from augkd.report.section import Section


def plot_curves(data: SearchData, top_k: int = TOP_K) -> Section:
    """Val Acc@1 per optimizer step of the top completed trials against the pruned ones."""
    key = "val_curves"
    title = f"Val Acc@1 by optimizer step: top {top_k} completed trials against the pruned ones"
    top = [r for r in with_status(data, "completed") if trial_history(r)][:top_k]
    pruned = [r for r in with_status(data, "pruned") if trial_history(r)]
    failed = [r for r in with_status(data, "failed", "running") if trial_history(r)]
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
            history = trial_history(row)
            if group_label is None:  # the top trials: one colour and label each
                style = {**style, "color": f"C{j}"}
                label = f"#{j + 1} {row['trial_id']} ({data.objective.metric} {_value(row, data)})"
            else:
                label = group_label if j == 0 else None
            ax.plot(
                [history_step(h) for h in history], [h.get(VAL_ACC1) for h in history],
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
    ax.set_xlabel("optimizer step (Module 3)")
    ax.set_ylabel("val Acc@1 (%)")
    extra = "" if top else " (no completed trial)"
    rung_text = ", ".join(f"{m:g}" for m in rungs) or "none"
    ax.set_title(
        f"{data.name}: val Acc@1 by step{extra}\nASHA rungs at steps {rung_text}", fontsize=9
    )
    ax.legend(fontsize=7, loc="best")
    ax.grid(alpha=0.3)
    return Section(key, title, figure=figure)


def _value(row: dict[str, Any], data: SearchData) -> str:
    value = num(row.get(data.objective.metric))
    return "-" if value is None else f"{value:.3g}"


def schedule_curve(data: SearchData, row: dict[str, Any]) -> tuple[list[int], list[float]] | None:
    """s(e) over every epoch, recomputed from the trial's config (AuG-KD's plan)."""
    from augkd.method.plans import METHOD_PLANS
    from augkd.method.schedules import MIXUP_SCHEDULES, mixup_schedule

    method = config_value(data, row, "method") or "augkd"
    plan = METHOD_PLANS.get(method)
    if plan is None or plan.batches != "mixup":
        return None
    kind = plan.schedule or config_value(data, row, "module3.schedule")
    reported = [num(h.get(EPOCHS)) for h in trial_history(row)]
    total = next((r for r in reported if r), None) or num(config_value(data, row, "module3.epochs"))
    a = num(config_value(data, row, "module3.a"))
    b = num(config_value(data, row, "module3.b"))
    if kind not in MIXUP_SCHEDULES or not total or a is None or b is None or a <= 0:
        return None
    epochs = list(range(int(total)))
    # Module 3 draws epoch e (0-based) with s(e); the table's epochs count from 1.
    return [e + 1 for e in epochs], [mixup_schedule(kind, e, int(total), a, b) for e in epochs]


def plot_mixup_schedule(data: SearchData, top_k: int = TOP_K) -> Section:
    """The student-domain share s(e) of the best trials."""
    key = "mixup_schedule"
    title = f"Mixup schedule s(e) of the top {top_k} trials"
    done = finished(data)
    best = [r for r in done if r["status"] == "completed"][:top_k] or done[:top_k]
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
        kind = config_value(data, row, "module3.schedule")
        a, b = (
            num(config_value(data, row, "module3.a")),
            num(config_value(data, row, "module3.b")),
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
        history = [h for h in trial_history(row) if num(h.get(MIXUP_SHARE)) is not None]
        if history:
            ax.plot(
                [h[EPOCH] for h in history],
                [h[MIXUP_SHARE] for h in history],
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

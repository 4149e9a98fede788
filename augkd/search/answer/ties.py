"""Where a search could not tell its trials apart. An accuracy objective saturates on an
easy domain (every student at val Acc@1 100): ASHA's rungs then tie and stop nothing, and
the leaderboard's top ties. The ranking breaks such ties by val loss (metric_names.TIE_BREAK);
these notes say when it had to, and what would let ASHA tell the trials apart next time."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from augkd.basics.metric_names import STEP, STEPS, TIE_BREAK, label
from augkd.search.records.results import history_of

if TYPE_CHECKING:
    from augkd.search.prepare.space import SearchSpace

MIN_TIED = 3
"""Fewer trials tied at one value are a coincidence of a small val split (the ranking still
breaks the tie), not a saturated objective."""


def value_at_rung(row: dict[str, Any], metric: str, milestone: float) -> float | None:
    """What ASHA compared for this trial at a rung: its first report at or past it."""
    for report in history_of(row):
        if report.get(STEP) is not None and report[STEP] >= milestone and metric in report:
            return report[metric]
    return None


def _budget_steps(rows: list[dict[str, Any]]) -> float | None:
    budgets = [
        report[STEPS] for row in rows for report in history_of(row)[-1:] if report.get(STEPS)
    ]
    return max(budgets, default=None)


def tied_rung(rows: list[dict[str, Any]], space: SearchSpace) -> tuple[float, int, float] | None:
    """ASHA's first rung at which every trial that reached it tied (the rung, how many
    trials, their value); None when every rung could rank its trials."""
    metric = space.rung_objective().metric
    budget = space.scheduler.max_steps or _budget_steps(rows)
    if space.scheduler.name != "asha" or metric == TIE_BREAK or not budget:
        return None
    judged = [row for row in rows if row.get("status") != "failed"]
    for milestone in space.scheduler.milestones(int(budget)):
        values = [value_at_rung(row, metric, milestone) for row in judged]
        values = [value for value in values if value is not None]
        if len(values) >= MIN_TIED and len(set(values)) == 1:
            return milestone, len(values), values[0]
    return None


def tied_top(rows: list[dict[str, Any]], space: SearchSpace) -> tuple[int, float] | None:
    """How many completed trials share the best objective value, and that value; None when
    fewer than MIN_TIED do (or the objective is the tie-break itself)."""
    objective = space.objective
    values = [row.get(objective.metric) for row in rows if row.get("status") == "completed"]
    values = [value for value in values if isinstance(value, int | float)]
    if not values or objective.metric == TIE_BREAK:
        return None
    best = max(values) if objective.mode == "max" else min(values)
    tied = sum(value == best for value in values)
    return (tied, best) if tied >= MIN_TIED else None


def tie_notes(rows: list[dict[str, Any]], space: SearchSpace) -> list[str]:
    """One sentence for each place where the objective could not rank the trials."""
    notes = []
    name = label(space.rung_objective().metric)
    rung = tied_rung(rows, space)
    if rung is not None:
        milestone, count, value = rung
        notes.append(
            f"all {count} trials at ASHA's rung at step {milestone:g} tied at {name} "
            f"{value:.4g}, so it could stop none of them; set scheduler.rung_metric="
            f"{TIE_BREAK} to let ASHA tell such trials apart"
        )
    top = tied_top(rows, space)
    if top is not None:
        count, value = top
        notes.append(
            f"{count} completed trials tie at the best {label(space.objective.metric)} "
            f"({value:.4g}); the leaderboard, the export and the evaluation's candidates put the "
            f"lowest {label(TIE_BREAK)} first"
        )
    return notes

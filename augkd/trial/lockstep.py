"""Several seeds of one trial, advanced in lockstep: one report per val pass, averaged.

The same settings on each seed (splits, stages, student); every report carries each metric's
mean over the seeds (the objective averaged: a winner picked on one seed's val is often picked
on noise) and each seed's own SEED_METRICS as ``<metric>_seed<k>``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

from augkd.basics.metric_names import SEED_METRICS, SEEDS, of_seed
from augkd.method.mixup import Report


def merge_seed_metrics(reports: list[dict[str, float]], seeds: list[int]) -> dict[str, float]:
    """One report of several seeds: each metric's mean (seconds: their sum, the compute
    spent), plus each seed's own SEED_METRICS."""
    merged: dict[str, float] = {}
    for key in reports[0]:
        values = [report[key] for report in reports if isinstance(report.get(key), (int, float))]
        if len(values) != len(reports):
            merged[key] = reports[0][key]
        else:
            merged[key] = sum(values) if key.endswith("_seconds") else sum(values) / len(values)
    for seed, report in zip(seeds, reports, strict=True):
        for key in SEED_METRICS:
            if key in report:
                merged[of_seed(key, seed)] = report[key]
    merged[SEEDS] = float(len(seeds))
    return merged


def in_lockstep(
    seeded: Sequence[Iterator[Report]], seeds: list[int], history: list[dict[str, float]]
) -> Iterator[tuple[dict[str, float], list[Report]]]:
    """Each seed's next report together: (their merged metrics, appended to ``history``, and
    the reports themselves), until the seeds' Module 3 ends (at the same pass for all)."""
    for reports in zip(*seeded, strict=True):
        history.append(merge_seed_metrics([report.metrics for report in reports], seeds))
        yield history[-1], list(reports)


def lockstep_state(
    reports: Sequence[Report], history: list[dict[str, float]]
) -> Callable[[], dict[str, Any]]:
    """The resume state of one lockstep report of several seeds: each seed's own, and what a
    search exports (the first seed's student)."""
    history = list(history)

    def build() -> dict[str, Any]:
        states = [report.make_state() for report in reports]
        return {
            "seeds": states,
            "history": history,
            "best_student": states[0]["best_student"],
            "student_meta": states[0]["student_meta"],
        }

    return build

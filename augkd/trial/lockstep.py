"""Several seeds of one trial, advanced in lockstep: one report per val pass, averaged.

The same settings on each seed (splits, stages, student); every report carries each metric's
mean over the seeds (the objective averaged: a winner picked on one seed's val is often picked
on noise) and each seed's own SEED_METRICS as ``<metric>_seed<k>``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch

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


@dataclass
class ValPass:
    """One val pass of a trial over all its seeds: what it reports, and what a resume or an
    export needs."""

    metrics: dict[str, float]
    history: list[dict[str, float]]
    best_student: dict[str, torch.Tensor]
    make_state: Callable[[], dict[str, Any]]


def val_passes(
    seeded: Sequence[Iterator[Report]], seeds: list[int], history: list[dict[str, float]]
) -> Iterator[ValPass]:
    """Each seed's Module-3 reports, advanced together: one seed's as they are; several
    seeds' merged (appended to ``history``), with the first seed's student."""
    if len(seeded) == 1:
        for report in seeded[0]:
            yield ValPass(report.metrics, report.history, report.best_student, report.make_state)
        return
    for reports in zip(*seeded, strict=True):
        history.append(merge_seed_metrics([report.metrics for report in reports], seeds))
        state = lockstep_state(reports, history)
        yield ValPass(history[-1], history, reports[0].best_student, state)


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

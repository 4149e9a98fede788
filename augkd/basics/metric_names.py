"""The names of what a trial reports, and which way each one is better.

The one home of these strings: the space's objective, ASHA's rungs, the results table,
the leaderboard, the report and the evaluation all name a metric through here, so that
a search that optimises one metric is never ranked by another. Imports nothing heavy
(search.py and the search space read it before torch loads).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Literal

Mode = Literal["max", "min"]

EPOCH = "epoch"
EPOCHS = "epochs"
STEP = "step"
"""Module 3's optimizer steps so far: the fidelity ASHA's rungs are placed in."""
STEPS = "steps"
"""Module 3's budget in optimizer steps."""
BEST_STEP = "best_step"
TRAIN_LOSS = "train_loss"
MIXUP_SHARE = "mixup_share"
VAL_ACC1 = "val_acc1"
VAL_ACC3 = "val_acc3"
VAL_ACC5 = "val_acc5"
VAL_LOSS = "val_loss"
"""The student's mean cross-entropy on val: orders students whose val accuracy ties."""
BEST_VAL_ACC1 = "best_val_acc1"
"""The highest val Acc@1 of any epoch so far: the default objective."""
BEST_EPOCH = "best_epoch"
SEEDS = "seeds"
"""How many seeds a trial's reports average (objective.seeds)."""
TEST_ACC1 = "test_acc1"
TEST_ACC3 = "test_acc3"
TEST_ACC5 = "test_acc5"
STUDENT_PARAMS = "student_params"
EPOCH_SECONDS = "epoch_seconds"
MODULE3_SECONDS = "module3_seconds"
"""Module 3's training seconds so far (a resumed run's earlier ones included)."""
SETUP_SECONDS = "setup_seconds"
"""What a trial spent before Module 3's first epoch: out of ASHA's reach."""
DIAGNOSTICS_SECONDS = "diagnostics_seconds"
DIAGNOSTICS_PREFIX = "diag_"
"""Every diagnostic of Modules 1-2 rides on a trial's reports as ``diag_<name>``."""
STAGE_DOWNLOADS = "stage_downloads"
STAGE_NODE_READS = "stage_node_reads"


def stage_seconds(stage: str) -> str:
    """The seconds a trial spent producing or reading one stage (``module1_seconds``)."""
    return f"{stage}_seconds"


def cache_hit(stage: str) -> str:
    """1 when a stage's artifact came from the cache, 0 when the trial produced it."""
    return f"{stage}_cache_hit"


def of_seed(metric: str, seed: int) -> str:
    """One seed's own value of a metric in a report averaged over seeds."""
    return f"{metric}_seed{seed}"


SEED_METRICS = (VAL_ACC1, BEST_VAL_ACC1, TEST_ACC1)
"""Metrics a multi-seed trial also reports seed by seed."""

REPORTED = (TEST_ACC1, TEST_ACC3, TEST_ACC5, BEST_VAL_ACC1)
"""What a finished run is summed up by: `augkd train --seeds`, the evaluation's table."""
TEST_METRICS = (TEST_ACC1, TEST_ACC3, TEST_ACC5)
"""Computed once, at the best-val epoch, and never used to choose anything."""
RUNG_METRICS = (BEST_VAL_ACC1, VAL_ACC1, VAL_ACC3, VAL_ACC5, VAL_LOSS)
"""What ASHA may compare at its rungs instead of the objective."""

MODES: dict[str, Mode] = {
    BEST_VAL_ACC1: "max",
    VAL_ACC1: "max",
    VAL_ACC3: "max",
    VAL_ACC5: "max",
    VAL_LOSS: "min",
    TEST_ACC1: "max",
    TEST_ACC3: "max",
    TEST_ACC5: "max",
    TRAIN_LOSS: "min",
    STUDENT_PARAMS: "min",
    EPOCH_SECONDS: "min",
}
"""Which way each known metric is better."""
OBJECTIVE_METRICS = (*RUNG_METRICS, TRAIN_LOSS, STUDENT_PARAMS, EPOCH_SECONDS)
"""What a space may optimise: metrics every epoch reports (test metrics never: they are
measured once, at the end, and choosing by them would leak the test split)."""

DEFAULT_OBJECTIVE = BEST_VAL_ACC1
DEFAULT_MODE: Mode = "max"

LABELS = {
    BEST_VAL_ACC1: "val acc1",
    VAL_ACC1: "last val acc1",
    VAL_ACC3: "last val acc3",
    VAL_ACC5: "last val acc5",
    VAL_LOSS: "last val loss",
    TEST_ACC1: "test acc1",
    TRAIN_LOSS: "train loss",
    STUDENT_PARAMS: "student params",
    EPOCH_SECONDS: "epoch s",
}


def label(metric: str) -> str:
    """A metric's column heading (its own name when it has no shorter one)."""
    return LABELS.get(metric, metric)


def natural_mode(metric: str) -> Mode:
    """Which way ``metric`` is better; unknown metrics are taken as higher-is-better."""
    return MODES.get(metric, "max")


def ranking_value(value: Any, mode: Mode) -> float:
    """A number that sorts better values first when sorted descending; a missing or
    non-finite value sorts last in either mode."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return -math.inf
    return float(value) if mode == "max" else -float(value)


TIE_BREAK = VAL_LOSS
"""What orders trials whose objective ties: an accuracy objective saturates (every student
at val Acc@1 100 on an easy domain), and then only a finer val metric says which is best."""


def ranking_key(values: Mapping[str, Any], metric: str, mode: Mode) -> tuple[float, float]:
    """Sorts better first when sorted descending: ``metric`` in its ``mode``, then, where it
    ties, the lower val loss (missing values last)."""
    tie = 0.0 if metric == TIE_BREAK else ranking_value(values.get(TIE_BREAK), MODES[TIE_BREAK])
    return ranking_value(values.get(metric), mode), tie

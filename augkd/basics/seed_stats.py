"""Results over seeds, as the paper reports them: mean ± std of a method, and the paired
difference of two methods run on the same seeds (hence the same splits), with the
standard error of its mean. The one home of these numbers and of how they are printed,
for `augkd train --seeds`, `augkd evaluate`, the report and the benchmarks."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

CONFIDENCE = 0.95
"""The level of every confidence interval augkd prints."""


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation over seeds (0 for a single value)."""
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return statistics.fmean(values), spread


def format_mean_std(values: list[float], digits: int = 1) -> str:
    """'91.7 ± 1.5'; a single value has no spread to show, and no value is '-'."""
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    mean, spread = mean_std(values)
    return f"{mean:.{digits}f} ± {spread:.{digits}f}"


@dataclass(frozen=True)
class PairedDifference:
    """Mean over seeds of (method - reference) on each seed, and its standard error."""

    mean: float
    error: float
    """nan with a single seed: one difference has no spread."""
    seeds: int

    def beyond(self, errors: float = 2.0) -> bool:
        """Whether the mean lies more than ``errors`` standard errors from zero."""
        return math.isfinite(self.error) and abs(self.mean) > errors * self.error

    def half_width(self, level: float = CONFIDENCE) -> float:
        """Half the width of the two-sided ``level`` confidence interval of the mean
        (Student's t over the seeds); nan with a single seed."""
        if not math.isfinite(self.error) or self.seeds < 2:
            return math.nan
        from scipy.stats import t

        return float(t.ppf(0.5 + level / 2, self.seeds - 1)) * self.error

    def interval(self, level: float = CONFIDENCE) -> tuple[float, float]:
        width = self.half_width(level)
        return self.mean - width, self.mean + width

    def with_interval(self, level: float = CONFIDENCE) -> str:
        """'+1.4 ± 0.3' with the interval's half width (not the standard error)."""
        width = self.half_width(level)
        return (
            f"{self.mean:+.1f}" if not math.isfinite(width) else f"{self.mean:+.1f} ± {width:.1f}"
        )

    def ratio(self) -> float:
        """mean / standard error (nan when there is no error to divide by)."""
        return self.mean / self.error if math.isfinite(self.error) and self.error > 0 else math.nan

    def __str__(self) -> str:
        if not math.isfinite(self.error):
            return f"{self.mean:+.1f}"
        return f"{self.mean:+.1f} ± {self.error:.1f}"


def paired_difference(values: list[float], reference: list[float]) -> PairedDifference | None:
    """Per-seed differences of two aligned lists (seed i in both); None when empty."""
    differences = [a - b for a, b in zip(values, reference, strict=True)]
    if not differences:
        return None
    error = (
        statistics.stdev(differences) / math.sqrt(len(differences))
        if len(differences) > 1
        else math.nan
    )
    return PairedDifference(statistics.fmean(differences), error, len(differences))


def paired_by_seed(
    values: dict[int, float], reference: dict[int, float]
) -> PairedDifference | None:
    """The paired difference over the seeds both methods ran."""
    seeds = sorted(values.keys() & reference.keys())
    return paired_difference([values[s] for s in seeds], [reference[s] for s in seeds])

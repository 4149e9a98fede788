"""The evaluation's verdict, decided by racing: fresh seeds are added in rounds, the same
seeds for every candidate still in the race (so differences stay paired), candidates
clearly behind on val leave it, and the race ends when the winner's paired difference in
test Acc@1 to the defaults and to the best baseline is resolved, or at ``max_seeds``.

A difference is resolved when its confidence interval excludes zero (one side is better)
or lies inside ``(-margin, +margin)`` (the two are equivalent for a user's purposes).
Which candidate is the winner, which baseline is the best and which candidates are
behind are all judged on the search's objective (val); test only reports. The intervals
are per look: checking after every round makes the stated level somewhat optimistic, so
the equivalence margin, not a bare p-value, is what lets a race end in "keep the
defaults".

``race`` adds the rounds and asks a ``run_round`` (evaluate.py's Ray tasks) to run them;
everything else here is a pure function of the runs so far.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from augkd.basics.seed_stats import CONFIDENCE, PairedDifference
from augkd.search.answer.candidates import Candidate
from augkd.search.prepare.space import Objective

Outcome = Literal["better", "worse", "equivalent", "unresolved"]
Decision = Literal["take the winner", "keep the defaults", "unresolved"]
DEFAULT_MARGIN = 0.5
"""Points of test Acc@1 within which two configs count as equivalent."""
DEFAULT_MAX_SEEDS = 10


@dataclass(frozen=True)
class RaceSettings:
    first_seeds: int = 3
    round_seeds: int = 2
    """Seeds each later round adds."""
    max_seeds: int = DEFAULT_MAX_SEEDS
    margin: float = DEFAULT_MARGIN
    level: float = CONFIDENCE

    def __post_init__(self) -> None:
        from augkd.basics.errors import ConfigError

        if self.first_seeds < 1 or self.round_seeds < 1:
            raise ConfigError("--seeds and the seeds per round must be at least 1.")
        if self.max_seeds < self.first_seeds:
            raise ConfigError(
                f"--max-seeds {self.max_seeds} is below the first round's {self.first_seeds} "
                "seeds (--seeds/--eval-seeds); raise --max-seeds or lower --seeds."
            )
        if not self.margin >= 0:
            raise ConfigError(f"--margin must be 0 or more points, not {self.margin}.")
        if not 0 < self.level < 1:
            raise ConfigError(f"the confidence level must lie in (0, 1), not {self.level}.")


@dataclass(frozen=True)
class Comparison:
    """The winner against one reference (the defaults or the best baseline), in test Acc@1."""

    reference: str
    difference: PairedDifference | None
    outcome: Outcome
    level: float

    @property
    def half_width(self) -> float:
        return self.difference.half_width(self.level) if self.difference else math.nan

    def text(self) -> str:
        return self.difference.with_interval(self.level) if self.difference else "-"


def outcome_of(difference: PairedDifference | None, margin: float, level: float) -> Outcome:
    """better / worse: the interval excludes zero; equivalent: it lies inside ±margin."""
    if difference is None or difference.seeds < 2:
        return "unresolved"
    low, high = difference.interval(level)
    if not (math.isfinite(low) and math.isfinite(high)):
        return "unresolved"
    if low > 0:
        return "better"
    if high < 0:
        return "worse"
    if -margin < low and high < margin:
        return "equivalent"
    return "unresolved"


def compare(winner: Candidate, reference: Candidate, settings: RaceSettings) -> Comparison:
    difference = winner.difference_to(reference)
    return Comparison(
        reference.label,
        difference,
        outcome_of(difference, settings.margin, settings.level),
        settings.level,
    )


def clearly_behind(
    candidates: list[Candidate], leader: Candidate, objective: Objective, level: float
) -> list[Candidate]:
    """Candidates whose paired difference to the leader on the objective has its whole
    interval on the wrong side of zero."""
    behind = []
    sign = 1.0 if objective.mode == "max" else -1.0
    for candidate in candidates:
        if candidate is leader:
            continue
        difference = candidate.difference_to(leader, objective.metric)
        if difference is None or difference.seeds < 2:
            continue
        low, high = difference.interval(level)
        if (sign > 0 and high < 0) or (sign < 0 and low > 0):
            behind.append(candidate)
    return behind


@dataclass(frozen=True)
class Verdict:
    """The race's end: one sentence, what to do, and the numbers behind it."""

    sentence: str
    decision: Decision
    winner: str
    seeds: list[int]
    versus_defaults: Comparison | None
    versus_baseline: Comparison | None
    margin: float
    level: float
    runs: int = 0
    compute_seconds: float = 0.0

    @property
    def resolved(self) -> bool:
        return self.decision != "unresolved"

    def record(self) -> dict:
        """The verdict as plain data (evaluation.parquet's metadata, baselines.json)."""

        def comparison(c: Comparison | None) -> dict | None:
            if c is None:
                return None
            d = c.difference
            return {
                "reference": c.reference,
                "outcome": c.outcome,
                "mean": d.mean if d else None,
                "half_width": c.half_width if d else None,
                "standard_error": d.error if d else None,
                "seeds": d.seeds if d else 0,
            }

        return {
            "sentence": self.sentence,
            "decision": self.decision,
            "winner": self.winner,
            "seeds": self.seeds,
            "margin": self.margin,
            "level": self.level,
            "versus_defaults": comparison(self.versus_defaults),
            "versus_baseline": comparison(self.versus_baseline),
            "runs": self.runs,
            "compute_seconds": self.compute_seconds,
        }


def _against(comparison: Comparison, margin: float) -> str:
    """'beats dfkd by 1.1 ± 0.4 points' and the like, for the winner."""
    name, diff = comparison.reference, comparison.difference
    size = f"{abs(diff.mean):.1f} ± {comparison.half_width:.1f}" if diff else "-"
    return {
        "better": f"beats {name} by {size} points",
        "worse": f"trails {name} by {size} points",
        "equivalent": f"is within {margin:g} points of {name} ({comparison.text()})",
        "unresolved": f"is {comparison.text()} points against {name} (unresolved)",
    }[comparison.outcome]


def decide(
    winner: Candidate,
    defaults: Candidate | None,
    best_baseline: Candidate | None,
    seeds: list[int],
    settings: RaceSettings,
) -> Verdict:
    """The verdict after a round: resolved when every comparison is."""
    versus_defaults = (
        compare(winner, defaults, settings)
        if defaults is not None and defaults is not winner and not winner.is_defaults
        else None
    )
    versus_baseline = compare(winner, best_baseline, settings) if best_baseline else None
    compared = [c for c in (versus_defaults, versus_baseline) if c is not None]
    name, margin = winner.label, settings.margin
    tail = f"of test Acc@1 over {len(seeds)} seeds ({settings.level:.0%} intervals)"

    def verdict(sentence: str, decision: Decision) -> Verdict:
        return Verdict(sentence, decision, name, list(seeds), versus_defaults,
                       versus_baseline, margin, settings.level)  # fmt: skip

    if any(c.outcome == "unresolved" for c in compared):
        facts = ", ".join(f"{name} − {c.reference} {c.text()}" for c in compared)
        return verdict(
            f"not resolved after {len(seeds)} seeds: {facts} points {tail.split(' over ')[0]} "
            "(more seeds, --max-seeds, may decide it): keep the defaults until then",
            "unresolved",
        )
    on_baseline = f" and {_against(versus_baseline, margin)}" if versus_baseline else ""
    if versus_defaults is None:
        return verdict(
            f"the search's best config by val ({name}) is the defaults, which "
            f"{_against(versus_baseline, margin) if versus_baseline else 'stand alone'} "
            f"{tail}: keep the defaults",
            "keep the defaults",
        )
    if versus_defaults.outcome == "better":
        action = f"take {name}"
        if versus_baseline is not None and versus_baseline.outcome == "worse":
            action += f" over the defaults, though {versus_baseline.reference} is better still"
        return verdict(
            f"{name} {_against(versus_defaults, margin)}{on_baseline} {tail}: {action}",
            "take the winner",
        )
    if versus_defaults.outcome == "equivalent":
        return verdict(
            f"no searched config differs from the defaults by more than {margin:g} points "
            f"(the best by val, {name}, {versus_defaults.text()}{on_baseline}) {tail}: "
            "keep the defaults",
            "keep the defaults",
        )
    return verdict(
        f"the search's best config by val ({name}) {_against(versus_defaults, margin)}"
        f"{on_baseline} {tail}: keep the defaults",
        "keep the defaults",
    )


@dataclass
class Evaluation:
    """The race's outcome: every candidate's runs, the winner, the best baseline row."""

    search_path: str
    seeds: list[int]
    candidates: list[Candidate]
    winner: Candidate | None
    best_baseline: Candidate | None
    objective: Objective = field(default_factory=Objective)
    verdict: Verdict | None = None

    @property
    def defaults(self) -> Candidate | None:
        return next((c for c in self.candidates if c.is_defaults), None)

    def baseline_rows(self) -> dict[str, Candidate]:
        """Each baseline method's row: the recipe that stayed in the race."""
        rows: dict[str, Candidate] = {}
        for candidate in self.candidates:
            if candidate.is_baseline and candidate.dropped is None:
                rows.setdefault(candidate.method, candidate)
        return rows


RunRound = Callable[[list[tuple[Candidate, int]]], None]
"""Runs each (candidate, seed) and appends its outcome to candidate.runs."""


def race(
    candidates: list[Candidate],
    seed_order: list[int],
    objective: Objective,
    settings: RaceSettings,
    run_round: RunRound,
    echo: Callable[[str], None] = print,
) -> tuple[list[int], Verdict]:
    """Rounds of fresh seeds until the verdict is decided or ``settings.max_seeds`` ran:
    the first round runs every candidate; then each baseline keeps its recipe with the
    better val, and searched configs clearly behind the leader on val leave the race."""
    seeds: list[int] = []
    round_number = 0
    while True:
        round_number += 1
        count = settings.first_seeds if not seeds else settings.round_seeds
        new = seed_order[len(seeds) : min(len(seeds) + count, settings.max_seeds)]
        racing = [c for c in candidates if c.dropped is None]
        echo(
            f"[evaluate] round {round_number}: {len(racing)} methods x seeds {new}: "
            f"{len(racing) * len(new)} runs"
        )
        run_round([(c, seed) for c in racing for seed in new])
        seeds += new
        if round_number == 1:
            _keep_better_recipes(candidates, objective)
        evaluation = judge("", seeds, candidates, objective)
        verdict = decide(
            evaluation.winner, evaluation.defaults, evaluation.best_baseline, seeds, settings
        )
        if verdict.resolved or len(seeds) >= settings.max_seeds:
            break
        searched = [c for c in candidates if c.kind == "searched" and c.dropped is None]
        for behind in clearly_behind(searched, evaluation.winner, objective, settings.level):
            behind.dropped = f"round {round_number}: behind {evaluation.winner.label} on val"
            echo(f"[evaluate] {behind.label} leaves the race ({behind.dropped})")
        echo(f"[evaluate] after {len(seeds)} seeds: {verdict.sentence}")
    runs = [r for c in candidates for r in c.runs]
    spent = sum(float(r.get("run_seconds", 0.0)) for r in runs)
    return seeds, dataclasses.replace(verdict, runs=len(runs), compute_seconds=spent)


def _keep_better_recipes(candidates: list[Candidate], objective: Objective) -> None:
    """Each baseline method's row is the recipe with the better val; the other leaves."""
    by_method: dict[str, list[Candidate]] = {}
    for candidate in candidates:
        if candidate.is_baseline:
            by_method.setdefault(candidate.method, []).append(candidate)
    for variants in by_method.values():
        best = max(variants, key=lambda c: c.score(objective))
        for other in variants:
            if other is not best:
                other.dropped = f"round 1: lower {objective.metric} than {best.label}"


def judge(
    search_path: str, seeds: list[int], candidates: list[Candidate], objective: Objective
) -> Evaluation:
    """The winner among the searched configs still racing, and the best baseline row, both
    by the mean of the search's objective over the fresh seeds (test never chooses)."""
    racing = [c for c in candidates if c.dropped is None]
    searched = [c for c in racing if c.kind == "searched"]
    compared = [c for c in racing if c.is_baseline]
    winner = max(searched, key=lambda c: c.score(objective), default=None)
    best_baseline = max(compared, key=lambda c: c.score(objective), default=None)
    return Evaluation(search_path, seeds, candidates, winner, best_baseline, objective)

"""Which ASHA settings stop the fewest trials that would have tied the winner, at the compute
of today's? Over full-budget searches recorded by benchmarks/rung_correlation.py (every trial
run to its last step, no stopping), Ray's asynchronous ASHA is replayed offline for a grid of
grace periods, reduction factors and brackets; for each it counts the trials it would stop
that end within ``--margin`` of the winner's final best val (the evaluation's equivalence
margin: such a trial ties the winner), and the trial-seconds it would spend.

    python benchmarks/rung_study.py --choose-on fonts forms --check-on tablet \\
        --runs benchmarks/results [--margin 0.5]

Settings are chosen on the ``--choose-on`` spaces only; ``--check-on`` spaces (the regime that
judges the search) are replayed with the chosen setting afterwards and never inform it.
Several brackets: Ray draws each trial's bracket at random with softmax weights over the
brackets' rung counts; the replay averages ``--draws`` such draws.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from rung_correlation import FINAL, curves
from scipy.stats import spearmanr

from augkd.search.prepare.space import SchedulerSettings
from augkd.search.prepare.trial_steps import asha_stops, judged_at

METRIC = "best_val_acc1"
GRACES = (25, 50, 100, 200)
FACTORS = (2.0, 3.0, 4.0)
BRACKETS = (1, 2, 3)
TODAY = (50, 2.0, 1)
RARE = 1.0
"""At most this many tied trials stopped per space (mean over bracket draws) is rare."""


@dataclass
class Replay:
    grace_period: int
    reduction_factor: float
    brackets: int
    trial_seconds_share: float
    """Trial-seconds ASHA spends over those of the full-budget search."""
    tied: int
    """Trials whose final best val is within the margin of the winner's."""
    tied_stopped: float
    """Of those, how many ASHA stops (mean over bracket draws)."""
    winner_kept: float
    """How often the winner runs to its last step."""
    completed: float
    first_rung_rho: float


def replay(trials: list[list[dict]], brackets_of: list[int], grace: int, factor: float,
           count: int) -> tuple[float, list[bool]]:  # fmt: skip
    """(trial-seconds, completed per trial) of one draw of brackets, in start order."""
    all_rungs = _all_rungs(grace, factor, count, int(trials[0][-1]["step"]))
    stops = asha_stops(trials, METRIC, factor, [all_rungs[b] for b in brackets_of])
    spent = sum(t[stop]["time_total_s"] for t, stop in zip(trials, stops, strict=True))
    return spent, [stop == len(t) - 1 for t, stop in zip(trials, stops, strict=True)]


def _all_rungs(grace: int, factor: float, count: int, max_steps: int) -> list[list[float]]:
    """Each bracket's rungs, as the search's scheduler settings place them."""
    settings = SchedulerSettings(grace_period=grace, reduction_factor=factor, brackets=count)
    return [settings.milestones(max_steps, bracket) for bracket in range(count)]


def study(trials: list[list[dict]], grace: int, factor: float, count: int, margin: float,
          draws: int) -> Replay:  # fmt: skip
    finals = np.array([t[-1][FINAL] for t in trials])
    tied = finals >= finals.max() - margin
    winner = int(finals.argmax())
    max_steps = int(trials[0][-1]["step"])
    all_rungs = _all_rungs(grace, factor, count, max_steps)
    sizes = np.array([len(r) for r in all_rungs])
    weights = np.e ** (sizes - sizes.max())
    rng = np.random.default_rng(0)
    shares, stopped, kept, done = [], [], [], []
    full = sum(t[-1]["time_total_s"] for t in trials)
    for _ in range(draws if count > 1 else 1):
        brackets_of = (
            rng.choice(count, size=len(trials), p=weights / weights.sum()).tolist()
            if count > 1 else [0] * len(trials)
        )  # fmt: skip
        spent, completed = replay(trials, brackets_of, grace, factor, count)
        completed_array = np.array(completed)
        shares.append(spent / full)
        stopped.append(int((tied & ~completed_array).sum()))
        kept.append(bool(completed_array[winner]))
        done.append(int(completed_array.sum()))
    first = all_rungs[0]
    rho = math.nan
    if first:
        at_first = [t[judged_at(t, first[0]) or 0][METRIC] for t in trials]
        rho = float(spearmanr(at_first, finals).statistic)
    return Replay(grace, factor, count, float(np.mean(shares)), int(tied.sum()),
                  float(np.mean(stopped)), float(np.mean(kept)), float(np.mean(done)), rho)  # fmt: skip


def load(runs: Path, space: str) -> list[list[dict]]:
    recorded = json.loads((runs / f"rung_correlation_{space}.json").read_text())
    return curves(recorded["search"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--choose-on", nargs="+", default=["fonts", "forms"])
    parser.add_argument("--check-on", nargs="*", default=["tablet"])
    parser.add_argument("--runs", default="benchmarks/results",
                        help="folder of rung_correlation_<space>.json")  # fmt: skip
    parser.add_argument("--margin", type=float, default=0.5)
    parser.add_argument("--draws", type=int, default=200)
    parser.add_argument("--compute-tolerance", type=float, default=0.05,
                        help="a setting counts as today's compute within this share")  # fmt: skip
    parser.add_argument("--out", default="benchmarks/results/rung_study.json")
    args = parser.parse_args()
    runs = Path(args.runs)
    grid = list(itertools.product(GRACES, FACTORS, BRACKETS))
    table: dict[str, list[Replay]] = {}
    for space in args.choose_on + args.check_on:
        trials = load(runs, space)
        table[space] = [study(trials, *setting, args.margin, args.draws) for setting in grid]
        print(f"{space}: {len(trials)} full-budget trials, "
              f"{table[space][0].tied} within {args.margin:g} of the winner")  # fmt: skip

    def pooled(index: int, field: str) -> float:
        return float(np.mean([getattr(table[s][index], field) for s in args.choose_on]))

    today = grid.index(TODAY)
    budget = pooled(today, "trial_seconds_share") + args.compute_tolerance
    # A setting that stops fewer ties by losing the winner more often is no better: the
    # search's answer is the winner. Same compute as today, the winner kept as often.
    keeps = pooled(today, "winner_kept") - 0.05
    affordable = [
        i for i in range(len(grid))
        if pooled(i, "trial_seconds_share") <= budget and pooled(i, "winner_kept") >= keeps
    ]  # fmt: skip
    chosen = min(affordable, key=lambda i: (pooled(i, "tied_stopped"),
                                            -pooled(i, "winner_kept"),
                                            pooled(i, "trial_seconds_share")))  # fmt: skip
    if pooled(chosen, "tied_stopped") > pooled(today, "tied_stopped") - 0.5:
        chosen = today  # no setting at this compute stops half a tie fewer: keep today's
    # What it costs to make such stops rare: the cheapest setting that stops at most
    # RARE of the ties per space on average and keeps the winner at least 90 % of the time.
    rare_ones = [
        i for i in range(len(grid))
        if pooled(i, "tied_stopped") <= RARE and pooled(i, "winner_kept") >= 0.9
    ]  # fmt: skip
    rare = min(rare_ones, key=lambda i: pooled(i, "trial_seconds_share"), default=None)
    shown = {today: "today", chosen: "chosen"} | ({rare: "rare"} if rare is not None else {})
    if chosen == today:
        shown[today] = "today = chosen"
    header = ("| space | grace | factor | brackets | trial-seconds | first-rung rho | "
              "tied / stopped of them | winner kept | completed |")  # fmt: skip
    print("\n" + header + "\n|---|---|---|---|---|---|---|---|---|")
    for space, rows in table.items():
        for index in sorted(shown, key=lambda i: rows[i].trial_seconds_share):
            r = rows[index]
            print(f"| {space} ({shown[index]}) | {r.grace_period} | {r.reduction_factor:g} | "
                  f"{r.brackets} | {r.trial_seconds_share:.0%} | {r.first_rung_rho:+.2f} | "
                  f"{r.tied} / {r.tied_stopped:.1f} | {r.winner_kept:.0%} | "
                  f"{r.completed:.1f} |")  # fmt: skip
    print(f"\nchosen on {', '.join(args.choose_on)} (same compute as today within "
          f"{args.compute_tolerance:.0%}, the winner kept as often): grace {grid[chosen][0]}, "
          f"factor {grid[chosen][1]:g}, brackets {grid[chosen][2]}")  # fmt: skip
    if rare is None:
        print(f"no setting stops at most {RARE:g} tie per space while keeping the winner")
    else:
        print(f"stops of ties made rare (at most {RARE:g} per space, the winner kept 90 %): "
              f"grace {grid[rare][0]}, factor {grid[rare][1]:g}, brackets {grid[rare][2]}, at "
              f"{pooled(rare, 'trial_seconds_share'):.0%} of the full-budget trial-seconds "
              f"against today's {pooled(today, 'trial_seconds_share'):.0%}")  # fmt: skip
    print("\nevery setting, pooled over the spaces it was chosen on:")
    print("| grace | factor | brackets | trial-seconds | tied stopped | winner kept |")
    print("|---|---|---|---|---|---|")
    for index, (grace, factor, count) in enumerate(grid):
        print(f"| {grace} | {factor:g} | {count} | {pooled(index, 'trial_seconds_share'):.0%} | "
              f"{pooled(index, 'tied_stopped'):.2f} | {pooled(index, 'winner_kept'):.0%} |")  # fmt: skip
    Path(args.out).write_text(json.dumps({
        "margin": args.margin, "choose_on": args.choose_on, "check_on": args.check_on,
        "today": grid[today], "chosen": grid[chosen],
        "rare": grid[rare] if rare is not None else None,
        "replays": {s: [asdict(r) for r in rows] for s, rows in table.items()},
    }, indent=2))  # fmt: skip


if __name__ == "__main__":
    main()

"""Do ASHA's rungs rank trials right, and what does ASHA save? Over full-budget trials (a
random-sampler FIFO search of a space, by default the default fonts space): the Spearman rank
correlation between a rung metric at each val pass and the final best val Acc@1; what ASHA
would save in trial-seconds (not only steps) at each grace period, with the best trial kept
or not; and the share of trial-seconds spent before a trial's first report (out of ASHA's
reach), beside the seconds of the shared stages produced before the trials.

    python benchmarks/rung_correlation.py [--space fonts] [--trials 16] [--seed 0] [--out benchmarks/results]
    python benchmarks/rung_correlation.py --reuse /tmp/augkd_rung_runs/NAME

ASHA is replayed offline on the recorded curves, in start order, as Ray's asynchronous ASHA
decides: a trial is judged at its first report at or past each rung (optimizer steps) and
stops when below the 1 - 1/reduction_factor quantile of the values recorded there so far.
Trial-seconds are Tune's time_total_s at the report a trial would stop at (everything the
trial did before its first report included). Writes rung_correlation_<space>.json.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

from augkd.search.prepare.trial_steps import asha_stops, judged_at

METRICS = ("best_val_acc1", "val_acc1")
FINAL = "best_val_acc1"


def curves(search_path: str) -> list[list[dict]]:
    """Every trial's Tune results (result.json), one per val pass, in start order."""
    found = []
    for path in Path(search_path).glob("*/result.json"):
        results = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        results = [r for r in results if "step" in r]
        if results and results[-1]["epoch"] == results[-1]["epochs"]:
            found.append(sorted(results, key=lambda r: r["step"]))
    return sorted(found, key=lambda c: c[0]["timestamp"] - c[0]["time_total_s"])


def correlations(trials: list[list[dict]]) -> dict[str, list[dict]]:
    """Spearman rho (and p) between each metric at each val pass and the final best val."""
    final = [t[-1][FINAL] for t in trials]
    out: dict[str, list[dict]] = {}
    for metric in METRICS:
        rows = []
        for index in range(len(trials[0])):
            rho, p = spearmanr([t[index][metric] for t in trials], final)
            rows.append({"step": trials[0][index]["step"], "rho": float(rho), "p": float(p)})
        out[metric] = rows
    return out


def replay_asha(trials, metric: str, grace: int, factor: float, max_t: int) -> dict:
    """Ray's asynchronous ASHA (one bracket) over recorded curves, in start order."""
    from augkd.search.prepare.space import SchedulerSettings

    milestones = SchedulerSettings(grace_period=grace, reduction_factor=factor).milestones(max_t)
    stops = asha_stops(trials, metric, factor, [milestones] * len(trials))
    spent = sum(t[stop]["time_total_s"] for t, stop in zip(trials, stops, strict=True))
    stopped_at = [t[stop]["step"] for t, stop in zip(trials, stops, strict=True)]
    kept = [t for t, stop in zip(trials, stops, strict=True) if stop == len(t) - 1]
    full = sum(t[-1]["time_total_s"] for t in trials)
    best = max(t[-1][FINAL] for t in trials)
    found = max((t[-1][FINAL] for t in kept), default=math.nan)
    first = milestones[0] if milestones else None
    return {
        "grace_period": grace,
        "rungs": milestones,
        "completed": len(kept),
        "trial_seconds": spent,
        "seconds_saved": 1 - spent / full,
        "steps_saved": 1 - sum(stopped_at) / sum(t[-1]["step"] for t in trials),
        "best_final_val": best,
        "best_kept_val": found,
        "first_rung_rho": None if first is None else correlations_at(trials, metric, first),
    }


def correlations_at(trials, metric: str, milestone: float) -> float:
    values = [t[judged_at(t, milestone)][metric] for t in trials]
    rho, _ = spearmanr(values, [t[-1][FINAL] for t in trials])
    return float(rho)


def grace_periods(trials: list[list[dict]]) -> list[int]:
    """Candidate grace periods: the steps of the val passes in the first half of the budget."""
    steps = [int(r["step"]) for r in trials[0]]
    return [s for s in steps if s <= steps[-1] // 2]


def main() -> None:
    from augkd.search.run.runner import run_full_budget_search  # torch and Ray: after --help

    parser = argparse.ArgumentParser()
    parser.add_argument("--space", default="fonts", help="search space (default: the default's)")
    parser.add_argument("--trials", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="benchmarks/results")
    parser.add_argument("--reuse", help="a finished full-budget search to measure instead")
    parser.add_argument("--storage", default="/tmp/augkd_rung_runs", help="where the search runs")
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--reduction-factor", type=float, default=2.0)
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    storage = Path(args.storage)
    storage.mkdir(parents=True, exist_ok=True)
    search_path = args.reuse or run_full_budget_search(
        args.space, storage, args.trials, [f"sampler.seed={args.seed}", *args.overrides],
        echo=lambda *a, **k: None,
    ).search_path  # fmt: skip
    trials = curves(search_path)
    max_t = int(trials[0][-1]["step"])
    corr = correlations(trials)
    replays = {
        metric: [
            replay_asha(trials, metric, grace, args.reduction_factor, max_t)
            for grace in grace_periods(trials)
        ]
        for metric in METRICS
    }
    before = [t[0].get("setup_seconds", t[0]["time_total_s"]) for t in trials]
    total = [t[-1]["time_total_s"] for t in trials]
    summary = {
        "search": search_path,
        "trials": len(trials),
        "before_first_report_share": sum(before) / sum(total),
        "trial_seconds": sum(total),
        "correlations": corr,
        "asha": replays,
    }
    (out / f"rung_correlation_{args.space}.json").write_text(json.dumps(summary, indent=2))
    before = [t[0].get("setup_seconds", t[0]["time_total_s"]) for t in trials]
    total = [t[-1]["time_total_s"] for t in trials]
    print(f"{len(trials)} full-budget trials of {max_t} optimizer steps from {search_path}")
    print(
        f"before its first report a trial spends {np.mean(before):.1f} s of its "
        f"{np.mean(total):.1f} s mean ({sum(before) / sum(total):.0%} of all trial-seconds: "
        "loading the data, teacher and stages, whatever it produces itself, diagnostics)\n"
    )
    print("| step | " + " | ".join(f"rho({m}@step, final)" for m in METRICS) + " |")
    print("|---|" + "---|" * len(METRICS))
    for index in range(len(trials[0])):
        cells = [f"{corr[m][index]['rho']:+.2f} (p {corr[m][index]['p']:.2f})" for m in METRICS]
        print(f"| {corr[METRICS[0]][index]['step']:g} | " + " | ".join(cells) + " |")
    for metric in METRICS:
        print(f"\nASHA (reduction factor {args.reduction_factor:g}) on {metric}:")
        print("| grace (steps) | rungs | first-rung rho | completed | trial-seconds saved | "
              "steps saved | best kept / best |")  # fmt: skip
        print("|---|---|---|---|---|---|---|")
        for r in replays[metric]:
            print(
                f"| {r['grace_period']} | {','.join(f'{m:g}' for m in r['rungs'])} | "
                f"{r['first_rung_rho']:+.2f} | {r['completed']}/{len(trials)} | "
                f"{r['seconds_saved']:.0%} | {r['steps_saved']:.0%} | "
                f"{r['best_kept_val']:.1f} / {r['best_final_val']:.1f} |"
            )


if __name__ == "__main__":
    main()

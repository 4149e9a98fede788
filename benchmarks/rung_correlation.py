"""Do ASHA's rungs rank trials right? Over full-budget trials (a random-sampler FIFO
search of a space, by default the default fonts space), the Spearman rank correlation between a rung
metric at each epoch and the final best val Acc@1, and what ASHA would save in
trial-seconds (not only epochs) at each grace period.

    python benchmarks/rung_correlation.py [--space fonts] [--trials 16] [--seed 0] [--out benchmarks/results]
    python benchmarks/rung_correlation.py --reuse /tmp/augkd_rung_runs/NAME

ASHA is replayed offline on the recorded curves, in start order, as Ray's
asynchronous ASHA decides (a trial stops at a rung when it is below the
1 - 1/reduction_factor quantile of the values recorded there so far). Trial-seconds
are Tune's time_total_s at the epoch a trial would stop (Module 1 and 2 included).
Writes rung_correlation_<space>.json and prints the tables.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

METRICS = ("best_val_acc1", "val_acc1")
FINAL = "best_val_acc1"


def run_search(storage: Path, space: str, trials: int, seed: int, overrides: list[str]) -> str:
    import ray

    from augkd.search.runner import SearchOptions, run_search

    ray.init(address="local", include_dashboard=False, log_to_driver=False)
    try:
        outcome = run_search(
            SearchOptions(
                space=space,
                storage=str(storage),
                tracking_uri=f"sqlite:///{storage.resolve()}/mlflow.db",
                num_samples=trials,
                overrides=[
                    "sampler.name=random", f"sampler.seed={seed}", "scheduler.name=fifo",
                    *overrides,
                ],
            ),
            echo=lambda *a, **k: None,
        )  # fmt: skip
    finally:
        ray.shutdown()
    return outcome.search_path


def curves(search_path: str) -> list[list[dict]]:
    """Every trial's per-epoch Tune results (result.json), in start order."""
    found = []
    for path in Path(search_path).glob("*/result.json"):
        results = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        results = [r for r in results if "epoch" in r]
        if results and results[-1]["epoch"] == results[-1]["epochs"]:
            found.append(sorted(results, key=lambda r: r["epoch"]))
    return sorted(found, key=lambda c: c[0]["timestamp"] - c[0]["time_total_s"])


def correlations(trials: list[list[dict]]) -> dict[str, list[dict]]:
    """Spearman rho (and p) between each metric at epoch e and the final best val."""
    final = [t[-1][FINAL] for t in trials]
    out: dict[str, list[dict]] = {}
    for metric in METRICS:
        rows = []
        for e in range(len(trials[0])):
            rho, p = spearmanr([t[e][metric] for t in trials], final)
            rows.append({"epoch": e + 1, "rho": float(rho), "p": float(p)})
        out[metric] = rows
    return out


def replay_asha(trials, metric: str, grace: int, factor: float, max_t: int) -> dict:
    """Ray's asynchronous ASHA (one bracket) over recorded curves, in start order."""
    from augkd.search.space import SchedulerSettings

    milestones = SchedulerSettings(grace_period=grace, reduction_factor=factor).milestones(max_t)
    recorded: dict[float, list[float]] = {m: [] for m in milestones}
    spent, kept, stops = 0.0, [], []
    for trial in trials:
        stop = len(trial)
        for milestone in milestones:
            if milestone >= len(trial):
                break
            value = trial[int(milestone) - 1][metric]
            seen = recorded[milestone]
            cutoff = np.nanpercentile(seen, (1 - 1 / factor) * 100) if seen else None
            seen.append(value)
            if cutoff is not None and value < cutoff:
                stop = int(milestone)
                break
        spent += trial[stop - 1]["time_total_s"]
        stops.append(stop)
        if stop == len(trial):
            kept.append(trial)
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
        "epochs_saved": 1 - sum(stops) / sum(len(t) for t in trials),
        "best_final_val": best,
        "best_kept_val": found,
        "first_rung_rho": None if first is None else correlations_at(trials, metric, int(first)),
    }


def correlations_at(trials, metric: str, epoch: int) -> float:
    rho, _ = spearmanr([t[epoch - 1][metric] for t in trials], [t[-1][FINAL] for t in trials])
    return float(rho)


def main() -> None:
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
    search_path = args.reuse or run_search(
        storage, args.space, args.trials, args.seed, args.overrides
    )
    trials = curves(search_path)
    max_t = len(trials[0])
    corr = correlations(trials)
    replays = {
        metric: [
            replay_asha(trials, metric, grace, args.reduction_factor, max_t)
            for grace in range(1, max_t // 2 + 1)
        ]
        for metric in METRICS
    }
    (out / f"rung_correlation_{args.space}.json").write_text(
        json.dumps(
            {"search": search_path, "trials": len(trials), "correlations": corr, "asha": replays},
            indent=2,
        )
    )
    before = [t[0]["time_total_s"] - t[0].get("epoch_seconds", 0.0) for t in trials]
    total = [t[-1]["time_total_s"] for t in trials]
    print(f"{len(trials)} full-budget trials of {max_t} epochs from {search_path}")
    print(
        f"before the first epoch a trial spends {np.mean(before):.1f} s of its "
        f"{np.mean(total):.1f} s mean ({np.mean(before) / np.mean(total):.0%}; teacher, "
        "data, Module 1 and Module 2, cached or produced)\n"
    )
    print("| epoch | " + " | ".join(f"rho({m}@e, final)" for m in METRICS) + " |")
    print("|---|" + "---|" * len(METRICS))
    for e in range(max_t):
        cells = [f"{corr[m][e]['rho']:+.2f} (p {corr[m][e]['p']:.2f})" for m in METRICS]
        print(f"| {e + 1} | " + " | ".join(cells) + " |")
    for metric in METRICS:
        print(f"\nASHA (reduction factor {args.reduction_factor:g}) on {metric}:")
        print("| grace | rungs | first-rung rho | completed | trial-seconds saved | "
              "epochs saved | best kept / best |")  # fmt: skip
        print("|---|---|---|---|---|---|---|")
        for r in replays[metric]:
            print(
                f"| {r['grace_period']} | {','.join(f'{m:g}' for m in r['rungs'])} | "
                f"{r['first_rung_rho']:+.2f} | {r['completed']}/{len(trials)} | "
                f"{r['seconds_saved']:.0%} | {r['epochs_saved']:.0%} | "
                f"{r['best_kept_val']:.1f} / {r['best_final_val']:.1f} |"
            )


if __name__ == "__main__":
    main()

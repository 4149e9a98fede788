"""Search efficiency on the built-in benchmark: TPE+ASHA against random search and
against the public release's own grid (a in 0.1..1.0 x b in 0.6..1.0, 50 settings at
full budget). TPE+ASHA and random run once per sampler seed (--repeats).

    python benchmarks/search_efficiency.py [--repeats 3] [--out benchmarks/results]

All three run as real searches (Ray Tune, Optuna, MLflow) in one process on one
storage path, so the stage cache is shared as it would be in practice. Compute is
counted in Module-3 epochs (the fidelity ASHA saves) and in trial seconds. Prints the
table, writes search_efficiency.json and a PNG of best val Acc@1 against compute.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
from pathlib import Path

import ray
import yaml

from augkd.basics.seed_stats import format_mean_std
from augkd.search.records.results import load_results
from augkd.search.run.ending import cache_savings
from augkd.search.run.runner import SearchOptions, run_search
from augkd.storage.locations import sqlite_tracking_uri

GRID = {
    "module3.a": {
        "type": "float",
        "low": 0.1,
        "high": 1.0,
        "grid": [round(0.1 * k, 1) for k in range(1, 11)],
    },
    "module3.b": {"type": "float", "low": 0.6, "high": 1.0, "grid": [0.6, 0.7, 0.8, 0.9, 1.0]},
}


def arms(spaces_dir: Path, repeats: int) -> dict[str, Path]:
    """TPE+ASHA and random once per sampler seed; the grid once (its set is fixed)."""
    digits = yaml.safe_load(Path("search_spaces/digits.yaml").read_text())
    spaces = [{**digits, "name": "grid", "params": GRID, "num_samples": 50,
               "sampler": {"name": "grid", "seed": 0}, "scheduler": {"name": "fifo"}}]  # fmt: skip
    for seed in range(repeats):
        spaces.append({**digits, "name": f"tpe_asha-s{seed}",
                       "sampler": {**digits["sampler"], "seed": seed}})  # fmt: skip
        spaces.append({**digits, "name": f"random-s{seed}", "sampler": {"name": "random", "seed": seed},
                       "scheduler": {"name": "fifo"}})  # fmt: skip
    paths = {}
    for space in spaces:
        path = spaces_dir / f"{space['name']}.yaml"
        path.write_text(yaml.safe_dump(space))
        paths[space["name"]] = path
    return paths


def curve(rows: list[dict]) -> list[dict]:
    """Best val so far (and the test Acc@1 of that incumbent) after each trial, in start order."""
    ordered = rows  # the table keeps trials in the order they started
    spent_epochs, spent_seconds, best, points = 0.0, 0.0, -math.inf, []
    incumbent_test = None
    for row in ordered:
        spent_epochs += row.get("epochs_run") or 0.0
        spent_seconds += row.get("wall_seconds") or 0.0
        value = row.get("best_val_acc1")
        if row.get("status") == "completed" and value is not None and value > best:
            best, incumbent_test = value, row.get("test_acc1")
        points.append({"epochs": spent_epochs, "seconds": spent_seconds,
                       "best_val_acc1": best if best > -math.inf else None,
                       "test_acc1": incumbent_test})  # fmt: skip
    return points


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default="benchmarks/results")
    parser.add_argument("--figure", default="docs/figures/search_efficiency.png")
    parser.add_argument("--repeats", type=int, default=3, help="sampler seeds for TPE and random")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    spaces = out / "spaces"
    spaces.mkdir(exist_ok=True)
    storage = out / "search_runs"
    ray.init(address="local", include_dashboard=False, log_to_driver=False)
    summary = {}
    try:
        for name, path in arms(spaces, args.repeats).items():
            outcome = run_search(SearchOptions(space=str(path), storage=str(storage),
                                               tracking_uri=sqlite_tracking_uri(out),
                                               name=name),
                                 echo=lambda *a, **k: None)  # fmt: skip
            rows = load_results(outcome.search_path)
            points = curve(rows)
            summary[name] = {
                "trials": len(rows),
                "pruned": sum(r.get("status") == "pruned" for r in rows),
                "module3_epochs": points[-1]["epochs"],
                "trial_seconds": points[-1]["seconds"],
                "best_val_acc1": points[-1]["best_val_acc1"],
                "test_acc1_at_best_val": points[-1]["test_acc1"],
                "curve": points,
                **cache_savings(rows),
            }
            print(f"{name}: {summary[name]['trials']} trials, best val "
                  f"{summary[name]['best_val_acc1']}, {points[-1]['epochs']:.0f} epochs", flush=True)  # fmt: skip
    finally:
        ray.shutdown()
    (out / "search_efficiency.json").write_text(json.dumps(summary, indent=2))
    print(table(summary))
    plot(summary, Path(args.figure))


def table(summary: dict) -> str:
    grid = summary["grid"]
    lines = [
        "| search | trials (pruned) | Module-3 epochs | share of grid compute | trial seconds | "
        "best val Acc@1 | its test Acc@1 | stage-cache hits (m1/m2) | est. seconds saved |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, arm in summary.items():
        lines.append(
            f"| {name} | {arm['trials']} ({arm['pruned']}) | {arm['module3_epochs']:.0f} | "
            f"{arm['module3_epochs'] / grid['module3_epochs']:.0%} | {arm['trial_seconds']:.0f} | "
            f"{arm['best_val_acc1']:.1f} | {arm['test_acc1_at_best_val']:.1f} | "
            f"{arm['module1_cache_hits']:.0f}/{arm['module2_cache_hits']:.0f} | "
            f"{arm['cache_seconds_saved']:.0f} |"
        )
    lines += ["", "| sampler | runs | mean Module-3 epochs | best val Acc@1 (mean ± std) | "
              "its test Acc@1 (mean ± std) |", "|---|---|---|---|---|"]  # fmt: skip
    for family in ("tpe_asha", "random", "grid"):
        runs = [arm for name, arm in summary.items() if name.split("-s")[0] == family]
        lines.append(
            f"| {family} | {len(runs)} | {statistics.fmean(a['module3_epochs'] for a in runs):.0f} | "
            f"{format_mean_std([a['best_val_acc1'] for a in runs])} | "
            f"{format_mean_std([a['test_acc1_at_best_val'] for a in runs])} |"
        )
    return "\n".join(lines)


def plot(summary: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4))
    colours = {"tpe_asha": "tab:blue", "random": "tab:orange", "grid": "tab:green"}
    labelled = set()
    for name, arm in summary.items():
        family = name.split("-s")[0]
        xs = [p["epochs"] for p in arm["curve"] if p["best_val_acc1"] is not None]
        ys = [p["best_val_acc1"] for p in arm["curve"] if p["best_val_acc1"] is not None]
        label = None if family in labelled else family
        labelled.add(family)
        ax.step(xs, ys, where="post", label=label, color=colours[family], alpha=0.8)
    ax.set_xlabel("compute spent (Module-3 epochs, all trials)")
    ax.set_ylabel("best val Acc@1 so far (%)")
    ax.set_title("digits clean -> rotate: search efficiency")
    ax.legend()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()

"""Val Acc@1 against optimizer steps, per entry, from benchmarks/ood_digits.py's JSON:
how long each method needs to converge (to size converged budgets).

    python benchmarks/val_curves.py benchmarks/results/ood_fonts.json [...] --out curves.png

Draws the mean val curve over seeds (band: ± std) of every entry, one panel per file,
and prints where each mean curve converges: the first epoch whose 5-epoch moving
average comes within 0.5 point of the curve's plateau (the mean of its last fifth).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

WINDOW = 5
TOLERANCE = 0.5


def converged_epoch(curve: np.ndarray) -> tuple[int | None, float]:
    """(1-based epoch, plateau): the first epoch whose moving average reaches the plateau;
    None when none does (the curve still rises at the end of the budget)."""
    plateau = float(curve[-max(1, len(curve) // 5) :].mean())
    window = min(WINDOW, len(curve))
    smooth = np.convolve(curve, np.ones(window) / window, mode="valid")
    reached = np.nonzero(smooth >= plateau - TOLERANCE)[0]
    return (int(reached[0]) + window if len(reached) else None), plateau


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("results", nargs="+", help="ood_<benchmark>.json files")
    parser.add_argument("--out", default="val_curves.png")
    args = parser.parse_args()
    summaries = [json.loads(Path(path).read_text()) for path in args.results]
    figure = Figure(figsize=(6.5 * len(summaries), 4.2))
    axes = figure.subplots(1, len(summaries), squeeze=False)[0]
    print("| benchmark | entry | seeds | plateau val Acc@1 | converged at epoch | = steps |")
    print("|---|---|---|---|---|---|")
    for ax, summary in zip(axes, summaries, strict=True):
        steps = summary["steps_per_epoch"]
        for entry, record in summary["methods"].items():
            curves = np.array(record["val_curve"], dtype=float)
            mean, spread = curves.mean(axis=0), curves.std(axis=0)
            x = steps * np.arange(1, len(mean) + 1)
            ax.plot(x, mean, label=entry, linewidth=1.2)
            ax.fill_between(x, mean - spread, mean + spread, alpha=0.15)
            epoch, plateau = converged_epoch(mean)
            where = f"{epoch} | {epoch * steps}" if epoch else "not within the budget | -"
            print(f"| {summary['benchmark']} | {entry} | {len(curves)} | {plateau:.1f} | "
                  f"{where} |")  # fmt: skip
        ax.set_title(
            f"{summary['benchmark']} ({summary['student_domain']}): mean val Acc@1 over "
            f"{len(summary['seeds'])} seeds",
            fontsize=9,
        )
        ax.set_xlabel(f"optimizer steps ({steps} per epoch)")
        ax.set_ylabel("val Acc@1")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    FigureCanvasAgg(figure)
    figure.savefig(args.out, dpi=110, bbox_inches="tight")
    print(f"figure written to {args.out}")


if __name__ == "__main__":
    main()

"""Val Acc@1 against optimizer steps, per entry, from benchmarks/ood_digits.py's JSON:
how long each method needs to converge (to size budgets in steps).

    python benchmarks/val_curves.py benchmarks/results/ood_fonts.json [...] --out curves.png

Draws the mean val curve over seeds (band: ± std) of every entry, one panel per file,
and prints where each mean curve converges: the first val pass whose moving average over
WINDOW passes comes within TOLERANCE points of the curve's plateau (the mean of its last
fifth), as an optimizer step.
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


def converged_at(steps: np.ndarray, curve: np.ndarray) -> tuple[int | None, float]:
    """(optimizer step, plateau): the step of the first val pass whose moving average
    reaches the plateau; None when none does (the curve still rises at the end)."""
    plateau = float(curve[-max(1, len(curve) // 5) :].mean())
    window = min(WINDOW, len(curve))
    smooth = np.convolve(curve, np.ones(window) / window, mode="valid")
    reached = np.nonzero(smooth >= plateau - TOLERANCE)[0]
    return (int(steps[reached[0] + window - 1]) if len(reached) else None), plateau


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("results", nargs="+", help="ood_<benchmark>.json files")
    parser.add_argument("--out", default="val_curves.png")
    args = parser.parse_args()
    summaries = [json.loads(Path(path).read_text()) for path in args.results]
    figure = Figure(figsize=(6.5 * len(summaries), 4.2))
    axes = figure.subplots(1, len(summaries), squeeze=False)[0]
    print("| benchmark | entry | seeds | plateau val Acc@1 | converged at step |")
    print("|---|---|---|---|---|")
    for ax, summary in zip(axes, summaries, strict=True):
        for entry, record in summary["methods"].items():
            curves = np.array(record["val_curve"], dtype=float)  # [seed, pass, (step, val)]
            x = curves[0, :, 0]
            mean, spread = curves[:, :, 1].mean(axis=0), curves[:, :, 1].std(axis=0)
            ax.plot(x, mean, label=entry, linewidth=1.2)
            ax.fill_between(x, mean - spread, mean + spread, alpha=0.15)
            step, plateau = converged_at(x, mean)
            where = step if step is not None else "not within the budget"
            print(f"| {summary['benchmark']} | {entry} | {len(curves)} | {plateau:.1f} | "
                  f"{where} |")  # fmt: skip
        ax.set_title(
            f"{summary['benchmark']} ({summary['student_domain']}): mean val Acc@1 over "
            f"{len(summary['seeds'])} seeds",
            fontsize=9,
        )
        ax.set_xlabel(f"optimizer steps ({summary['steps_per_epoch']} per epoch)")
        ax.set_ylabel("val Acc@1")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    FigureCanvasAgg(figure)
    figure.savefig(args.out, dpi=110, bbox_inches="tight")
    print(f"figure written to {args.out}")


if __name__ == "__main__":
    main()

"""AuG-KD against every baseline on the built-in digits benchmark.

    python benchmarks/ood_digits.py [--seeds 3] [--set key=value ...]

Prints mean ± std of test Acc@1 on the student domain per method, and the time spent
in each module, and writes benchmarks/results/ood_digits.json (the format the
analysis notebook reads as a multi-seed evaluation).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from augkd.cache import StageCache
from augkd.config import METHODS, load_config, with_overrides
from augkd.metrics import format_mean_std
from augkd.pipeline import run_trial


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "ood_digits.json"))
    args = parser.parse_args()
    base = load_config(None, args.overrides)
    results: dict[str, dict[str, list[float]]] = {m: {} for m in METHODS}
    with tempfile.TemporaryDirectory() as cache_dir:
        for seed in range(args.seeds):
            for method in METHODS:
                config = with_overrides(base, {"method": method, "seed": seed})
                cache = StageCache(cache_dir)
                start = time.perf_counter()
                result = run_trial(config, cache=cache, log=lambda _line: None)
                total = time.perf_counter() - start
                module3 = sum(h["epoch_seconds"] for h in result.history)
                produced = {e.stage: e.seconds for e in cache.events if not e.hit}
                record = results[method]
                for key, value in (
                    ("test_acc1", result.metrics["test_acc1"]),
                    ("best_val_acc1", result.metrics["best_val_acc1"]),
                    ("module1_seconds", produced.get("module1", 0.0)),
                    ("module2_seconds", produced.get("module2", 0.0)),
                    ("module3_seconds", module3),
                    ("total_seconds", total),
                ):
                    record.setdefault(key, []).append(value)
                print(f"seed {seed} {method:<9} test acc1 {result.metrics['test_acc1']:5.1f} "
                      f"({total:.1f}s)", flush=True)  # fmt: skip
    print(format_table(results, base.data.student_domain, args.seeds))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"student_domain": base.data.student_domain,
                                          "seeds": args.seeds, "methods": results}, indent=2))  # fmt: skip


def format_table(results: dict, domain: str, seeds: int) -> str:
    lines = [
        f"digits clean -> {domain}, {seeds} seeds; module times are for producing the "
        "stage (0 when a cached artifact was reused)",
        "| method | test Acc@1 | best val Acc@1 | module 1 s | module 2 s | module 3 s |",
        "|---|---|---|---|---|---|",
    ]
    for method, record in results.items():
        lines.append(
            f"| {method} | {format_mean_std(record['test_acc1'])} | {format_mean_std(record['best_val_acc1'])} | "
            f"{statistics.fmean(record['module1_seconds']):.1f} | "
            f"{statistics.fmean(record['module2_seconds']):.1f} | "
            f"{statistics.fmean(record['module3_seconds']):.1f} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()

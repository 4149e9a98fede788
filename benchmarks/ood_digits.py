"""AuG-KD against every baseline on the built-in benchmarks, over seeds, paired.

    python benchmarks/ood_digits.py [--benchmark digits|fonts|forms|all] [--seeds 5]
        [--entries augkd,ce,kd,...] [--variant module3.teacher_term=mixed ...]
        [--config best/rank1.yaml ...] [--set module3.steps=600 ...] [--out-dir DIR]

Each benchmark's base config is its search space's base (search_spaces/digits.yaml,
fonts.yaml, forms.yaml: data, split and Module-3 budget), plus --set. The entries:

- augkd                       AuG-KD at its defaults (the base's settings);
- ce, kd, dfkd                the baselines (kd at the base's u and tau_kd);
- augkd_paper                 AuG-KD at the paper's loss: teacher term both, u 0.5, tau_kd 10;
- augkd_u1                    AuG-KD at u = 1 (teacher term none: the release's training);
- augkd_variant               AuG-KD with the --variant overrides (only when given);
- no_anchor, no_mixup         the ablations, at the base's Module-3 settings;
- one entry per --config FILE (named by the file), e.g. a search's exported best config
  re-evaluated on fresh seeds; it runs on the benchmark whose data section it shares.

Every entry of a benchmark runs on the same seeds, hence the same splits, so the table
gives each entry's PAIRED difference to the best baseline (highest mean test Acc@1, the
strictest comparison): mean ± standard error over seeds. The budget is stated in
optimizer steps. Writes DIR/ood_<benchmark>.json (the "methods" format the analysis
notebook reads as a multi-seed evaluation), with every trial's val curve for
benchmarks/val_curves.py.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from augkd.basics.config import Config, load_config, parse_override, with_overrides
from augkd.basics.errors import AugkdError, ConfigError
from augkd.basics.seed_stats import format_mean_std, paired_difference
from augkd.data import load_student_splits
from augkd.hardware.runtime import resolve_device
from augkd.method.budget import StepBudget
from augkd.method.mixup import module3_budget
from augkd.search.prepare.space_file import PACKAGED_SPACES, load_space
from augkd.storage.cache import StageCache
from augkd.trial.pipeline import run_trial
from augkd.trial.teacher import default_cache_root

BENCHMARKS = ("digits", "fonts", "forms", "tablet")
BASELINES = ("ce", "kd", "dfkd")
ENTRIES: dict[str, dict[str, Any]] = {
    "augkd": {"method": "augkd"},
    "ce": {"method": "ce"},
    "kd": {"method": "kd"},
    "dfkd": {"method": "dfkd"},
    "augkd_paper": {
        "method": "augkd",
        "module3.teacher_term": "both",
        "module3.ce_share": 0.5,
        "module3.kd_temperature": 10.0,
        "module3.teacher_fade": False,
    },
    "augkd_u1": {"method": "augkd", "module3.teacher_term": "none"},
    "no_anchor": {"method": "no_anchor"},
    "no_mixup": {"method": "no_mixup"},
}


def benchmark_base(name: str, overrides: list[str]) -> Config:
    """The benchmark's search-space base (its data and budget) plus ``overrides``."""
    base = load_space(PACKAGED_SPACES / f"{name}.yaml").base_config_object()
    return with_overrides(base, dict(parse_override(text) for text in overrides))


def plan_entries(
    base: Config,
    names: list[str],
    variant: list[str],
    config_files: list[str],
    overrides: list[str],
) -> dict[str, Config]:
    """Entry name -> the config it runs (before the seed is set); --set applies to all."""
    entries = {name: with_overrides(base, ENTRIES[name]) for name in names if name in ENTRIES}
    if variant:
        changes = dict(parse_override(text) for text in variant)
        entries["augkd_variant"] = with_overrides(base, {"method": "augkd", **changes})
    for path in config_files:
        loaded = load_config(path, overrides)
        if loaded.data == base.data:
            entries[Path(path).stem] = loaded
    return entries


def budget_of(config: Config) -> StepBudget:
    """The Module-3 budget of ``config`` on its data, in optimizer steps and epochs."""
    splits = load_student_splits(config.data, config.seed, resolve_device("cpu"))
    return module3_budget(config.module3, len(splits.train_y))


def run_benchmark(
    name: str, entries: dict[str, Config], seeds: list[int], cache_root: str | None
) -> dict[str, Any]:
    records: dict[str, dict[str, list]] = {entry: {} for entry in entries}
    for seed in seeds:
        for entry, config in entries.items():
            seeded = with_overrides(config, {"seed": seed})
            cache = StageCache(cache_root or default_cache_root(seeded))
            start = time.perf_counter()
            result = run_trial(seeded, cache=cache, log=lambda _line: None)
            total = time.perf_counter() - start
            produced = {e.stage: e.seconds for e in cache.events if not e.hit}
            record = records[entry]
            for key, value in (
                ("test_acc1", result.metrics["test_acc1"]),
                ("best_val_acc1", result.metrics["best_val_acc1"]),
                ("best_epoch", result.metrics["best_epoch"]),
                ("module1_seconds", produced.get("module1", 0.0)),
                ("module2_seconds", produced.get("module2", 0.0)),
                ("best_step", result.metrics["best_step"]),
                ("module3_seconds", result.metrics["module3_seconds"]),
                ("total_seconds", total),
                ("val_curve", [[h["step"], h["val_acc1"]] for h in result.history]),
                ("diagnostics", result.diagnostics.metrics if result.diagnostics else None),
            ):
                record.setdefault(key, []).append(value)
            print(f"{name} seed {seed} {entry:<14} test acc1 {result.metrics['test_acc1']:5.1f} "
                  f"best val {result.metrics['best_val_acc1']:5.1f} @ "
                  f"step {result.metrics['best_step']:.0f} ({total:.1f}s)", flush=True)  # fmt: skip
    first = next(iter(entries.values()))
    budget = budget_of(first)
    return {
        "benchmark": name,
        "student_domain": first.data.student_domain,
        "seeds": seeds,
        "epochs": budget.epochs,
        "steps_per_epoch": budget.steps_per_epoch,
        "budget_steps": budget.steps,
        "configs": {entry: config.to_dict() for entry, config in entries.items()},
        "methods": records,
    }


def format_table(summary: dict[str, Any]) -> str:
    methods = summary["methods"]
    baselines = [name for name in BASELINES if name in methods]
    best = max(baselines, key=lambda n: statistics.fmean(methods[n]["test_acc1"]), default=None)
    lines = [
        f"{summary['benchmark']}: {len(summary['seeds'])} seeds {summary['seeds']}; Module 3 "
        f"budget {summary['epochs']} epochs = {summary['budget_steps']} optimizer steps "
        f"({summary['steps_per_epoch']} per epoch)",
        f"paired difference: test Acc@1 minus the best baseline's ({best}, highest mean test "
        "Acc@1), same seed and split; mean ± standard error over seeds",
        "| entry | test Acc@1 | best val Acc@1 | best step | paired diff vs best baseline | diff / SE |",
        "|---|---|---|---|---|---|",
    ]
    for entry, record in methods.items():
        diff, ratio = "-", "-"
        if best is not None and entry != best:
            difference = paired_difference(record["test_acc1"], methods[best]["test_acc1"])
            diff = str(difference)
            ratio = f"{difference.ratio():+.1f}" if math.isfinite(difference.ratio()) else "-"
        lines.append(
            f"| {entry} | {format_mean_std(record['test_acc1'])} | "
            f"{format_mean_std(record['best_val_acc1'])} | "
            f"{statistics.fmean(record['best_step']):.0f} | {diff} | {ratio} |"
        )
    return "\n".join(lines)


def merge_summaries(summaries: list[dict[str, Any]]) -> dict[str, Any]:
    """One summary from runs of the same benchmark and entries on disjoint seeds (e.g. seeds
    0-2 and 3-4 run apart); entries must have run the same configs to stay paired."""
    merged = json.loads(json.dumps(summaries[0]))
    for other in summaries[1:]:
        if (other["benchmark"], other["budget_steps"]) != (
            merged["benchmark"],
            merged["budget_steps"],
        ):
            raise ConfigError("--merge takes runs of one benchmark at one budget.")
        if set(other["seeds"]) & set(merged["seeds"]):
            raise ConfigError(f"--merge: seeds {sorted(set(other['seeds']) & set(merged['seeds']))} "
                              "appear twice; merge runs on disjoint seeds.")  # fmt: skip
        if other["methods"].keys() != merged["methods"].keys():
            raise ConfigError("--merge: the runs have different entries; run the same --entries.")
        for entry, config in other["configs"].items():
            if {k: v for k, v in config.items() if k != "seed"} != {
                k: v for k, v in merged["configs"][entry].items() if k != "seed"
            }:
                raise ConfigError(f"--merge: entry '{entry}' ran different configs; not paired.")
        merged["seeds"] += other["seeds"]
        for entry, record in other["methods"].items():
            for key, values in record.items():
                merged["methods"][entry][key] += values
    return merged


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--benchmark", choices=[*BENCHMARKS, "all"], default="all")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--entries", default=",".join(ENTRIES), help="comma-separated")
    parser.add_argument("--variant", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--config", dest="configs", action="append", default=[])
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--cache", default=None, help="stage cache (default: augkd's)")
    parser.add_argument(
        "--merge", nargs="+", metavar="JSON",
        help="instead of running: combine earlier result files on disjoint seeds",
    )  # fmt: skip
    parser.add_argument("--out-dir", default=str(Path(__file__).parent / "results"))
    args = parser.parse_args()
    names = [name for name in args.entries.split(",") if name]
    unknown = [name for name in names if name not in ENTRIES]
    seeds = list(range(args.first_seed, args.first_seed + args.seeds))
    try:
        if args.merge:
            summary = merge_summaries([json.loads(Path(p).read_text()) for p in args.merge])
            print(format_table(summary), flush=True)
            out = Path(args.out_dir) / f"ood_{summary['benchmark']}.json"
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps(summary, indent=1))
            print(f"results written to {out}")
            return 0
        if unknown:
            raise ConfigError(f"Unknown entries {unknown}; choose from {', '.join(ENTRIES)}.")
        chosen = BENCHMARKS if args.benchmark == "all" else (args.benchmark,)
        plans = {}
        for name in chosen:
            base = benchmark_base(name, args.overrides)
            plans[name] = plan_entries(base, names, args.variant, args.configs, args.overrides)
        placed = {Path(p).stem for entries in plans.values() for p in entries}
        stray = [p for p in args.configs if Path(p).stem not in placed]
        if stray:
            raise ConfigError(
                f"Config {stray[0]} shares the data section of no chosen benchmark, so it "
                "cannot be paired; export it from that benchmark's search or pick --benchmark."
            )
        for name, entries in plans.items():
            summary = run_benchmark(name, entries, seeds, args.cache)
            print(format_table(summary), flush=True)
            out = Path(args.out_dir) / f"ood_{name}.json"
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps(summary, indent=1))
            print(f"results written to {out}")
    except AugkdError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

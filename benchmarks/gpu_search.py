"""A whole search on one GPU: how busy is the GPU, phase by phase, and where does it wait?

A real `python search.py` run in-process (Ray Tune + Optuna TPE + ASHA + MLflow, the shared
stages produced by Ray tasks before the trials) on the fonts benchmark rendered at 32 px, at
the release's shapes: resnet34 teacher, mobilenet_v3_small student, Module-3 batch 256, bf16.
The GPU's utilisation and memory are sampled every second (NVML, else nvidia-smi) and split
by phase: the shared stages (preflight, teacher, Module 1, encoder adaptation, the Module-2
grid of the space's AnchorNets) and the trials (Module 3 under ASHA). It prints wall
time, mean utilisation and idle share per phase, trials per hour, a timeline of running trials
against utilisation, and each trial's time before its first report (work ASHA cannot stop).

Budgets (scaled from the release's so that one run fits in one device call of under 10 minutes
on an H100/H200; the release's Module 1 alone is 200 x 200 generator steps):
  teacher 10 epochs on ~4,000 rendered digits; Module 1 4 epochs x 50 generator steps;
  encoder adaptation 5 epochs; Module 2 20 epochs per grid point; Module 3 up to 40 epochs
  (240 optimizer steps) on 1,437 student images (data.split 0.8/0.1/0.1), ASHA grace 30
  steps, reduction 2 (rungs at 30, 60, 120 steps: epochs 5, 10, 20);
  8 trials, 4 at a time on the GPU (resources.gpu 0.25).

    python benchmarks/gpu_search.py                 # on a machine with one CUDA GPU
    python benchmarks/gpu_search.py --per-gpu 2     # 2 trials at a time instead of 4
    python benchmarks/gpu_search.py --tiny          # CPU, tiny nets and budgets (a smoke run)

Writes benchmarks/results/gpu_search.json (gpu_search_tiny.json with --tiny).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run from a checkout without installing it
    sys.path.insert(0, str(ROOT))

RELEASE_SHAPES = [
    "data.image_size=32", "data.train_per_class=null", "data.split=[0.8, 0.1, 0.1]",
    "teacher.arch=resnet34", "teacher.epochs=10", "student.arch=mobilenet_v3_small",
    "precision=bf16", "module1.epochs=4", "module1.iters_per_epoch=50",
    "encoder_adapt.epochs=5", "module2.epochs=20", "module3.batch_size=256",
    "module3.epochs=40", "scheduler.grace_period=30",
    "scheduler.reduction_factor=2",
]  # fmt: skip
TINY = [
    "data.image_size=16", "teacher.arch=small_cnn", "teacher.epochs=3",
    "student.arch=tiny_cnn", "module1.epochs=1", "module1.iters_per_epoch=4",
    "module1.student_steps=2", "encoder_adapt.epochs=1", "module2.epochs=1",
    "module3.epochs=4", "scheduler.grace_period=1",
    "scheduler.reduction_factor=2",
]  # fmt: skip
IDLE_PCT = 10.0
"""A sample below this utilisation counts as the GPU waiting."""
BIN_S = 10.0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tiny", action="store_true", help="CPU, tiny nets and budgets")
    parser.add_argument("--trials", type=int, default=8, help="trials in the search")
    parser.add_argument("--per-gpu", type=int, default=4, help="trials sharing the GPU at once")
    parser.add_argument("--cpus", type=int, default=os.cpu_count() or 1, help="CPUs for Ray")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="KEY=VALUE", help="more search/config overrides")  # fmt: skip
    parser.add_argument("--keep", metavar="DIR", help="keep the search's files in DIR")
    parser.add_argument("--out", help="results JSON (default: benchmarks/results/...)")
    args = parser.parse_args(argv)
    name = "gpu_search_tiny.json" if args.tiny else "gpu_search.json"
    args.out = args.out or str(ROOT / "benchmarks" / "results" / name)
    return args


class GpuSampler:
    """(seconds since start, utilisation %, memory used MiB) every ``every_s``; nothing on a
    machine without an NVIDIA GPU."""

    def __init__(self, every_s: float = 1.0) -> None:
        self.every_s = every_s
        self.samples: list[tuple[float, float, float]] = []
        self.read = _gpu_reader()
        self.start = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> GpuSampler:
        self.start = time.monotonic()
        if self.read is not None:
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self.read is not None:
            self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            try:
                utilisation, memory = self.read()
            except Exception:  # a sample lost is not worth ending the run for
                continue
            self.samples.append((time.monotonic() - self.start, utilisation, memory))


def _gpu_reader():
    try:
        import pynvml

        pynvml.nvmlInit()
        handle = pynvml.nvmlDeviceGetHandleByIndex(0)

        def read_nvml() -> tuple[float, float]:
            rates = pynvml.nvmlDeviceGetUtilizationRates(handle)
            return float(rates.gpu), pynvml.nvmlDeviceGetMemoryInfo(handle).used / 2**20

        return read_nvml
    except Exception:
        if shutil.which("nvidia-smi") is None:
            return None
        query = ["nvidia-smi", "--id=0", "--query-gpu=utilization.gpu,memory.used",
                 "--format=csv,noheader,nounits"]  # fmt: skip

        def read_smi() -> tuple[float, float]:
            utilisation, memory = subprocess.check_output(query, text=True).split(",")
            return float(utilisation), float(memory)

        return read_smi


PHASE_MARKS = {
    "shared_end": "[search] preflight passed",
    "trials_start": "[search] gpu-search: ",
    "trials_end": "[search] leaderboard",
}
"""The search's own lines that mark a phase boundary (run/runner.py and
stages/before_trials.py print them)."""


class PhaseClock:
    """When each phase boundary was printed, in seconds since ``start``."""

    def __init__(self, start: float) -> None:
        self.start = start
        self.at: dict[str, float] = {}

    def echo(self, line: str = "", *args, **kwargs) -> None:
        for mark, prefix in PHASE_MARKS.items():
            if line.lstrip("\n").startswith(prefix) and mark not in self.at:
                self.at[mark] = time.monotonic() - self.start
        print(line, flush=True)


def summarise(samples: list[tuple[float, float, float]], begin: float, end: float) -> dict:
    inside = [(u, m) for t, u, m in samples if begin <= t < end]
    if not inside:
        return {"seconds": end - begin, "util_mean_pct": None, "idle_share_pct": None,
                "mem_mean_mib": None, "mem_peak_mib": None}  # fmt: skip
    utilisation = [u for u, _ in inside]
    memory = [m for _, m in inside]
    return {
        "seconds": end - begin,
        "util_mean_pct": statistics.fmean(utilisation),
        "idle_share_pct": 100.0 * sum(u < IDLE_PCT for u in utilisation) / len(utilisation),
        "mem_mean_mib": statistics.fmean(memory),
        "mem_peak_mib": max(memory),
    }


def trial_spans(search_path: str, offset: float) -> list[dict]:
    """Each trial's start, first report and end (seconds since the run began) from the
    results Tune wrote, with its epochs and how it ended."""
    spans = []
    for path in sorted(Path(search_path).glob("*/result.json")):
        reports = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        reports = [r for r in reports if "epoch" in r]
        if not reports:
            continue
        first, last = reports[0], reports[-1]
        started = first["timestamp"] - first["time_total_s"]
        before = max(first["time_total_s"] - first["epoch_seconds"], 0.0)
        training = sum(r["epoch_seconds"] for r in reports)
        spans.append({
            "trial_id": first["trial_id"],
            "start": started - offset,
            "first_report": first["timestamp"] - offset,
            "end": last["timestamp"] - offset,
            "epochs": int(last["epoch"]),
            "before_first_report_s": before,
            "module3_epochs_s": training,
            "between_epochs_s": max(last["time_total_s"] - before - training, 0.0),
        })  # fmt: skip
    return spans


def timeline(samples, spans, begin: float, end: float) -> list[dict]:
    rows = []
    t = begin
    while t < end:
        inside = [u for s, u, _ in samples if t <= s < t + BIN_S]
        middle = t + BIN_S / 2
        running = [s for s in spans if s["start"] <= middle < s["end"]]
        rows.append({
            "from_s": t - begin,
            "trials_running": len(running),
            "trials_preparing": sum(s["first_report"] > middle for s in running),
            "util_mean_pct": statistics.fmean(inside) if inside else None,
        })  # fmt: skip
        t += BIN_S
    return rows


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def report(result: dict) -> None:
    print(f"\n== {result['device']}: {result['trials']} trials, {result['per_gpu']} at a time ==")
    print(f"{'phase':<14} {'wall s':>8} {'GPU util %':>11} {'GPU idle %':>11} "
          f"{'mem mean MiB':>13} {'mem peak MiB':>13}")  # fmt: skip
    for name, phase in result["phases"].items():
        print(f"{name:<14} {phase['seconds']:>8.1f} {_pct(phase['util_mean_pct']):>11} "
              f"{_pct(phase['idle_share_pct']):>11} {_pct(phase['mem_mean_mib']):>13} "
              f"{_pct(phase['mem_peak_mib']):>13}")  # fmt: skip
    print(f"trials per hour: {result['trials_per_hour']:.0f}  ({result['trials']} trials in "
          f"{result['phases']['trials']['seconds']:.0f} s; {result['epochs_run']} Module-3 "
          f"epochs; ended {result['outcomes']})")  # fmt: skip
    shares = result["trial_time_shares_pct"]
    print(f"trial-seconds: {shares['before_first_report']:.0f} % before the first report "
          f"(loading, Module 2, diagnostics: ASHA cannot stop it; median "
          f"{result['before_first_report_median_s']:.1f} s), {shares['module3_epochs']:.0f} % "
          f"in Module-3 epochs, {shares['between_epochs']:.0f} % between epochs (reports, "
          "checkpoints)")  # fmt: skip
    print(f"\nwhere the GPU waits: {BIN_S:.0f}-second bins of the trial phase (idle below "
          f"{IDLE_PCT:.0f} %)")  # fmt: skip
    print(f"{'from s':>7} {'running':>8} {'preparing':>10} {'GPU util %':>11}")
    for row in result["timeline"]:
        print(f"{row['from_s']:>7.0f} {row['trials_running']:>8} {row['trials_preparing']:>10} "
              f"{_pct(row['util_mean_pct']):>11}")  # fmt: skip


def run(args: argparse.Namespace, folder: Path) -> dict:
    import ray
    import torch

    from augkd.search.run.runner import SearchOptions, run_search
    from augkd.storage.locations import sqlite_tracking_uri

    gpu = not args.tiny
    overrides = list(TINY if args.tiny else RELEASE_SHAPES)
    at_once = args.per_gpu if gpu else min(args.per_gpu, args.cpus)  # on CPU: a CPU each
    cpus_per_trial = max(1, args.cpus // at_once) if gpu else 1
    overrides += [
        f"resources.gpu={1.0 / at_once if gpu else 0}", f"resources.cpu={cpus_per_trial}",
        f"max_concurrent={at_once}", f"device={'cuda' if gpu else 'cpu'}", *args.overrides,
    ]  # fmt: skip
    device = torch.cuda.get_device_name(0) if gpu else "cpu"
    print(
        f"{device}: fonts at {'16' if args.tiny else '32'} px, {args.trials} trials, "
        f"{at_once} at a time, {cpus_per_trial} CPUs each\n  " + " ".join(overrides)
    )
    with GpuSampler() as sampler:
        ray.init(address="local", num_cpus=args.cpus, num_gpus=1 if gpu else 0,
                 include_dashboard=False, log_to_driver=False)  # fmt: skip
        clock = PhaseClock(sampler.start)
        wall_start = time.time() - (time.monotonic() - sampler.start)
        search_start = time.monotonic() - sampler.start
        try:
            outcome = run_search(
                SearchOptions(
                    space="fonts", storage=str(folder / "runs"), name="gpu-search",
                    tracking_uri=sqlite_tracking_uri(folder), num_samples=args.trials,
                    overrides=overrides,
                ),
                echo=clock.echo,
            )  # fmt: skip
        finally:
            ray.shutdown()
        end = time.monotonic() - sampler.start
    shared_end = clock.at.get("shared_end", search_start)
    trials_start = clock.at.get("trials_start", shared_end)
    trials_end = clock.at.get("trials_end", end)
    spans = trial_spans(outcome.search_path, wall_start)
    before = [s["before_first_report_s"] for s in spans]
    parts = ("before_first_report", "module3_epochs", "between_epochs")
    totals = {part: sum(s[f"{part}_s"] for s in spans) for part in parts}
    trial_seconds = sum(totals.values()) or 1.0
    outcomes: dict[str, int] = {}
    for row in outcome.rows:
        outcomes[row["status"]] = outcomes.get(row["status"], 0) + 1
    return {
        "device": device,
        "tiny": args.tiny,
        "trials": len(outcome.rows),
        "per_gpu": at_once,
        "overrides": overrides,
        "phases": {
            "shared stages": summarise(sampler.samples, search_start, shared_end),
            "trials": summarise(sampler.samples, trials_start, trials_end),
            "whole run": summarise(sampler.samples, 0.0, end),
        },
        "trials_per_hour": 3600.0 * len(outcome.rows) / max(trials_end - trials_start, 1e-9),
        "epochs_run": sum(s["epochs"] for s in spans),
        "outcomes": outcomes,
        "before_first_report_median_s": statistics.median(before) if before else 0.0,
        "trial_time_shares_pct": {k: 100.0 * v / trial_seconds for k, v in totals.items()},
        "timeline": timeline(sampler.samples, spans, trials_start, trials_end),
        "spans": spans,
        "gpu_samples": sampler.samples,
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import torch

    if not args.tiny and not torch.cuda.is_available():
        print("error: no CUDA GPU here; run with --tiny for a CPU smoke run", file=sys.stderr)
        return 2
    if args.per_gpu < 1 or args.trials < 1:
        print("error: --trials and --per-gpu must be at least 1", file=sys.stderr)
        return 2
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    if args.keep:
        folder = Path(args.keep).resolve()
        folder.mkdir(parents=True, exist_ok=True)
        result = run(args, folder)
    else:
        with tempfile.TemporaryDirectory(prefix="augkd_gpu_search_") as temporary:
            result = run(args, Path(temporary))
    report(result)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"\nwritten to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The release's shapes, rehearsed end to end: the office31 space on synthetic Office-31-sized
folders, ``--estimate`` first and then the search it describes, side by side.

What it runs, in one process (as ``python search.py`` would, with ``--evaluate 1
--eval-seeds 1 --max-seeds 1``):

1. synthetic Office-31-sized image folders (31 classes; amazon 2,817, webcam 795 and dslr 498
   images, Office-31's own counts; 32 px RGB PNGs, generated, deterministic, no download);
2. a resnet34 teacher trained on amazon + webcam (``augkd teacher``'s training, under CPU bf16
   autocast on a CPU; before the search and not one of its phases);
3. ``search.py --estimate`` of the office31 space at its shapes (resnet34 teacher,
   mobilenet_v3_small student, batch 256 in Modules 1-3, bf16, the space's Module-2 grid of
   18 AnchorNets) with the budgets below cut;
4. the search itself: shared stages, 8 trials, ASHA, Optuna TPE, MLflow; then the evaluation.

It prints forecast/actual per phase, the peak memory of every shared-stage task, trial and
evaluation run (process RSS on a CPU; CUDA's peak allocated and reserved on a GPU), and how
many trials fit per GPU on 24, 40 and 80 GB cards, against what the space and
clusters/aws.yaml ask.

Budgets cut (the release's in brackets), so that the whole run fits in about 20 minutes on a
2-core CPU shared with other work (at these shapes one Module-1 iteration took 174 s and one
Module-3 step 16 s here, under a load of 6); everything else is the office31 space as shipped:
  teacher.epochs 1 [trained by the user before the search]; module1.epochs 1 x
  module1.iters_per_epoch 2 with module1.student_steps 1 [200 x 200, 5]; encoder_adapt.epochs 1
  [20]; Module 2 1 optimizer step per grid point [200 epochs]; Module 3 4 optimizer steps
  with a val pass after each [200 epochs, a val pass each]; scheduler grace_period 1,
  reduction_factor 2 [40, 3] (rungs at 1, 2 and 4 steps); num_samples 8 [64]; on a CPU
  resources.gpu 0 and resources.cpu 1 [0.5 GPU, 2 CPUs] (two trials at a time on two cores);
  the evaluation: the best config, the defaults and the kd baseline (not ce and dfkd) over
  one fresh seed (--max-seeds 1: no second round).

    OMP_NUM_THREADS=1 python benchmarks/release_rehearsal.py          # CPU, about 20 minutes
    python benchmarks/release_rehearsal.py --device cuda               # on one GPU (resources
                                                                      # as the space asks)
    python benchmarks/release_rehearsal.py --smoke-test                # tiny images and nets
    python benchmarks/release_rehearsal.py --dry-run                   # print the plan only

Writes benchmarks/results/release_rehearsal[_smoke|_cuda].json (the numbers printed).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run from a checkout without installing it
    sys.path.insert(0, str(ROOT))

OFFICE31 = {"amazon": 2817, "webcam": 795, "dslr": 498}
"""Office-31's images per domain."""
CLASSES = 31
IMAGE_SIZE = 32

CUT_BUDGETS = [
    "module1.epochs=1", "module1.iters_per_epoch=2", "module1.student_steps=1",
    "encoder_adapt.epochs=1", "module2.epochs=null", "module2.steps=1",
    "module3.epochs=null", "module3.steps=4", "module3.val_every=1",
    "scheduler.grace_period=1", "scheduler.reduction_factor=2",
]  # fmt: skip
"""The release budgets cut (see the module's docstring); the shapes stay the space's."""
CPU_RESOURCES = ["resources.gpu=0", "resources.cpu=1"]
TEACHER_EPOCHS = 1
TRIALS = 8
CPU_BASELINES = ("kd",)
"""The evaluation's baselines on a CPU: kd alone (ce and dfkd are cheaper than kd per step)."""
GPU_BUDGETS = [
    "module1.epochs=1", "module1.iters_per_epoch=200", "encoder_adapt.epochs=20",
    "module2.epochs=10", "module3.epochs=100",
]  # fmt: skip
"""--device cuda: the budgets cut so that data, teacher, estimate, search and evaluation fit
in one device call of under 10 minutes on an H100 (Module 1 200 of the release's 40,000
generator steps; Module 3 100 of 200 epochs, 200 optimizer steps, under the space's own ASHA
rungs at 40 and 120 steps); the space's resources (2 trials per GPU)."""
GPU_TEACHER_EPOCHS = 5

SMOKE = {
    "sizes": {"amazon": 24, "webcam": 16, "dslr": 40},
    "classes": 4,
    "image_size": 16,
    "teacher_arch": "small_cnn",
    "overrides": [
        "teacher.arch=small_cnn", "student.arch=tiny_cnn", "data.min_eval_images=2",
        "module1.batch_size=8", "module2.batch_size=8", "module3.batch_size=8",
        "module1.latent_size=8",
    ],
    "trials": 2,
}  # fmt: skip
"""--smoke-test: a few tiny images and tiny nets (the suite runs it)."""

CARDS_MIB = {"24 GB (A10G, g5.xlarge)": 23028, "40 GB (A100 40GB)": 40960,
             "80 GB (H100 80GB)": 81559}  # fmt: skip
"""Each card's memory as torch.cuda.mem_get_info reports its total (MiB)."""
CUDA_CONTEXT_MIB = 500
"""What a process's CUDA context takes beyond torch's allocator (not counted by
max_memory_reserved): an assumption of about 0.5 GiB, the usual size on recent drivers."""
G5_XLARGE_HOST_MIB = 16 * 1024
"""A g5.xlarge's host memory: trials' processes share it (4 vCPUs, 16 GiB, one A10G)."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke-test", action="store_true", help="tiny images and nets")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu",
                        help="cuda: trials share a GPU as the space asks (resources.gpu)")  # fmt: skip
    parser.add_argument("--dry-run", action="store_true", help="print the plan and stop")
    parser.add_argument("--estimate-only", action="store_true",
                        help="data, teacher and --estimate on a fresh storage, then stop")  # fmt: skip
    parser.add_argument("--work", help="folder for the data, teacher and storage (kept)")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="KEY=VALUE", help="more search/config overrides")  # fmt: skip
    parser.add_argument("--out", help="results JSON (default: benchmarks/results/...)")
    args = parser.parse_args(argv)
    suffix = "_smoke" if args.smoke_test else ("_cuda" if args.device == "cuda" else "")
    args.out = args.out or str(ROOT / "benchmarks" / "results" / f"release_rehearsal{suffix}.json")
    return args


@dataclass
class Plan:
    """What the rehearsal runs: the data's shape, the teacher and the search's overrides."""

    sizes: dict[str, int]
    classes: int
    image_size: int
    teacher_arch: str
    teacher_epochs: int
    trials: int
    overrides: list[str] = field(default_factory=list)
    baselines: tuple[str, ...] = ("ce", "kd", "dfkd")
    smoke_test: bool = False
    """search.py --smoke-test's trims too (a Module-2 grid of 2 points, 4 trials' budgets)."""


def make_plan(args: argparse.Namespace) -> Plan:
    if args.smoke_test:
        plan = Plan(SMOKE["sizes"], SMOKE["classes"], SMOKE["image_size"],
                    SMOKE["teacher_arch"], 1, SMOKE["trials"],
                    [*CUT_BUDGETS, *CPU_RESOURCES, *SMOKE["overrides"]], ("ce",),
                    smoke_test=True)  # fmt: skip
    else:
        if args.device == "cpu":
            plan = Plan(OFFICE31, CLASSES, IMAGE_SIZE, "resnet34", TEACHER_EPOCHS, TRIALS,
                        [*CUT_BUDGETS, *CPU_RESOURCES], CPU_BASELINES)  # fmt: skip
        else:
            plan = Plan(OFFICE31, CLASSES, IMAGE_SIZE, "resnet34", GPU_TEACHER_EPOCHS, TRIALS,
                        list(GPU_BUDGETS))  # fmt: skip
    plan.overrides += [f"data.image_size={plan.image_size}", *args.overrides]
    return plan


# --------------------------------------------------------------------------- the data


def _class_colour(label: int, classes: int):
    import colorsys

    red, green, blue = colorsys.hsv_to_rgb(label / classes, 0.8, 0.9)
    return (255 * red, 255 * green, 255 * blue)


DOMAIN_STYLES = {"amazon": (250.0, 4.0, False), "webcam": (90.0, 25.0, False),
                 "dslr": (160.0, 12.0, True)}  # fmt: skip
"""Office-31's domains drawn as (background grey, noise sigma, blurred); another domain's
style follows from its name."""


def _style(domain: str) -> tuple[int, tuple[float, float, bool]]:
    """(seed, style) of a domain: Office-31's fixed, any other one's from a hash of its name."""
    if domain in DOMAIN_STYLES:
        return sorted(DOMAIN_STYLES).index(domain), DOMAIN_STYLES[domain]
    code = zlib.crc32(domain.encode())
    return code, (60.0 + code % 160, 4.0 + code % 20, bool(code % 2))


def synthetic_image(domain: str, label: int, index: int, classes: int, size: int):
    """One deterministic image: class ``label`` draws stripes at its own angle and frequency
    in its own colour; the domain sets background, noise and blur (the shift)."""
    import numpy as np

    seed, (background, noise, blurred) = _style(domain)
    rng = np.random.default_rng([seed, label, index])
    angle = math.pi * label / classes + rng.normal(0, 0.08)
    frequency = 2.0 + (label % 5) + rng.normal(0, 0.2)
    y, x = np.mgrid[0:size, 0:size] / size
    wave = np.sin(2 * math.pi * frequency * (x * math.cos(angle) + y * math.sin(angle))
                  + rng.uniform(0, 2 * math.pi))  # fmt: skip
    mask = (wave > 0).astype(np.float32)[..., None]
    colour = np.array(_class_colour(label, classes), dtype=np.float32)
    image = mask * colour + (1 - mask) * background
    image = image + rng.normal(0, noise, image.shape)
    if blurred:  # softer: a 3x3 box blur
        padded = np.pad(image, ((1, 1), (1, 1), (0, 0)), mode="edge")
        image = sum(padded[i : i + size, j : j + size] for i in range(3) for j in range(3)) / 9
    return np.clip(image, 0, 255).astype(np.uint8)


def make_folders(root: Path, sizes: dict[str, int], classes: int, size: int) -> int:
    """root/<domain>/<class>/<n>.png, images spread evenly over the classes; returns how many
    were written (folders already complete are kept)."""
    from PIL import Image

    written = 0
    for domain, count in sizes.items():
        for n in range(count):
            label = n % classes
            path = root / domain / f"class_{label:02d}" / f"{n:05d}.png"
            if path.exists():
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(synthetic_image(domain, label, n, classes, size)).save(path)
            written += 1
    return written


# --------------------------------------------------------------------------- the teacher


def train_teacher_checkpoint(plan: Plan, data_root: Path, out: Path, device_name: str) -> float:
    """`augkd teacher`'s training on amazon + webcam; on a CPU under bf16 autocast (the
    precision the search runs in). Returns its seconds (0 when ``out`` exists)."""
    if out.exists():
        return 0.0
    import contextlib

    import torch

    from augkd.basics.config import config_from_dict
    from augkd.storage.teacher_checkpoint import save_teacher
    from augkd.trial.teacher import train_teacher

    config = config_from_dict({
        "data": {"source": "folders", "root": str(data_root), "image_size": plan.image_size,
                 "teacher_domains": ["amazon", "webcam"], "student_domain": "dslr"},
        "teacher": {"arch": plan.teacher_arch, "epochs": plan.teacher_epochs},
    })  # fmt: skip
    device = torch.device(device_name)
    autocast = (
        torch.autocast("cpu", dtype=torch.bfloat16)
        if device.type == "cpu"
        else contextlib.nullcontext()
    )
    started = time.perf_counter()
    with autocast:
        checkpoint = train_teacher(config, device, log=print)
        checkpoint["state_dict"] = recalibrated_batchnorm(checkpoint, config, device)
    save_teacher(checkpoint, out)
    print(f"[rehearsal] teacher {plan.teacher_arch}, held-out acc1 "
          f"{checkpoint['held_out_acc1']:.1f} -> {out}")  # fmt: skip
    return time.perf_counter() - started


def recalibrated_batchnorm(checkpoint: dict, config: Any, device: Any) -> dict:
    """The teacher's weights with its BatchNorm running statistics recomputed over its own
    training images (one pass, a cumulative average). After an epoch or two the running
    statistics still lag the weights: in eval mode a resnet34 then amplifies generated
    images layer by layer until its activations overflow (logits of 1e22, an infinite
    BN-statistics term, Module 1 NaN at its first step; seen here with a 1-epoch teacher)."""
    import torch
    from torch import nn

    from augkd.data import load_teacher_domain
    from augkd.trial.teacher import teacher_from_checkpoint

    teacher = teacher_from_checkpoint(checkpoint, "the rehearsal's teacher", device)
    model = teacher.model
    for layer in model.modules():
        if isinstance(layer, nn.modules.batchnorm._BatchNorm):
            layer.reset_running_stats()
            layer.momentum = None  # a cumulative average over the pass
    model.train()
    images = load_teacher_domain(config.data).images
    with torch.no_grad():
        for start in range(0, len(images), 256):
            batch = images[start : start + 256].to(device).float() / 255
            model(teacher.normalize(batch))
    return {key: value.cpu() for key, value in model.state_dict().items()}


# --------------------------------------------------------------------------- the numbers


def forecast_rows(forecast: Any, actual: dict[str, float]) -> list[tuple[str, float, float]]:
    """(phase, forecast s, actual s) for the phases the forecast names: the shared stages'
    wall time, the trials' wall time and their trial-seconds."""
    shared, trials = forecast.phases
    share = forecast.gpu_per_trial or forecast.cpu_per_trial
    return [
        ("shared stages (wall s)", shared.wall_s, actual["shared_wall_s"]),
        ("trials (wall s)", trials.wall_s, actual["trials_wall_s"]),
        ("trials (trial-s)", trials.device_s / share, actual["trial_seconds"]),
    ]


def format_rows(rows: list[tuple[str, float, float]]) -> str:
    lines = [f"{'phase':<24} {'forecast':>9} {'actual':>9} {'forecast/actual':>16}"]
    for name, forecast_s, actual_s in rows:
        ratio = forecast_s / actual_s if actual_s > 0 else float("nan")
        lines.append(f"{name:<24} {forecast_s:>9.1f} {actual_s:>9.1f} {ratio:>16.2f}")
    return "\n".join(lines)


def trials_per_gpu(trial_gpu_mib: float, stage_gpu_mib: float, gpu_share: float) -> list[dict]:
    """Per card: how many trials fit by memory (MEMORY_SHARE of the card over a trial's GPU
    peak plus a CUDA context), and whether the space's share (1 / resources.gpu per GPU)
    fits, shared-stage tasks included (they get the same share)."""
    from augkd.basics.config import MEMORY_SHARE

    per_process = max(trial_gpu_mib, stage_gpu_mib) + CUDA_CONTEXT_MIB
    asked = round(1 / gpu_share) if gpu_share > 0 else 0
    rows = []
    for card, total in CARDS_MIB.items():
        fit = int(total * MEMORY_SHARE // (trial_gpu_mib + CUDA_CONTEXT_MIB))
        rows.append({
            "card": card, "total_mib": total, "trials_fit": fit, "space_asks": asked,
            "space_fits": asked * per_process <= total * MEMORY_SHARE,
        })  # fmt: skip
    return rows


def gpu_estimates(space: Any, train_images: int, classes: int) -> dict[str, float]:
    """augkd.method.memory's estimate (what the search checks before a stage allocates) of each
    stage at the space's shapes, in MiB: the GPU peak a CPU run cannot measure."""
    from augkd.method.memory import estimate_stages

    config = space.base_config_object()
    stages = ["module1", "encoder_adapt", "module2", "module3"]
    estimates = estimate_stages(
        config, classes, config.teacher.arch, stages, train_images, True, 3, True
    )
    return {stage: e.bytes / 2**20 for stage, e in zip(stages, estimates, strict=True)}


def measured_gpu_trial_mib() -> float | None:
    """Module 3's measured peak per trial at these shapes on an H100 in bf16
    (benchmarks/gpu_throughput.py; torch's peak allocated), if recorded."""
    path = ROOT / "benchmarks" / "results" / "gpu_throughput_h100.json"
    if not path.exists():
        return None
    rows = json.loads(path.read_text()).get("rows", [])
    peaks = [r["peak_mib_per_trial"] for r in rows if r.get("precision") == "bf16"]
    return max(peaks) if peaks else None


def _peak(peaks: dict[str, float]) -> str:
    from augkd.hardware.peaks import PEAK_GPU_ALLOCATED, PEAK_GPU_RESERVED, PEAK_RSS

    text = f"RSS {peaks.get(PEAK_RSS, 0.0):>7.0f} MiB"
    if peaks.get(PEAK_GPU_RESERVED):
        text += (f"  GPU allocated {peaks.get(PEAK_GPU_ALLOCATED, 0.0):>6.0f} MiB, reserved "
                 f"{peaks[PEAK_GPU_RESERVED]:>6.0f} MiB")  # fmt: skip
    return text


# --------------------------------------------------------------------------- the run


PHASE_LINES = {"shared_end": "[search] preflight passed", "trials_end": "[search] compute:"}
"""The search's own lines (stages/before_trials and run/ending print them) that end a phase."""


class PhaseClock:
    """When each phase ended (seconds since the start), from the run's own marks and the
    search's lines; on a GPU, utilisation and memory sampled every second meanwhile
    (benchmarks/gpu_search.py's sampler), summarised per phase."""

    def __init__(self, gpu: bool) -> None:
        self.sampler = _gpu_search().GpuSampler() if gpu else None
        self.start = time.monotonic()
        self.at: dict[str, float] = {}

    def __enter__(self) -> PhaseClock:
        self.start = time.monotonic()
        if self.sampler is not None:
            self.sampler.__enter__()
            self.start = self.sampler.start
        return self

    def __exit__(self, *exc: object) -> None:
        if self.sampler is not None:
            self.sampler.__exit__(*exc)

    def mark(self, name: str) -> None:
        self.at.setdefault(name, time.monotonic() - self.start)

    def echo(self, line: str = "", *args: Any, **kwargs: Any) -> None:
        for name, prefix in PHASE_LINES.items():
            if line.lstrip("\n").startswith(prefix):
                self.mark(name)
        print(line, flush=True)

    def phases(self) -> dict[str, dict]:
        """Per phase: seconds, mean utilisation and peak memory used (empty on a CPU)."""
        if self.sampler is None:
            return {}
        at = self.at
        shared_end = at.get("shared_end", at.get("search_end", 0.0))
        bounds = {
            "estimate": (0.0, at.get("estimate_end", 0.0)),
            "shared stages": (at.get("estimate_end", 0.0), shared_end),
            "trials": (shared_end, at.get("trials_end", at.get("search_end", shared_end))),
            "evaluation": (at.get("search_end", 0.0), at.get("evaluation_end", 0.0)),
        }
        summarise = _gpu_search().summarise
        return {name: summarise(self.sampler.samples, *span) for name, span in bounds.items()}


def _gpu_search():
    """benchmarks/gpu_search.py (its GPU sampler), loaded from beside this file."""
    import importlib.util

    name = "gpu_search"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name(f"{name}.py"))
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    plan = make_plan(args)
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="rehearsal_"))
    print(f"[rehearsal] office31 space at its shapes on {args.device}; work folder {work}")
    print(f"[rehearsal] data: {plan.classes} classes, {plan.sizes} images at "
          f"{plan.image_size} px; teacher {plan.teacher_arch} {plan.teacher_epochs} epoch(s); "
          f"{plan.trials} trials")  # fmt: skip
    print(f"[rehearsal] --set {' --set '.join(plan.overrides)}")
    if args.dry_run:
        return 0
    from augkd.search.answer.evaluate import run_evaluation
    from augkd.search.answer.evaluation_table import format_table
    from augkd.search.prepare.estimate import estimate_search, format_forecast
    from augkd.search.prepare.request import SearchOptions, requested_space
    from augkd.search.prepare.space_file import load_space
    from augkd.search.records.results import load_results
    from augkd.search.run.ending import compute_spent
    from augkd.search.run.runner import run_search

    timings: dict[str, float] = {}
    data_root, teacher = work / "office31", work / "teacher.pt"
    started = time.perf_counter()
    written = make_folders(data_root, plan.sizes, plan.classes, plan.image_size)
    timings["data_s"] = time.perf_counter() - started
    print(f"[rehearsal] {written} images written in {timings['data_s']:.0f}s")
    timings["teacher_s"] = train_teacher_checkpoint(plan, data_root, teacher, args.device)
    storage = work / ("storage_estimate" if args.estimate_only else "storage")
    if args.estimate_only and storage.exists():
        import shutil

        shutil.rmtree(storage)  # an empty stage cache: every stage is forecast
    options = SearchOptions(
        space="office31", storage=str(storage), tracking_uri=f"sqlite:///{storage}/mlflow.db",
        num_samples=plan.trials, address="local", smoke_test=plan.smoke_test,
        overrides=[f"data.root={data_root}", f"teacher.checkpoint={teacher}", *plan.overrides],
    )  # fmt: skip
    os.environ.pop("RAY_ADDRESS", None)  # a search of its own, never another process's Ray

    with PhaseClock(gpu=args.device == "cuda") as clock:
        started = time.perf_counter()
        forecast = estimate_search(options)
        timings["estimate_s"] = time.perf_counter() - started
        clock.mark("estimate_end")
        print(format_forecast(forecast, None), flush=True)
        if args.estimate_only:
            return 0

        started = time.perf_counter()
        outcome = run_search(options, echo=clock.echo)
        timings["search_s"] = time.perf_counter() - started
        clock.mark("search_end")
        rows = load_results(outcome.search_path)
        spent = compute_spent(rows, outcome.shared.seconds)

        started = time.perf_counter()
        evaluation = run_evaluation(
            outcome.search_path, 1, 1, plan.baselines, outcome.tracking_uri, max_seeds=1,
            echo=clock.echo,
        )  # fmt: skip
        timings["evaluation_s"] = time.perf_counter() - started
        clock.mark("evaluation_end")
    print(format_table(evaluation))

    actual = {
        "shared_wall_s": outcome.shared.seconds,
        "trials_wall_s": timings["search_s"] - outcome.shared.seconds,
        "trial_seconds": spent["trial_seconds"],
    }
    table = forecast_rows(forecast, actual)
    space = requested_space(options)
    from augkd.hardware.peaks import PEAK_GPU_RESERVED, PEAK_RSS

    trial_peaks = [{"trial_id": r["trial_id"], "status": r.get("status"),
                    **{k: r.get(k) for k in (PEAK_RSS, PEAK_GPU_RESERVED) if r.get(k)}}
                   for r in rows]  # fmt: skip
    run_peaks = [{"run": f"{c.label} seed {run['seed']}",
                  **{k: run.get(k) for k in (PEAK_RSS, PEAK_GPU_RESERVED) if run.get(k)}}
                 for c in evaluation.candidates for run in c.runs]  # fmt: skip
    estimates = gpu_estimates(space, outcome.shared.preflight["train_images"], plan.classes)
    measured_trial = max((p.get(PEAK_GPU_RESERVED, 0.0) for p in trial_peaks), default=0.0)
    recorded = None if plan.smoke_test else measured_gpu_trial_mib()  # release shapes only
    trial_gpu = measured_trial or recorded or estimates["module3"]
    measured_stage = max(
        (p.get(PEAK_GPU_RESERVED, 0.0) for p in outcome.shared.peak_memory.values()), default=0.0
    )
    stage_gpu = measured_stage or max(estimates[s] for s in ("module1", "encoder_adapt", "module2"))
    gpu_share = load_space("office31").resources.gpu  # as shipped, whatever this run set
    per_gpu = trials_per_gpu(trial_gpu, stage_gpu, gpu_share)
    rss_trial = max((p.get(PEAK_RSS, 0.0) for p in trial_peaks), default=0.0)

    print("\n[rehearsal] forecast/actual per phase")
    print(format_rows(table))
    print(f"[rehearsal] data {timings['data_s']:.0f}s, teacher {timings['teacher_s']:.0f}s, "
          f"estimate {timings['estimate_s']:.0f}s, search {timings['search_s']:.0f}s, "
          f"evaluation {timings['evaluation_s']:.0f}s "
          f"({evaluation.verdict.runs if evaluation.verdict else 0} runs)")  # fmt: skip
    utilisation = clock.phases()
    if utilisation:
        print("[rehearsal] GPU per phase (sampled every second)")
        for phase, row in utilisation.items():
            util = "-" if row["util_mean_pct"] is None else f"{row['util_mean_pct']:.0f} %"
            peak = "-" if row["mem_peak_mib"] is None else f"{row['mem_peak_mib']:.0f} MiB"
            print(f"  {phase:<16} {row['seconds']:>7.0f} s  utilisation {util:>6}  "
                  f"memory used at most {peak}")  # fmt: skip
    print("\n[rehearsal] peak memory per shared-stage task")
    for task, peaks in outcome.shared.peak_memory.items():
        print(f"  {task:<60} {_peak(peaks)}")
    print("[rehearsal] peak memory per trial")
    for row in trial_peaks:
        print(f"  {row['trial_id']:<12} {row['status'] or '-':<10} {_peak(row)}")
    print("[rehearsal] peak memory per evaluation run")
    for row in run_peaks:
        print(f"  {row['run']:<30} {_peak(row)}")
    print("[rehearsal] GPU memory at these shapes: augkd.method.memory's estimates "
          + ", ".join(f"{k} {v:.0f} MiB" for k, v in estimates.items())
          + f"; a trial's GPU peak taken as {trial_gpu:.0f} MiB"
          + (" (measured here)" if measured_trial else " (Module 3 on an H100 in bf16, "
             "benchmarks/results/gpu_throughput_h100.json)" if recorded else " (estimate)")
          + f", plus a CUDA context of about {CUDA_CONTEXT_MIB} MiB per process")  # fmt: skip
    print(f"[rehearsal] trials per GPU (the shipped space asks resources.gpu={gpu_share:g}: "
          f"{round(1 / gpu_share)} per GPU, shared-stage tasks too; clusters/aws.yaml: "
          f"g5.xlarge, one 24 GB A10G); a shared-stage task's GPU peak taken as "
          f"{stage_gpu:.0f} MiB")  # fmt: skip
    for row in per_gpu:
        print(f"  {row['card']:<26} {row['trials_fit']:>4} fit by memory; the space's "
              f"{row['space_asks']} fit: {'yes' if row['space_fits'] else 'NO'}")  # fmt: skip
    host_fit = int(G5_XLARGE_HOST_MIB * 0.9 // rss_trial) if rss_trial else 0
    print(f"[rehearsal] host memory: a trial's process peaks at {rss_trial:.0f} MiB RSS here; "
          f"a g5.xlarge's 16 GiB holds {host_fit} such processes (at 90 %)")  # fmt: skip

    result = {
        "device": args.device, "plan": plan.__dict__, "timings_s": timings,
        "forecast_actual": [{"phase": n, "forecast_s": f, "actual_s": a} for n, f, a in table],
        "forecast_text": format_forecast(forecast, None),
        "shared_peaks": outcome.shared.peak_memory, "trial_peaks": trial_peaks,
        "evaluation_peaks": run_peaks, "gpu_estimates_mib": estimates,
        "trial_gpu_mib": trial_gpu, "trials_per_gpu": per_gpu,
        "host_processes_per_g5_xlarge": host_fit, "trials": len(rows),
        "gpu_phases": utilisation,
        "statuses": {s: sum(r.get("status") == s for r in rows)
                     for s in {r.get("status") for r in rows}},
    }  # fmt: skip
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1, default=str) + "\n")
    print(f"[rehearsal] wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

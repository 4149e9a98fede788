"""How many trials per GPU, at which precision? Module-3 throughput of N concurrent trials.

For each N (trials sharing one GPU, each a separate process as Ray runs them, each capped at
1/N of the GPU's memory) and each precision (fp32, bf16, fp16), every trial runs Module-3
epochs of the release shapes (student mobilenet_v3_small, teacher resnet34, 32 px, batch 256,
mixup through G, E and AnchorNet) on synthetic in-memory data, after one warm-up epoch. It
prints and saves, side by side: Module-3 epochs per second in total and per trial, the GPU's
utilisation (sampled with NVML while the trials run) and each trial's peak memory.

    python benchmarks/gpu_throughput.py --quick          # about 3 minutes on an H100
    python benchmarks/gpu_throughput.py                  # longer epochs, steadier numbers
    python benchmarks/gpu_throughput.py --device cpu --trials 1,2 --precisions bf16 \\
        --images 32 --batch 16 --epochs 1 --student tiny_cnn --teacher small_cnn --image-size 16

Needs only torch and augkd's core (no Ray, MLflow or Optuna); NVML (nvidia-ml-py) or
nvidia-smi for the utilisation column.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import resource
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run from a checkout without installing it
    sys.path.insert(0, str(ROOT))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer images and epochs")
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    parser.add_argument("--trials", default="1,2,4,8", help="trials per GPU to try")
    parser.add_argument("--precisions", default="fp32,bf16,fp16")
    parser.add_argument("--images", type=int, help="training images per trial")
    parser.add_argument("--epochs", type=int, help="timed epochs per trial")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--latent", type=int, default=100)
    parser.add_argument("--classes", type=int, default=31)
    parser.add_argument("--student", default="mobilenet_v3_small")
    parser.add_argument("--teacher", default="resnet34")
    parser.add_argument("--out", default=str(ROOT / "benchmarks/results/gpu_throughput.json"))
    args = parser.parse_args(argv)
    args.images = args.images or (2048 if args.quick else 8192)
    args.epochs = args.epochs or (3 if args.quick else 8)
    return args


def _trial(args: argparse.Namespace, trials: int, rank: int, barrier, queue) -> None:
    """One trial's process: for each precision, warm up, start with the others, time epochs,
    and wait for the others before the next precision (so no warm-up overlaps a timing)."""
    import torch

    from augkd.hardware.precision import AutocastModule, MixedPrecision
    from augkd.hardware.runtime import Normalize, limit_gpu_memory
    from augkd.method.mixup import EpochSettings, MixupNets, train_epoch
    from augkd.models import AnchorNet, Encoder, Generator, build_classifier

    torch.set_num_threads(max(1, (os.cpu_count() or 1) // trials))
    device = torch.device(args.device)
    limit_gpu_memory(device, 1.0 / trials)
    torch.manual_seed(rank)
    teacher = build_classifier(args.teacher, args.classes).to(device).eval().requires_grad_(False)
    nets = MixupNets(
        Encoder(args.latent, args.image_size, args.classes).to(device).eval(),
        Generator(args.latent, args.image_size).to(device).eval(),
        AnchorNet(args.latent, args.classes).to(device).eval(),
    )
    for net in (nets.encoder, nets.generator, nets.anchor_net):
        net.requires_grad_(False)
    size = (args.images, 3, args.image_size, args.image_size)
    images = torch.randint(0, 256, size, dtype=torch.uint8, device=device)
    labels = torch.randint(0, args.classes, (args.images,), device=device)
    normalize = Normalize([0.5] * 3, [0.25] * 3).to(device)
    settings = EpochSettings(0.5, (0.5, 0.5), 10.0, True, args.batch)
    for precision in args.precisions.split(","):
        amp = MixedPrecision(precision, device)
        student = build_classifier(args.student, args.classes).to(device)
        optimizer = torch.optim.Adam(student.parameters(), lr=1e-3)
        rng = torch.Generator().manual_seed(rank)
        autocast_teacher = AutocastModule(teacher, amp)

        def epoch(student=student, optimizer=optimizer, rng=rng, amp=amp, t=autocast_teacher):
            loss = train_epoch(student, t, normalize, optimizer, images, labels, settings, rng,
                               nets, amp)  # fmt: skip
            float(loss)  # one sync per epoch, as a trial does

        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        epoch()  # warm-up: kernels chosen, allocator filled
        barrier.wait()
        start = time.perf_counter()
        for _ in range(args.epochs):
            epoch()
        seconds = time.perf_counter() - start
        if device.type == "cuda":
            peak = torch.cuda.max_memory_allocated(device) / 2**20
        else:
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        queue.put({"rank": rank, "epochs_per_s": args.epochs / seconds, "peak_mib": peak})
        barrier.wait()
        del student, optimizer


class _Utilisation:
    """The GPU's utilisation, sampled every 0.2 s while the timed epochs run."""

    def __init__(self, device: str) -> None:
        self.samples: list[float] = []
        self.stop = threading.Event()
        self.read = self._reader() if device == "cuda" else None
        self.thread = threading.Thread(target=self._sample, daemon=True)

    def _reader(self):
        try:
            import pynvml

            pynvml.nvmlInit()
            handle = pynvml.nvmlDeviceGetHandleByIndex(0)
            return lambda: float(pynvml.nvmlDeviceGetUtilizationRates(handle).gpu)
        except Exception:
            if shutil.which("nvidia-smi") is None:
                return None
            command = ["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits"]
            return lambda: float(subprocess.check_output(command, text=True).split()[0])

    def _sample(self) -> None:
        while not self.stop.wait(0.2):
            self.samples.append(self.read())

    def __enter__(self) -> _Utilisation:
        if self.read is not None:
            self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        if self.read is not None:
            self.thread.join()

    def mean(self) -> float | None:
        return sum(self.samples) / len(self.samples) if self.samples else None


WAIT_S = 1800.0
"""A trial process that died leaves the others waiting: give up after this long."""


def _result(queue, workers) -> dict:
    import queue as queues

    while True:
        try:
            return queue.get(timeout=5)
        except queues.Empty:
            failed = [w.exitcode for w in workers if w.exitcode not in (None, 0)]
            if failed:
                message = f"a trial process failed (exit code {failed[0]}); see above"
                raise RuntimeError(message) from None


def _watch(workers, barrier, stop: threading.Event) -> None:
    """Break the barrier as soon as a trial process dies, so nobody waits for it."""
    while not stop.wait(1.0):
        if any(w.exitcode not in (None, 0) for w in workers):
            barrier.abort()
            return


def measure(args: argparse.Namespace, trials: int) -> list[dict]:
    """One row per precision for ``trials`` processes sharing the GPU."""
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(trials + 1)
    queue = context.Queue()
    workers = [
        context.Process(target=_trial, args=(args, trials, rank, barrier, queue))
        for rank in range(trials)
    ]
    for worker in workers:
        worker.start()
    stop = threading.Event()
    watchdog = threading.Thread(target=_watch, args=(workers, barrier, stop), daemon=True)
    watchdog.start()
    rows = []
    try:
        for precision in args.precisions.split(","):
            barrier.wait(timeout=WAIT_S)
            with _Utilisation(args.device) as utilisation:
                results = [_result(queue, workers) for _ in workers]
            barrier.wait(timeout=WAIT_S)
            rates = [r["epochs_per_s"] for r in results]
            rows.append({
                "trials": trials,
                "precision": precision,
                "epochs_per_s_total": sum(rates),
                "epochs_per_s_per_trial": sum(rates) / trials,
                "gpu_utilisation_pct": utilisation.mean(),
                "peak_mib_per_trial": max(r["peak_mib"] for r in results),
            })  # fmt: skip
    except threading.BrokenBarrierError:
        for worker in workers:
            worker.terminate()
        codes = [w.exitcode for w in workers if w.exitcode not in (None, 0)]
        raise RuntimeError(f"a trial process failed (exit code {codes[:1]}); see above") from None
    finally:
        stop.set()
    for worker in workers:
        worker.join()
    return rows


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        print("error: no CUDA GPU here; pass --device cpu for a (tiny) CPU run", file=sys.stderr)
        return 2
    name = torch.cuda.get_device_name(0) if args.device == "cuda" else "cpu"
    print(f"{name}: {args.images} images of {args.image_size}px per trial, batch {args.batch}, "
          f"student {args.student}, teacher {args.teacher}, {args.epochs} timed epochs")  # fmt: skip
    rows = []
    header = f"{'trials':>6} {'precision':>9} {'epochs/s total':>15} {'per trial':>10} " \
             f"{'GPU util %':>10} {'peak MiB/trial':>15}"  # fmt: skip
    print(header)
    for trials in [int(t) for t in args.trials.split(",")]:
        try:
            measured = measure(args, trials)
        except RuntimeError as error:
            print(f"error: {trials} trials per GPU: {error}", file=sys.stderr)
            return 1
        for row in measured:
            rows.append(row)
            util = row["gpu_utilisation_pct"]
            print(f"{row['trials']:>6} {row['precision']:>9} {row['epochs_per_s_total']:>15.3f} "
                  f"{row['epochs_per_s_per_trial']:>10.3f} "
                  f"{'-' if util is None else f'{util:.0f}':>10} "
                  f"{row['peak_mib_per_trial']:>15.0f}", flush=True)  # fmt: skip
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    settings = {k: v for k, v in vars(args).items() if k != "out"}
    out.write_text(json.dumps({"device": name, "settings": settings, "rows": rows}, indent=2))
    print(f"written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

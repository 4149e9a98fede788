"""Speed goal: one Module-3 epoch costs at most 1.3x the pure compute of its networks.

    python benchmarks/module3_overhead.py [--repeats 5]

Both sides run in this process on the same batches: the real epoch (train_epoch:
shuffling, augmentation, mixing, loss, optimiser) against a loop that only runs the
same networks' forward and backward passes on pre-built batches. Prints the median
ratio; this machine is shared and noisy, so only the ratio is meaningful.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import torch

from augkd.basics.config import load_config
from augkd.data import iterate_batches, load_student_splits
from augkd.hardware.runtime import resolve_device
from augkd.method.losses import distillation_loss
from augkd.method.mixup import EpochSettings, mix_batch, train_epoch
from augkd.method.plans import METHOD_PLANS
from augkd.method.stage_runs import StageRuns
from augkd.method.stages import Inputs
from augkd.models import build_classifier
from augkd.storage.cache import StageCache
from augkd.trial.pipeline import prepare_stages
from augkd.trial.teacher import load_teacher


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    config = load_config()
    device = resolve_device(config.device)
    with tempfile.TemporaryDirectory() as cache_dir:
        cache = StageCache(cache_dir)
        teacher = load_teacher(config, device, cache)
        splits = load_student_splits(config.data, config.seed, device)
        inputs = Inputs(teacher, splits, device, config.data.image_size)
        runs = StageRuns(cache, config.seed, config.stage_checkpoint_minutes * 60, lambda _l: None)
        stages = prepare_stages(config, METHOD_PLANS["augkd"], inputs, runs)
    student = build_classifier(config.student.arch, 10).to(device)
    optimizer = torch.optim.Adam(student.parameters(), lr=config.module3.lr)
    u = config.module3.ce_share
    settings = EpochSettings(0.5, (u, u), config.module3.kd_temperature,
                             config.data.augment, config.module3.batch_size)  # fmt: skip
    nets = stages.mixup_nets
    # Pre-built batches: exactly what one epoch feeds the networks.
    rng = torch.Generator().manual_seed(0)
    batches = list(iterate_batches(splits.train_x, splits.train_y, settings.batch_size, rng, True))

    def pure_compute() -> None:
        for images, labels in batches:
            with torch.no_grad():
                mixed = mix_batch(nets, images, labels, settings.share)
                inputs = teacher.normalize(torch.cat([images, mixed]))
                teacher_logits = teacher.model(inputs)
            loss = distillation_loss(student(inputs), teacher_logits, torch.cat([labels, labels]),
                                     u, settings.kd_temperature)  # fmt: skip
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

    def real_epoch() -> None:
        loss = train_epoch(student, teacher.model, teacher.normalize, optimizer, splits.train_x,
                           splits.train_y, settings, rng, nets)  # fmt: skip
        float(loss)

    def timed(fn) -> float:
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - start

    real_epoch(), pure_compute()  # warm-up
    ratios = []
    for _ in range(args.repeats):
        pure = timed(pure_compute)
        real = timed(real_epoch)
        ratios.append(real / pure)
    print(f"device {device}; {len(batches)} batches of {settings.batch_size}; "
          f"ratios {[round(r, 3) for r in ratios]}")  # fmt: skip
    print(f"module-3 epoch / pure compute: median {statistics.median(ratios):.3f} (goal <= 1.3)")


if __name__ == "__main__":
    main()

"""Speed goal: one Module-1 iteration costs at most 1.3x the pure compute of its networks.

    python benchmarks/module1_overhead.py [--repeats 9] [--set module1.student_steps=2 ...]

Both sides run in this process, alternating, on the same shapes: the real iteration
(`datafree.train_iteration`: one generator step, then k student/encoder steps, with the
BatchNorm-statistics hooks, the losses and the optimisers) against a loop that only runs the
same networks' forward and backward passes (G, T, S in the generator step; G, T forwards
and S, E forward/backward in each student/encoder step) on pre-drawn latent batches. It also
prints the seconds of one iteration, so two settings can be compared in one run:
`--compare KEY=VALUE` (a Module-1 setting) or `--layouts` (the networks in the default
contiguous layout against channels-last, augkd/models/layout.py). This machine is shared and noisy: only ratios measured side by
side mean anything.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from augkd.basics.config import Config, parse_override, with_overrides
from augkd.hardware.runtime import Normalize, configure_torch, resolve_device
from augkd.method.datafree import DatafreeNets, build_datafree_nets, train_iteration
from augkd.method.losses import BatchNormStatistics
from augkd.models import build_classifier
from augkd.search.prepare.space_file import load_space


def _config(space: str, overrides: list[str]) -> Config:
    """The space's base config (its data, image size and Module-1 settings) plus overrides."""
    base = load_space(space).base_config_object()
    return with_overrides(base, dict(parse_override(text) for text in overrides))


def _nets(
    config, device, layout=torch.channels_last
) -> tuple[DatafreeNets, BatchNormStatistics, Normalize]:
    torch.manual_seed(0)
    teacher = build_classifier(config.teacher.arch, 10).to(device).eval()
    teacher.requires_grad_(False)
    student = build_classifier(config.student.arch, 10).to(device)
    nets = build_datafree_nets(teacher, student, 10, config.data.image_size, config.module1, device)
    normalize = Normalize([0.5] * 3, [0.5] * 3).to(device)
    for net in (nets.generator, nets.encoder, nets.student, teacher):
        net.to(memory_format=layout)
    return nets, BatchNormStatistics(teacher), normalize


def pure_compute(nets: DatafreeNets, normalize: Normalize, config, zs) -> None:
    """Forward and backward passes only: what the iteration cannot do without."""
    generator, teacher, student, encoder = nets.generator, nets.teacher, nets.student, nets.encoder
    images = normalize(generator(zs[0]))
    (teacher(images).sum() + student(images).sum()).backward()
    for z in zs[1:]:
        with torch.no_grad():
            raw = generator(z)
            labels = teacher(normalize(raw)).argmax(dim=1)
        mu, _ = encoder(raw, labels)
        (student(normalize(raw)).sum() + mu.sum()).backward()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--space", default="fonts", help="the space whose base config is used")
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument(
        "--compare", action="append", default=[], metavar="KEY=VALUE",
        help="also time an iteration with these settings, alternating with the base",
    )  # fmt: skip
    parser.add_argument(
        "--layouts", action="store_true",
        help="compare the networks in contiguous (NCHW) layout against channels-last",
    )  # fmt: skip
    args = parser.parse_args()
    base = _config(args.space, args.overrides)
    configure_torch(base.threads)
    device = resolve_device(base.device)
    variants = {"base": (base, torch.channels_last)}
    if args.compare:
        variants["compare"] = (
            _config(args.space, [*args.overrides, *args.compare]),
            torch.channels_last,
        )
    if args.layouts:
        variants["compare"] = (base, torch.contiguous_format)
    prepared = {
        name: (config, *_nets(config, device, layout))
        for name, (config, layout) in variants.items()
    }

    def latent_batches(config) -> list[torch.Tensor]:
        m1 = config.module1
        return [
            torch.randn(m1.batch_size, m1.latent_size, device=device)
            for _ in range(1 + m1.student_steps)
        ]

    def timed(fn) -> float:
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - start

    ratios, seconds = [], {name: [] for name in prepared}
    for config, nets, bn_stats, normalize in prepared.values():  # warm-up
        train_iteration(nets, normalize, bn_stats, config.module1)
        pure_compute(nets, normalize, config, latent_batches(config))
    for _ in range(args.repeats):
        for name, (config, nets, bn_stats, normalize) in prepared.items():
            zs = latent_batches(config)
            real = timed(lambda: train_iteration(nets, normalize, bn_stats, config.module1))  # noqa: B023
            seconds[name].append(real)
            if name == "base":
                pure = timed(lambda: pure_compute(nets, normalize, config, zs))  # noqa: B023
                ratios.append(real / pure)
    m1 = base.module1
    print(f"device {device}, threads {torch.get_num_threads()}; batch {m1.batch_size}, "
          f"k {m1.student_steps}, image {base.data.image_size}, G width {m1.generator_width}")  # fmt: skip
    print(f"ratios {[round(r, 3) for r in ratios]}")
    print(
        f"module-1 iteration / pure compute: median {statistics.median(ratios):.3f} (goal <= 1.3)"
    )
    for name, values in seconds.items():
        print(f"{name}: median {statistics.median(values) * 1000:.1f} ms per iteration")
    if "compare" in seconds:
        ratio = statistics.median(
            [c / b for b, c in zip(seconds["base"], seconds["compare"], strict=True)]
        )
        what = "contiguous layout" if args.layouts else " ".join(args.compare)
        print(f"compare / base seconds per iteration: median {ratio:.3f} ({what})")


if __name__ == "__main__":
    main()

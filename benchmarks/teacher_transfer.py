"""How badly the built-in teacher transfers to each student domain of the digits benchmark.

    python benchmarks/teacher_transfer.py [--set data.image_size=16]

Prints the teacher's held-out in-domain Acc@1 and its Acc@1 on every whole student domain
(the numbers in the README's "The built-in benchmark").
"""

from __future__ import annotations

import argparse

from augkd.config import load_config
from augkd.data.digits import SHIFTS, load_digits_domain
from augkd.metrics import evaluate
from augkd.runtime import resolve_device
from augkd.teacher import load_teacher


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    config = load_config(None, parser.parse_args().overrides)
    device = resolve_device(config.device)
    teacher = load_teacher(config, device)
    print(
        f"teacher {config.teacher.arch}: held-out clean Acc@1 {teacher.metadata['held_out_acc1']:.1f}"
    )
    print("| student domain | teacher Acc@1 |\n|---|---|")
    for domain in SHIFTS:
        data = load_digits_domain(domain, config.data.image_size)
        images = data.images.to(device).float() / 255
        accuracy = evaluate(teacher.model, images, data.labels.to(device), teacher.normalize)
        print(f"| {domain} | {accuracy['acc1']:.1f} |")


if __name__ == "__main__":
    main()

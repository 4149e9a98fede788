"""How well the built-in teachers transfer to their student domains, and the sizes.

    python benchmarks/teacher_transfer.py [--benchmark digits|fonts|forms|all] [--per-class]
        [--set data.image_size=16]

Each benchmark runs on its search space's base config (search_spaces/<name>.yaml: data
and split, so the teacher is the one its trials load) plus --set. Prints each teacher's
held-out in-domain Acc@1 and its Acc@1 on every whole student domain (digits: clean ->
each shift; fonts: printed -> handwritten; forms: handwritten -> typed), with the number
of images of each domain and the student's train/val/test split at seed 0; the numbers in
docs/benchmarks.md ("Built-in regimes"). --per-class adds the teacher's Acc@1 on each
class of the student domain.
"""

from __future__ import annotations

import argparse

import torch

from augkd.basics.config import parse_override, with_overrides
from augkd.data import load_domain, load_student_splits
from augkd.data.digits import SHIFTS
from augkd.data.types import LabelledImages
from augkd.hardware.runtime import resolve_device
from augkd.models.metrics import evaluate, predict_logits
from augkd.models.teacher import Teacher
from augkd.search.prepare.space_file import PACKAGED_SPACES, load_space
from augkd.trial.teacher import load_teacher, teacher_split

BENCHMARKS: dict[str, list[str] | None] = {
    "digits": list(SHIFTS),
    "fonts": None,
    "forms": None,
    "tablet": None,
}
"""Benchmark -> the student domains to measure (None: its space's student domain)."""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--benchmark", choices=[*BENCHMARKS, "all"], default="all")
    parser.add_argument("--per-class", action="store_true")
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    args = parser.parse_args()
    overrides = dict(parse_override(text) for text in args.overrides)
    print(
        "| benchmark | teacher domain (images, held-out Acc@1 on n) | student domain (images) "
        "| teacher Acc@1 on the student domain | student train / val / test |"
    )
    print("|---|---|---|---|---|")
    for name in BENCHMARKS if args.benchmark == "all" else [args.benchmark]:
        base = load_space(PACKAGED_SPACES / f"{name}.yaml").base_config_object()
        config = with_overrides(base, overrides)
        device = resolve_device(config.device)
        teacher = load_teacher(config, device)
        held_out = teacher.metadata["held_out_acc1"]
        teacher_images = sum(len(load_domain(config.data, d)) for d in config.data.teacher_domains)
        held_out_images = len(teacher_split(teacher_images)["test"])
        for domain in BENCHMARKS[name] or [config.data.student_domain]:
            data_config = config.data.model_copy(update={"student_domain": domain})
            data = load_domain(data_config, domain)
            images = data.images.to(device).float() / 255
            accuracy = evaluate(teacher.model, images, data.labels.to(device), teacher.normalize)
            splits = load_student_splits(data_config, seed=0, device=torch.device("cpu"))
            sizes = " / ".join(str(len(y)) for y in (splits.train_y, splits.val_y, splits.test_y))
            print(
                f"| {name} | {'+'.join(config.data.teacher_domains)} ({teacher_images}, "
                f"{held_out:.1f} on {held_out_images}) | {domain} ({len(data)}) "
                f"| {accuracy['acc1']:.1f} | {sizes} |",
                flush=True,
            )
            if args.per_class:
                print(f"  per class: {per_class_accuracy(teacher, images, data)}", flush=True)


def per_class_accuracy(teacher: Teacher, images: torch.Tensor, data: LabelledImages) -> str:
    """The teacher's Acc@1 on each class, as 'name acc' pairs."""
    predicted = predict_logits(teacher.model, images, teacher.normalize).argmax(1).cpu()
    parts = []
    for c, name in enumerate(data.class_names):
        rows = data.labels == c
        parts.append(f"{name} {100.0 * (predicted[rows] == c).float().mean().item():.1f}")
    return ", ".join(parts)


if __name__ == "__main__":
    main()

"""How well the built-in teachers transfer to their student domains.

    python benchmarks/teacher_transfer.py [--benchmark digits|fonts|both] [--set data.image_size=16]

Prints each teacher's held-out in-domain Acc@1 and its Acc@1 on every whole student
domain: the digits benchmark (clean -> each shift) and the fonts benchmark (printed ->
handwritten); the numbers in the README's "The built-in benchmarks".
"""

from __future__ import annotations

import argparse

from augkd.config import load_config, with_overrides
from augkd.data import load_domain
from augkd.data.digits import SHIFTS
from augkd.data.fonts import STUDENT_DOMAIN, TEACHER_DOMAIN
from augkd.metrics import evaluate
from augkd.runtime import resolve_device
from augkd.teacher import load_teacher

BENCHMARKS = {
    "digits": ({"data.source": "digits", "data.teacher_domains": ["clean"]}, list(SHIFTS)),
    "fonts": (
        {
            "data.source": "fonts",
            "data.teacher_domains": [TEACHER_DOMAIN],
            "data.student_domain": STUDENT_DOMAIN,
        },
        [STUDENT_DOMAIN],
    ),
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--benchmark", choices=[*BENCHMARKS, "both"], default="both")
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    args = parser.parse_args()
    base = load_config(None, args.overrides)
    device = resolve_device(base.device)
    print("| benchmark | teacher domain (held-out Acc@1) | student domain | teacher Acc@1 |")
    print("|---|---|---|---|")
    for name in BENCHMARKS if args.benchmark == "both" else [args.benchmark]:
        data_keys, student_domains = BENCHMARKS[name]
        config = with_overrides(base, data_keys)
        teacher = load_teacher(config, device)
        held_out = teacher.metadata["held_out_acc1"]
        for domain in student_domains:
            data = load_domain(config.data, domain)
            images = data.images.to(device).float() / 255
            accuracy = evaluate(teacher.model, images, data.labels.to(device), teacher.normalize)
            print(
                f"| {name} | {config.data.teacher_domains[0]} ({held_out:.1f}) | {domain} "
                f"({len(data)} images) | {accuracy['acc1']:.1f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()

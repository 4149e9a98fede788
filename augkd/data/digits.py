"""The built-in OOD benchmark: scikit-learn's bundled UCI digits, no download.

The 1,797 8x8 digits are split once, with a fixed seed, into two disjoint halves.
The teacher domain is the first half, clean (white strokes on black, grey).
Each student domain is the second half under one named, deterministic shift.
Measured teacher accuracies are in docs/benchmarks.md ("Built-in regimes").
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

from augkd.basics.errors import ConfigError
from augkd.data.types import LabelledImages

PARTITION_SEED = 1234
"""Fixed: the teacher/student partition never depends on a trial's seed."""

ShiftFn = Callable[[torch.Tensor, torch.Generator], torch.Tensor]


def _rotate(images: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Rotation by 20-40 degrees either way: strokes keep their look, geometry moves."""
    n = images.shape[0]
    sign = torch.where(torch.rand(n, generator=gen) < 0.5, -1.0, 1.0)
    angle = sign * (20 + 20 * torch.rand(n, generator=gen)) * math.pi / 180
    cos, sin = torch.cos(angle), torch.sin(angle)
    theta = torch.stack(
        [torch.stack([cos, -sin, torch.zeros(n)], 1), torch.stack([sin, cos, torch.zeros(n)], 1)],
        1,
    )
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, align_corners=False, padding_mode="zeros")


def _colour(images: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Random dark background and brighter foreground colours per image."""
    n = images.shape[0]
    background = torch.rand(n, 3, 1, 1, generator=gen) * 0.5
    foreground = (background + 0.5 + 0.5 * torch.rand(n, 3, 1, 1, generator=gen)).clamp(max=1)
    return background + images * (foreground - background)


def _invert(images: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Dark strokes on a light background."""
    return 1.0 - images


def _noise(images: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Low contrast, a raised background and strong Gaussian noise."""
    level = 0.1 + 0.1 * torch.rand(images.shape[0], 1, 1, 1, generator=gen)
    noisy = level + 0.6 * images + 0.15 * torch.randn(images.shape, generator=gen)
    return noisy.clamp(0, 1)


SHIFTS: dict[str, ShiftFn] = {
    "rotate": _rotate,
    "colour": _colour,
    "invert": _invert,
    "noise": _noise,
}
TEACHER_DOMAIN = "clean"


DIGITS_FILE = ("datasets", "data", "digits.csv.gz")
"""Where in scikit-learn's package the digits lie: one row per digit, 64 pixels (0-16) and
its label."""


def load_raw() -> tuple[torch.Tensor, torch.Tensor]:
    """All 1,797 digits as float [N, 8, 8] in [0, 1] and their labels. Read from the file
    scikit-learn ships, as its load_digits does, without importing scikit-learn: that import
    costs every process that loads the domain (each trial's worker) a second."""
    import gzip
    import importlib.util

    import numpy as np

    spec = importlib.util.find_spec("sklearn")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError("The digits domains need scikit-learn: pip install scikit-learn.")
    path = Path(spec.submodule_search_locations[0]).joinpath(*DIGITS_FILE)
    with gzip.open(path, "rt") as rows:
        table = np.loadtxt(rows, delimiter=",")
    images = torch.tensor(table[:, :-1].reshape(-1, 8, 8), dtype=torch.float32) / 16.0
    return images, torch.tensor(table[:, -1].astype(np.int64))


def _partition(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    order = torch.randperm(n, generator=torch.Generator().manual_seed(PARTITION_SEED))
    return order[: n // 2], order[n // 2 :]


def load_digits_domain(domain: str, image_size: int) -> LabelledImages:
    """One domain of the benchmark, as uint8 RGB at ``image_size``."""
    if domain != TEACHER_DOMAIN and domain not in SHIFTS:
        known = ", ".join([TEACHER_DOMAIN, *SHIFTS])
        raise ConfigError(f"Unknown digits domain '{domain}'; choose one of: {known}.")
    images, labels = load_raw()
    teacher_idx, student_idx = _partition(len(labels))
    chosen = teacher_idx if domain == TEACHER_DOMAIN else student_idx
    grey = images[chosen].unsqueeze(1)
    rgb = F.interpolate(grey, size=(image_size, image_size), mode="bilinear", align_corners=False)
    rgb = rgb.clamp(0, 1).expand(-1, 3, -1, -1).contiguous()
    if domain in SHIFTS:
        generator = torch.Generator().manual_seed(PARTITION_SEED + sorted(SHIFTS).index(domain))
        rgb = SHIFTS[domain](rgb, generator)
    as_bytes = (rgb.clamp(0, 1) * 255).round().to(torch.uint8)
    return LabelledImages(as_bytes, labels[chosen].clone(), [str(c) for c in range(10)])

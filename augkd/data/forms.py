"""The forms benchmark: handwritten -> typed digits through one scanner, no download.

Teacher domain ``handwritten``: all 1,797 scikit-learn digits, UCI's optdigits (NIST's
form preprocessing: a size-normalised 32x32 bilevel bitmap per digit, counted in 4x4
blocks into 8x8 values 0-16). Student domain ``typed``: the digits 0-9 printed in the
fonts benchmark's typefaces, each scanned with its own seeded settings and passed through
the same acquisition. The teacher (a handwriting reader) is mostly right on typed digits;
design and measurements in docs/benchmarks.md ("Built-in regimes").
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from augkd.basics.errors import ConfigError
from augkd.data import fonts
from augkd.data.fonts import font_files, render_digit, upsampled_8x8
from augkd.data.types import LabelledImages

TEACHER_DOMAIN = "handwritten"
STUDENT_DOMAIN = "typed"
SCAN_SEED = 2025
"""Fixed: the typed domain never depends on a trial's seed."""
TYPED_PER_CLASS = 300
BITMAP = 32
"""UCI's size-normalised bitmap is 32x32, counted in BLOCK x BLOCK blocks."""
BLOCK = 4
SCAN_WINDOW = 64
"""Pixels of the scan around one digit: room for the tallest glyph (48 px) skewed by 5 deg."""
SCAN_HEIGHT = (20.0, 48.0)
"""Glyph height on the scan in pixels: point size x resolution (about 10-14 pt at 200-300 dpi)."""
SKEW = 5.0
"""A sheet fed slightly crooked: rotation of up to this many degrees either way."""
INK_WEIGHTS = 5
"""Extra stroke width 0-4 px at the fonts benchmark's glyph size: regular to heavy print."""
THRESHOLD = (0.35, 0.65)
"""The scanner's binarisation threshold on anti-aliased ink in [0, 1]."""


def scan_typed_digit(
    digit: int, font: Path, scan_height: float, skew: float, weight: int, threshold: float
) -> np.ndarray:
    """One typed digit as UCI's acquisition records it: int64 counts [8, 8] in 0-16."""
    grey = render_digit(
        digit, font, SCAN_WINDOW, height=scan_height / SCAN_WINDOW, rotation=skew, slant=0.0,
        stroke=weight, offset=(0.0, 0.0), brightness=1.0,
    )  # fmt: skip
    return count_blocks(normalise_bitmap(grey >= threshold))


def normalise_bitmap(ink: np.ndarray) -> np.ndarray:
    """Cropped to its ink, scaled to BITMAP rows keeping its aspect (at most BITMAP wide) and
    centred: bool [BITMAP, BITMAP]. UCI's digits fill all 8 rows and keep a plain 1 thin."""
    rows, cols = np.flatnonzero(ink.any(1)), np.flatnonzero(ink.any(0))
    if len(rows) == 0:
        raise ValueError("a scanned digit has no ink above the threshold")
    glyph = ink[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    width = min(BITMAP, max(1, round(glyph.shape[1] * BITMAP / glyph.shape[0])))
    scaled = Image.fromarray(glyph.astype(np.uint8) * 255).resize(
        (width, BITMAP), Image.Resampling.BILINEAR
    )
    bitmap = np.zeros((BITMAP, BITMAP), dtype=bool)
    left = (BITMAP - width) // 2
    bitmap[:, left : left + width] = np.asarray(scaled) >= 128
    return bitmap


def count_blocks(bitmap: np.ndarray) -> np.ndarray:
    """On-pixels per BLOCK x BLOCK block: [32, 32] bool -> [8, 8] counts in 0-16."""
    side = bitmap.shape[0] // BLOCK
    return bitmap.reshape(side, BLOCK, side, BLOCK).sum(axis=(1, 3)).astype(np.int64)


@functools.lru_cache(maxsize=1)
def _typed_counts() -> tuple[torch.Tensor, torch.Tensor]:
    """The 8x8 counts of every typed digit and their labels, scanned once per process."""
    fonts = font_files()
    rng = np.random.default_rng(SCAN_SEED)
    counts, labels = [], []
    for digit in range(10):
        for i in range(TYPED_PER_CLASS):
            counts.append(
                scan_typed_digit(
                    digit,
                    fonts[(i + digit) % len(fonts)],
                    scan_height=rng.uniform(*SCAN_HEIGHT),
                    skew=rng.uniform(-SKEW, SKEW),
                    weight=int(rng.integers(0, INK_WEIGHTS)),
                    threshold=rng.uniform(*THRESHOLD),
                )
            )
            labels.append(digit)
    return torch.from_numpy(np.stack(counts)), torch.tensor(labels, dtype=torch.int64)


def load_forms_domain(domain: str, image_size: int) -> LabelledImages:
    """``handwritten`` (the teacher's) or ``typed`` (the student's), uint8 RGB."""
    if domain == TEACHER_DOMAIN:  # exactly the fonts benchmark's student domain
        return fonts.load_fonts_domain(fonts.STUDENT_DOMAIN, image_size)
    if domain == STUDENT_DOMAIN:
        counts, labels = _typed_counts()
        return upsampled_8x8(counts.float() / (BLOCK * BLOCK), labels.clone(), image_size)
    raise ConfigError(
        f"Unknown forms domain '{domain}'; set data.teacher_domains=[{TEACHER_DOMAIN}] and "
        f"data.student_domain={STUDENT_DOMAIN}."
    )

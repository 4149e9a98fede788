"""The tablet benchmark: a digit reader of scanned forms meets digits written on a tablet.

Teacher domains (the reader was trained on both kinds of field of a scanned form):
``printed``, the fonts benchmark's rendered digits, and ``handwritten``, scikit-learn's
UCI digits. Student domain ``pen``: digits written with a stylus, one pen trajectory per
image drawn from a stroke model of how people write each digit (several allographs per
digit: a 1 with or without its flag, a 7 with or without its bar, an open or closed 4 ...),
each with its own seeded slant, rotation, width, size, position, pen width and pressure,
rendered as a tablet draws ink. No image of one domain is a transform of an image of the
other: the student's digits are pen paths, not glyph outlines or scans. No download.

Design and measurements: docs/benchmarks.md ("Built-in regimes", ``tablet``). This regime
judges the search; no default of the schema was chosen on it.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch
from PIL import Image, ImageDraw

from augkd.basics.errors import ConfigError
from augkd.data import fonts
from augkd.data.types import LabelledImages

TEACHER_DOMAINS = ("printed", "handwritten")
STUDENT_DOMAIN = "pen"
WRITING_SEED = 2026
"""Fixed: the pen domain never depends on a trial's seed."""
PEN_PER_CLASS = 400
SUPERSAMPLE = 4
POINT_JITTER = 0.05
"""Per control point, in units of the digit's box: a hand never hits the same spot twice."""
WARP = 0.12
"""Amplitude of a smooth random warp of the whole digit (its box units)."""

Stroke = list[tuple[float, float]]


def _arc(cx: float, cy: float, rx: float, ry: float, start: float, end: float, n: int) -> Stroke:
    """Points on an ellipse from angle ``start`` to ``end`` (degrees; 0 right, 90 up)."""
    angles = np.radians(np.linspace(start, end, n))
    return [(cx + rx * math.cos(a), cy - ry * math.sin(a)) for a in angles]


ALLOGRAPHS: dict[int, list[list[Stroke]]] = {
    0: [
        [_arc(0.5, 0.5, 0.32, 0.46, 100, 460, 16)],
        [_arc(0.5, 0.5, 0.26, 0.46, 80, 430, 16)],
    ],
    1: [
        [[(0.55, 0.04), (0.5, 0.5), (0.45, 0.96)]],
        [[(0.3, 0.25), (0.58, 0.04)], [(0.58, 0.04), (0.52, 0.5), (0.5, 0.96)]],
        [[(0.3, 0.22), (0.55, 0.04), (0.52, 0.5), (0.5, 0.95)], [(0.28, 0.96), (0.74, 0.96)]],
    ],
    2: [
        [[*_arc(0.5, 0.3, 0.3, 0.26, 160, -20, 8), (0.55, 0.62), (0.18, 0.96), (0.85, 0.95)]],
        [
            [
                *_arc(0.5, 0.3, 0.3, 0.26, 170, -10, 8),
                (0.4, 0.75),
                (0.2, 0.93),
                (0.2, 0.8),
                (0.35, 0.85),
                (0.55, 0.95),
                (0.85, 0.92),
            ]
        ],
    ],
    3: [
        [[*_arc(0.45, 0.27, 0.28, 0.23, 150, -90, 9), *_arc(0.45, 0.73, 0.32, 0.23, 90, -150, 9)]],
        [[(0.2, 0.05), (0.8, 0.05), (0.45, 0.42), *_arc(0.45, 0.7, 0.33, 0.26, 90, -150, 9)]],
    ],
    4: [
        [[(0.55, 0.04), (0.15, 0.65), (0.85, 0.65)], [(0.65, 0.3), (0.63, 0.96)]],
        [[(0.2, 0.04), (0.15, 0.55), (0.85, 0.55)], [(0.7, 0.05), (0.68, 0.96)]],
    ],
    5: [
        [
            [(0.25, 0.05), (0.22, 0.45), *_arc(0.48, 0.68, 0.32, 0.27, 130, -150, 10)],
            [(0.25, 0.05), (0.8, 0.05)],
        ],
        [[(0.8, 0.05), (0.28, 0.05), (0.24, 0.45), *_arc(0.48, 0.68, 0.32, 0.27, 130, -150, 10)]],
    ],
    6: [
        [[(0.7, 0.04), (0.4, 0.3), (0.22, 0.62), *_arc(0.5, 0.72, 0.28, 0.24, 180, 540, 14)]],
        [[(0.65, 0.04), (0.3, 0.4), *_arc(0.5, 0.72, 0.27, 0.24, 190, 530, 14)]],
    ],
    7: [
        [[(0.15, 0.06), (0.85, 0.06), (0.45, 0.96)]],
        [[(0.15, 0.06), (0.85, 0.06), (0.45, 0.96)], [(0.35, 0.5), (0.8, 0.5)]],
        [[(0.15, 0.2), (0.2, 0.06), (0.85, 0.06), (0.55, 0.5), (0.4, 0.96)]],
    ],
    8: [
        [
            [
                (0.7, 0.15),
                *_arc(0.5, 0.26, 0.22, 0.22, 30, 200, 6),
                (0.5, 0.5),
                *_arc(0.5, 0.73, 0.27, 0.23, 90, -270, 12),
                (0.5, 0.5),
                (0.72, 0.3),
                (0.7, 0.15),
            ]
        ],
        [_arc(0.5, 0.26, 0.22, 0.22, 270, 630, 12), _arc(0.5, 0.73, 0.28, 0.24, 90, 450, 12)],
    ],
    9: [
        [[*_arc(0.5, 0.3, 0.27, 0.25, 10, 370, 13), (0.76, 0.4), (0.72, 0.96)]],
        [[*_arc(0.48, 0.3, 0.27, 0.25, 0, 360, 13), (0.74, 0.5), (0.6, 0.85), (0.35, 0.95)]],
    ],
}
"""How people write each digit: strokes of control points in the digit's unit box (x to the
right, y down), the pen path smoothed through them."""


def smooth_path(points: np.ndarray, per_segment: int = 8) -> np.ndarray:
    """A Catmull-Rom spline through ``points`` [K, 2] (a straight line for two)."""
    if len(points) < 3:
        t = np.linspace(0.0, 1.0, 2 * per_segment)[:, None]
        return points[0] + t * (points[-1] - points[0])
    padded = np.vstack([2 * points[0] - points[1], points, 2 * points[-1] - points[-2]])
    t = np.linspace(0.0, 1.0, per_segment, endpoint=False)[:, None]
    out = []
    for i in range(1, len(padded) - 2):
        p0, p1, p2, p3 = padded[i - 1 : i + 3]
        out.append(
            0.5
            * (
                2 * p1
                + (p2 - p0) * t
                + (2 * p0 - 5 * p1 + 4 * p2 - p3) * t**2
                + (3 * p1 - p0 - 3 * p2 + p3) * t**3
            )
        )
    out.append(points[-1:])
    return np.vstack(out)


def write_digit(digit: int, rng: np.random.Generator, image_size: int) -> np.ndarray:
    """One digit written with a stylus: float [image_size, image_size] in [0, 1], white ink
    on black, as a tablet renders a pen path (anti-aliased at SUPERSAMPLE x)."""
    choices = ALLOGRAPHS[digit]
    strokes = choices[int(rng.integers(len(choices)))]
    slant = rng.uniform(-0.2, 0.6)  # the top leans right for slant > 0
    rotation = math.radians(rng.uniform(-15.0, 15.0))
    width = rng.uniform(0.4, 1.2)
    height = rng.uniform(0.55, 0.95)
    offset = rng.uniform(-0.1, 0.1, 2)
    pen = rng.uniform(0.05, 0.2)
    ink = rng.uniform(0.75, 1.0)
    warp_phase = rng.uniform(0.0, 2 * math.pi, 4)
    warp_size = rng.uniform(-WARP, WARP, 2)
    big = image_size * SUPERSAMPLE
    canvas = Image.new("L", (big, big))
    draw = ImageDraw.Draw(canvas)
    cos, sin = math.cos(rotation), math.sin(rotation)
    for stroke in strokes:
        controls = np.asarray(stroke) + rng.normal(0.0, POINT_JITTER, (len(stroke), 2))
        path = smooth_path(controls)
        x, y = path[:, 0], path[:, 1]
        # A smooth warp of the whole digit: loops squashed, strokes bent, never torn.
        x = x + warp_size[0] * np.sin(math.pi * y + warp_phase[0]) * np.cos(warp_phase[1])
        y = y + warp_size[1] * np.sin(math.pi * x + warp_phase[2]) * np.cos(warp_phase[3])
        x, y = (x - 0.5) * width + slant * (0.5 - y), y - 0.5
        px = (0.5 + offset[0] + (cos * x - sin * y) * height) * big
        py = (0.5 + offset[1] + (sin * x + cos * y) * height) * big
        turns = rng.uniform(1.0, 3.0)
        phase = rng.uniform(0.0, 2 * math.pi)
        pressure = 1 + 0.25 * np.sin(np.linspace(0.0, math.pi * turns, len(px)) + phase)
        radius = pen * big / 2 * pressure
        for i in range(len(px)):
            r = radius[i]
            draw.ellipse((px[i] - r, py[i] - r, px[i] + r, py[i] + r), fill=255)
            if i + 1 < len(px):
                line = (px[i], py[i], px[i + 1], py[i + 1])
                draw.line(line, fill=255, width=max(1, round(2 * r)))
    small = canvas.resize((image_size, image_size), Image.Resampling.BOX)
    return np.asarray(small, dtype=np.float32) / 255.0 * ink


@functools.lru_cache(maxsize=4)
def _pen(image_size: int) -> LabelledImages:
    """Written once per process and size."""
    rng = np.random.default_rng(WRITING_SEED)
    images, labels = [], []
    for digit in range(10):
        for _ in range(PEN_PER_CLASS):
            images.append(write_digit(digit, rng, image_size))
            labels.append(digit)
    grey = torch.from_numpy(np.stack(images)).unsqueeze(1)
    return fonts.as_domain(grey, torch.tensor(labels, dtype=torch.int64))


def load_tablet_domain(domain: str, image_size: int) -> LabelledImages:
    """``printed`` or ``handwritten`` (the teacher's) or ``pen`` (the student's), uint8 RGB."""
    if domain == "printed":
        return fonts.load_fonts_domain(fonts.TEACHER_DOMAIN, image_size)
    if domain == "handwritten":
        return fonts.load_fonts_domain(fonts.STUDENT_DOMAIN, image_size)
    if domain == STUDENT_DOMAIN:
        written = _pen(image_size)
        return LabelledImages(written.images.clone(), written.labels.clone(), written.class_names)
    raise ConfigError(
        f"Unknown tablet domain '{domain}'; set data.teacher_domains=[printed, handwritten] and "
        f"data.student_domain={STUDENT_DOMAIN}."
    )

"""The fonts benchmark: printed digits -> handwritten digits, no download.

Teacher domain ``printed``: the digits 0-9 rendered from every font file matplotlib
ships (mpl-data/fonts/ttf) whose character map draws all ten digits as digits, in
sorted file order, each image with its own seeded size, rotation, slant, stroke width,
position and brightness. Student domain ``handwritten``: all 1,797 scikit-learn digits
(8x8, upsampled like the digits benchmark). The two share no image: one is rendered
type, the other scanned handwriting.
"""

from __future__ import annotations

import functools
import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from augkd.basics.errors import ConfigError
from augkd.data.types import LabelledImages

TEACHER_DOMAIN = "printed"
STUDENT_DOMAIN = "handwritten"
RENDER_SEED = 2024
"""Fixed: the rendered domain never depends on a trial's seed."""
RENDERS_PER_CLASS = 400
DIGIT_NAMES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
GLYPH_SIZE = 96
"""Font size of the first rendering, before the glyph is cropped and scaled."""
SUPERSAMPLE = 4
"""Each image is drawn at 4x its size and area-averaged down (anti-aliasing)."""


def font_files() -> list[Path]:
    """matplotlib's bundled fonts whose character map sends '0'-'9' to digit glyphs
    (dropping symbol fonts such as cmex10 and the LastResort placeholder), sorted."""
    import matplotlib
    from fontTools.ttLib import TTFont

    folder = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
    chosen = []
    for path in sorted(folder.glob("*.ttf")):
        cmap = TTFont(path, lazy=True).getBestCmap() or {}
        glyphs = [cmap.get(ord(str(d)), "") for d in range(10)]
        if all(glyph.startswith(name) for glyph, name in zip(glyphs, DIGIT_NAMES, strict=True)):
            chosen.append(path)
    return chosen


@functools.lru_cache(maxsize=64)
def _font(path: Path) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(path), GLYPH_SIZE)


def render_digit(
    digit: int,
    font: Path,
    image_size: int,
    height: float,
    rotation: float,
    slant: float,
    stroke: int,
    offset: tuple[float, float],
    brightness: float,
) -> np.ndarray:
    """One white-on-black digit as a float array [image_size, image_size] in [0, 1].

    ``height``: the glyph's height as a share of the image; ``rotation`` in degrees;
    ``slant``: horizontal shear; ``stroke``: extra stroke width in pixels at GLYPH_SIZE;
    ``offset``: the glyph centre's shift as a share of the image."""
    canvas = Image.new("L", (2 * GLYPH_SIZE, 2 * GLYPH_SIZE))
    centre = GLYPH_SIZE
    ImageDraw.Draw(canvas).text(
        (centre, centre), str(digit), fill=255, font=_font(font), anchor="mm",
        stroke_width=stroke, stroke_fill=255,
    )  # fmt: skip
    # Shear (the top leans right for slant > 0), then rotate, about the centre. PIL's
    # affine maps output pixels to input pixels, so it takes the inverse matrix.
    angle = math.radians(rotation)
    forward = np.array(
        [[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]]
    ) @ np.array([[1.0, -slant], [0.0, 1.0]])
    inverse = np.linalg.inv(forward)
    shift = centre - inverse @ np.array([centre, centre])
    coefficients = (*inverse[0], shift[0], *inverse[1], shift[1])
    canvas = canvas.transform(canvas.size, Image.Transform.AFFINE, coefficients,
                              resample=Image.Resampling.BILINEAR)  # fmt: skip
    glyph = canvas.crop(canvas.getbbox())
    big = image_size * SUPERSAMPLE
    scale = min(height * big / glyph.height, 0.95 * big / glyph.width)
    size = (max(1, round(glyph.width * scale)), max(1, round(glyph.height * scale)))
    glyph = glyph.resize(size, Image.Resampling.LANCZOS)
    frame = Image.new("L", (big, big))
    left = round(big / 2 + offset[0] * big - size[0] / 2)
    top = round(big / 2 + offset[1] * big - size[1] / 2)
    frame.paste(glyph, (left, top))
    small = frame.resize((image_size, image_size), Image.Resampling.BOX)
    return np.asarray(small, dtype=np.float32) / 255.0 * brightness


@functools.lru_cache(maxsize=4)
def _printed(image_size: int) -> LabelledImages:
    """Decoded once per process and size (the built-in teacher is cached on top)."""
    fonts = font_files()
    rng = np.random.default_rng(RENDER_SEED)
    images, labels = [], []
    for digit in range(10):
        for i in range(RENDERS_PER_CLASS):
            images.append(
                render_digit(
                    digit,
                    fonts[(i + digit) % len(fonts)],
                    image_size,
                    height=rng.uniform(0.6, 0.95),
                    rotation=rng.uniform(-15.0, 15.0),
                    slant=rng.uniform(-0.3, 0.3),
                    stroke=int(rng.integers(0, 5)),
                    offset=(rng.uniform(-0.08, 0.08), rng.uniform(-0.08, 0.08)),
                    brightness=rng.uniform(0.7, 1.0),
                )
            )
            labels.append(digit)
    grey = torch.from_numpy(np.stack(images)).unsqueeze(1)
    return as_domain(grey, torch.tensor(labels, dtype=torch.int64))


def _handwritten(image_size: int) -> LabelledImages:
    from augkd.data.digits import load_raw

    images, labels = load_raw()
    return upsampled_8x8(images, labels, image_size)


def upsampled_8x8(images: torch.Tensor, labels: torch.Tensor, image_size: int) -> LabelledImages:
    """8x8 digits in [0, 1] (UCI's form, [N, 8, 8]) at ``image_size``, uint8 RGB: the one
    way every 8x8 domain is brought to the configured size (the forms benchmark's too)."""
    grey = torch.nn.functional.interpolate(
        images.unsqueeze(1), size=(image_size, image_size), mode="bilinear", align_corners=False
    )
    return as_domain(grey, labels)


def as_domain(grey: torch.Tensor, labels: torch.Tensor) -> LabelledImages:
    rgb = grey.clamp(0, 1).expand(-1, 3, -1, -1)
    as_bytes = (rgb * 255).round().to(torch.uint8).contiguous()
    return LabelledImages(as_bytes, labels, [str(c) for c in range(10)])


def load_fonts_domain(domain: str, image_size: int) -> LabelledImages:
    """``printed`` (the teacher's) or ``handwritten`` (the student's), uint8 RGB."""
    if domain == TEACHER_DOMAIN:
        cached = _printed(image_size)
        return LabelledImages(cached.images.clone(), cached.labels.clone(), cached.class_names)
    if domain == STUDENT_DOMAIN:
        return _handwritten(image_size)
    raise ConfigError(
        f"Unknown fonts domain '{domain}'; set data.teacher_domains=[{TEACHER_DOMAIN}] and "
        f"data.student_domain={STUDENT_DOMAIN}."
    )

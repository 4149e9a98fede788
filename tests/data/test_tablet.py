"""The tablet benchmark (scanned forms' reader -> digits written with a stylus): the regime
that judges the search. Deterministic, no download, disjoint domains, its sizes and splits."""

from __future__ import annotations

import numpy as np

from augkd.data.tablet import (
    ALLOGRAPHS,
    STUDENT_DOMAIN,
    load_tablet_domain,
    smooth_path,
    write_digit,
)
from tests.data.images import image_hashes

TABLET_DATA = [
    "data.source=tablet",
    "data.teacher_domains=[printed,handwritten]",
    "data.student_domain=pen",
    "data.train_per_class=15",
]


def test_no_pen_image_is_in_a_teacher_domain(few_pens):
    pen = image_hashes(load_tablet_domain(STUDENT_DOMAIN, 16).images)
    for teacher_domain in ("printed", "handwritten"):
        assert not pen & image_hashes(load_tablet_domain(teacher_domain, 16).images)


def test_every_digit_has_several_ways_of_writing_it_and_each_is_drawn():
    assert set(ALLOGRAPHS) == set(range(10))
    assert all(len(ways) >= 2 for ways in ALLOGRAPHS.values())
    rng = np.random.default_rng(0)
    for digit in range(10):
        ink = write_digit(digit, rng, 16)
        assert ink.shape == (16, 16) and ink.min() >= 0.0 and ink.max() <= 1.0
        assert (ink > 0.3).sum() >= 8  # a stroke, not a speck


def test_a_pen_path_passes_through_its_control_points():
    points = np.array([[0.1, 0.1], [0.5, 0.9], [0.9, 0.2]])
    path = smooth_path(points)
    for point in points:
        assert np.min(np.linalg.norm(path - point, axis=1)) < 1e-9

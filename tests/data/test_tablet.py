"""The tablet benchmark (scanned forms' reader -> digits written with a stylus): the regime
that judges the search. Deterministic, no download, disjoint domains, its sizes and splits."""

from __future__ import annotations

import functools
import hashlib
import socket

import numpy as np
import pytest
import torch

from augkd.basics.config import load_config
from augkd.basics.errors import ConfigError
from augkd.data import load_student_splits
from augkd.data import tablet as tablet_module
from augkd.data.tablet import (
    ALLOGRAPHS,
    STUDENT_DOMAIN,
    load_tablet_domain,
    smooth_path,
    write_digit,
)

TABLET_DATA = [
    "data.source=tablet",
    "data.teacher_domains=[printed,handwritten]",
    "data.student_domain=pen",
    "data.train_per_class=15",
]


@pytest.fixture
def few_pens(monkeypatch):
    """12 pen digits per class, written into a cache of their own."""
    monkeypatch.setattr(tablet_module, "PEN_PER_CLASS", 12)
    fresh = functools.lru_cache(maxsize=4)(tablet_module._pen.__wrapped__)
    monkeypatch.setattr(tablet_module, "_pen", fresh)


def _hashes(images: torch.Tensor) -> set[str]:
    return {hashlib.sha256(image.numpy().tobytes()).hexdigest() for image in images}


def test_pen_domain_is_deterministic_balanced_and_every_image_differs(few_pens):
    first = load_tablet_domain(STUDENT_DOMAIN, 16)
    tablet_module._pen.cache_clear()
    again = load_tablet_domain(STUDENT_DOMAIN, 16)
    assert torch.equal(first.images, again.images) and torch.equal(first.labels, again.labels)
    assert first.images.shape == (120, 3, 16, 16) and first.images.dtype == torch.uint8
    assert torch.bincount(first.labels).tolist() == [12] * 10
    assert len(_hashes(first.images)) == 120
    assert first.class_names == [str(d) for d in range(10)]


def test_the_pen_domain_needs_no_network(few_pens, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the tablet benchmark tried to reach the network")

    monkeypatch.setattr(socket, "socket", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    assert len(load_tablet_domain(STUDENT_DOMAIN, 16)) == 120


def test_no_pen_image_is_in_a_teacher_domain(few_pens):
    pen = _hashes(load_tablet_domain(STUDENT_DOMAIN, 16).images)
    for teacher_domain in ("printed", "handwritten"):
        assert not pen & _hashes(load_tablet_domain(teacher_domain, 16).images)


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


def test_scarce_labels_leave_val_and_test_of_at_least_1000_disjoint_images():
    config = load_config(None, TABLET_DATA)
    splits = load_student_splits(config.data, 0, torch.device("cpu"))
    assert len(splits.train_y) == 150 and torch.bincount(splits.train_y).tolist() == [15] * 10
    assert len(splits.val_y) >= 1000 and len(splits.test_y) >= 1000
    parts = [set(splits.indices[p].tolist()) for p in ("train", "val", "test")]
    assert not (parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2])
    other = load_student_splits(config.data, 1, torch.device("cpu"))
    assert not torch.equal(splits.indices["val"], other.indices["val"])


def test_an_unknown_tablet_domain_names_the_keys():
    with pytest.raises(ConfigError, match="data.student_domain=pen"):
        load_tablet_domain("scribbles", 16)

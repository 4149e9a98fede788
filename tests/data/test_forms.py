"""The forms benchmark (handwritten -> typed digits): deterministic, disjoint between
domains, no download, UCI's acquisition, its sizes, scarce-label splits and a real trial."""

from __future__ import annotations

import numpy as np
import pytest
import sklearn.datasets
import torch

from augkd.data import forms as forms_module
from augkd.data.fonts import font_files
from augkd.data.forms import (
    count_blocks,
    load_forms_domain,
    normalise_bitmap,
    scan_typed_digit,
)
from tests.data.images import image_hashes

FORMS_DATA = [
    "data.source=forms",
    "data.teacher_domains=[handwritten]",
    "data.student_domain=typed",
    "data.train_per_class=15",
]


def test_handwritten_domain_is_all_of_sklearns_digits():
    domain = load_forms_domain("handwritten", 16)
    assert domain.images.shape == (1797, 3, 16, 16)
    assert domain.labels.tolist() == sklearn.datasets.load_digits().target.tolist()


def test_typed_digits_go_through_ucis_acquisition(few_scans):
    """Counts of on-pixels in 4x4 blocks of a 32x32 bitmap (0-16), the glyph filling all
    rows like UCI's digits; at 8 px the typed domain is those counts divided by 16."""
    counts, _labels = forms_module._typed_counts()
    assert counts.dtype == torch.int64 and counts.shape == (200, 8, 8)
    assert counts.min() == 0 and counts.max() == 16
    assert bool((counts > 0).any(dim=2).all())  # ink in every one of the 8 rows
    at_8 = load_forms_domain("typed", 8).images[:, 0].float()
    assert torch.equal(at_8, (counts.float() / 16 * 255).round())


def test_normalising_keeps_a_thin_stroke_thin_and_fills_the_height():
    stroke = np.zeros((40, 40), dtype=bool)
    stroke[5:25, 18:21] = True  # 20 high, 3 wide
    bitmap = normalise_bitmap(stroke)
    assert bitmap.shape == (32, 32) and bitmap.any(axis=1).all()
    assert bitmap.any(axis=0).sum() == round(3 * 32 / 20)
    square = np.ones((10, 30), dtype=bool)  # wider than high: capped at 32 wide
    assert normalise_bitmap(square).all()
    assert count_blocks(normalise_bitmap(square)).tolist() == [[16] * 8] * 8
    with pytest.raises(ValueError, match="no ink"):
        normalise_bitmap(np.zeros((8, 8), dtype=bool))


def test_each_scan_setting_changes_the_counts():
    font = font_files()[0]
    plain = dict(scan_height=30.0, skew=0.0, weight=0, threshold=0.5)
    base = scan_typed_digit(2, font, **plain)
    assert base.shape == (8, 8) and base.min() >= 0 and base.max() <= 16
    for change in ({"skew": 5.0}, {"weight": 4}, {"threshold": 0.65}, {"scan_height": 20.0}):
        assert not np.array_equal(scan_typed_digit(2, font, **{**plain, **change}), base)
    assert scan_typed_digit(2, font, **{**plain, "weight": 4}).sum() > base.sum()


def test_scanning_never_reads_sklearn(few_scans, monkeypatch):
    def refuse(*_args, **_kwargs):
        raise AssertionError("the typed domain must not read scikit-learn's digits")

    monkeypatch.setattr(sklearn.datasets, "load_digits", refuse)
    assert len(load_forms_domain("typed", 16)) == 200


def test_domains_share_no_image():
    typed = load_forms_domain("typed", 16)
    handwritten = load_forms_domain("handwritten", 16)
    assert not image_hashes(typed.images) & image_hashes(handwritten.images)
    counts, _labels = forms_module._typed_counts()  # and none at UCI's 8x8 either
    raw = sklearn.datasets.load_digits().images.astype(np.int64)
    assert not {c.numpy().tobytes() for c in counts} & {r.tobytes() for r in raw}

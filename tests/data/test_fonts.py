"""The fonts benchmark: deterministic, disjoint between domains, no download, its sizes,
and scarce-label splits (data.train_per_class)."""

from __future__ import annotations

import pytest
import sklearn.datasets
import torch

from augkd.basics.errors import DataError
from augkd.data import per_class_split_indices
from augkd.data.fonts import font_files, load_fonts_domain, render_digit
from tests.data.images import image_hashes

FONTS_DATA = [
    "data.source=fonts",
    "data.teacher_domains=[printed]",
    "data.student_domain=handwritten",
    "data.train_per_class=15",
]


def test_only_fonts_that_draw_digits_are_used_in_sorted_order():
    names = [path.name for path in font_files()]
    assert names == sorted(names) and len(names) >= 4
    assert "DejaVuSans.ttf" in names and "DejaVuSerif-BoldItalic.ttf" in names
    for symbol_font in ("cmex10.ttf", "cmsy10.ttf", "LastResortHE-Regular.ttf", "STIXNonUni.ttf"):
        assert symbol_font not in names


def test_each_rendering_option_changes_the_image():
    font = font_files()[0]
    plain = dict(height=0.8, rotation=0.0, slant=0.0, stroke=0, offset=(0.0, 0.0), brightness=1.0)
    base = render_digit(3, font, 16, **plain)
    assert base.max() > 0.5 and base.shape == (16, 16)
    assert render_digit(3, font, 16, **{**plain, "stroke": 4}).sum() > base.sum()
    for change in ({"rotation": 15.0}, {"slant": 0.3}, {"offset": (0.1, 0.0)}, {"height": 0.6}):
        assert abs(render_digit(3, font, 16, **{**plain, **change}) - base).sum() > 1.0
    assert render_digit(3, font, 16, **{**plain, "brightness": 0.5}).max() == pytest.approx(
        0.5 * base.max(), rel=1e-6
    )


def test_handwritten_domain_is_all_of_sklearns_digits():
    domain = load_fonts_domain("handwritten", 16)
    bunch = sklearn.datasets.load_digits()
    assert domain.images.shape == (1797, 3, 16, 16)
    assert domain.labels.tolist() == bunch.target.tolist()


def test_domains_share_no_image_and_rendering_never_reads_sklearn(few_renders, monkeypatch):
    def refuse(*_args, **_kwargs):
        raise AssertionError("the printed domain must not read scikit-learn's digits")

    with monkeypatch.context() as patch:
        patch.setattr(sklearn.datasets, "load_digits", refuse)
        printed = load_fonts_domain("printed", 16)
    handwritten = load_fonts_domain("handwritten", 16)
    assert not image_hashes(printed.images) & image_hashes(handwritten.images)


def test_too_many_labels_per_class_is_refused_naming_the_key():
    labels = torch.arange(10).repeat(5)
    with pytest.raises(DataError, match="data.train_per_class=5"):
        per_class_split_indices(labels, 5, (0.8, 0.1, 0.1), seed=0)

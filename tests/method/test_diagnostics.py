"""Diagnostics' metrics recomputed by hand (augkd.method.diagnostics); on a tiny real run,
with the stage part cached: tests/trial/test_diagnostics.py."""

from __future__ import annotations

import math

import pytest
import torch

from augkd.method.diagnostics import teacher_view


def test_teacher_view_matches_hand_computation():
    # Two samples predicted class 0 (one right), one predicted class 2; 3 classes.
    logits = torch.tensor([[2.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 3.0]])
    labels = torch.tensor([0, 1, 2])
    view = teacher_view(logits, labels, "x")
    probs = torch.softmax(logits, dim=1)
    assert view["x_acc1"] == pytest.approx(200 / 3)
    assert view["x_confidence"] == pytest.approx(probs.max(dim=1).values.mean().item())
    lse = [math.log(math.exp(2) + 2), math.log(math.e + 2), math.log(math.exp(3) + 2)]
    assert view["x_energy"] == pytest.approx(-sum(lse) / 3, rel=1e-5)
    assert view["x_largest_class_share"] == pytest.approx(2 / 3)
    entropy = -(2 / 3 * math.log(2 / 3) + 1 / 3 * math.log(1 / 3)) / math.log(3)
    assert view["x_class_entropy"] == pytest.approx(entropy, rel=1e-5)
    assert "gz_acc1" not in teacher_view(logits, None, "gz")

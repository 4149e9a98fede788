"""What a val pass measures: top-k accuracy, and the cross-entropy that still orders
students whose accuracy ties."""

from __future__ import annotations

import math

import torch
from torch import nn

from augkd.models.metrics import evaluate


class _Fixed(nn.Module):
    """Returns the logits it was built with, whatever the images."""

    def __init__(self, logits: torch.Tensor) -> None:
        super().__init__()
        self.logits = logits

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits[: len(x)]


def test_two_students_at_equal_accuracy_differ_in_val_loss():
    images = torch.zeros(4, 3, 8, 8)
    labels = torch.tensor([0, 1, 2, 0])
    sure = torch.full((4, 3), -4.0)
    sure[torch.arange(4), labels] = 4.0
    unsure = sure / 8
    found = {
        name: evaluate(_Fixed(logits), images, labels, normalize=lambda x: x)
        for name, logits in (("sure", sure), ("unsure", unsure))
    }
    assert found["sure"]["acc1"] == found["unsure"]["acc1"] == 100.0
    assert found["sure"]["acc3"] == 100.0
    expected_sure = -math.log(math.exp(4) / (math.exp(4) + 2 * math.exp(-4)))
    assert math.isclose(found["sure"]["loss"], expected_sure, rel_tol=1e-4)  # float32
    assert found["sure"]["loss"] < found["unsure"]["loss"]

"""A trained student as users load it from MLflow: raw [0, 1] images in, logits out.

A bare state dict expects the teacher's normalisation, which would otherwise travel
separately; this module carries it (and the class names) with the weights.
"""

from __future__ import annotations

import torch
from torch import nn

from augkd.hardware.runtime import Normalize


def student_meta(normalize, image_size: int, class_names: list[str], example) -> dict:
    """What a deployable student needs beyond its weights (saved with its checkpoint):
    the teacher's normalisation, image size, class names and a few raw images."""
    from augkd.data import as_unit_float

    return {
        "mean": normalize.mean.flatten().tolist(),
        "std": normalize.std.flatten().tolist(),
        "image_size": int(image_size),
        "class_names": list(class_names),
        "example": as_unit_float(example).detach().float().cpu(),
    }


class RawImageClassifier(nn.Module):
    """The student behind the teacher's input normalisation.

    Input: float images in [0, 1], shape [N, 3, S, S] with S the teacher's image size.
    Output: logits over ``class_names``.
    """

    def __init__(
        self, student: nn.Module, mean: list[float], std: list[float], class_names: list[str]
    ) -> None:
        super().__init__()
        self.normalize = Normalize(mean, std)
        self.student = student
        self.class_names = list(class_names)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.student(self.normalize(images))

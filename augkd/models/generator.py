"""Generator G of Module 1: latent z -> image in [0, 1] at the teacher's input size, grey
(one channel repeated) or RGB."""

from __future__ import annotations

import torch
from torch import nn

from augkd.models.layout import fast_layout


def generator_channels(colour: str, teacher_mean: list[float], teacher_std: list[float]) -> int:
    """1 (grey, shown to the teacher as three equal channels) or 3 (RGB). ``auto`` is grey
    when the teacher's input normalisation is the same on every channel: a teacher trained
    on grey images, whose BatchNorm statistics a coloured image can only match by chance."""
    if colour == "auto":
        grey = len(set(teacher_mean)) == 1 and len(set(teacher_std)) == 1
        return 1 if grey else 3
    return 1 if colour == "grey" else 3


class Generator(nn.Module):
    def __init__(
        self, latent_size: int, image_size: int, width: int = 64, channels: int = 3
    ) -> None:
        super().__init__()
        self.channels = channels
        self.base = image_size // 4
        self.width = width
        self.project = nn.Sequential(
            nn.Linear(latent_size, 2 * width * self.base * self.base),
        )
        self.blocks = nn.Sequential(
            nn.BatchNorm2d(2 * width),
            nn.Upsample(scale_factor=2),
            nn.Conv2d(2 * width, 2 * width, 3, padding=1, bias=False),
            nn.BatchNorm2d(2 * width),
            nn.LeakyReLU(0.2),
            nn.Upsample(size=(image_size, image_size)),
            nn.Conv2d(2 * width, width, 3, padding=1, bias=False),
            nn.BatchNorm2d(width),
            nn.LeakyReLU(0.2),
            nn.Conv2d(width, channels, 3, padding=1),
            nn.Sigmoid(),
        )
        fast_layout(self)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        features = self.project(z).view(-1, 2 * self.width, self.base, self.base)
        images = self.blocks(features)
        return images.expand(-1, 3, -1, -1) if self.channels == 1 else images

"""Generator G of Module 1: latent z -> image in [0, 1] at the teacher's input size."""

from __future__ import annotations

import torch
from torch import nn

from augkd.models.layout import fast_layout


class Generator(nn.Module):
    def __init__(self, latent_size: int, image_size: int, width: int = 64) -> None:
        super().__init__()
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
            nn.Conv2d(width, 3, 3, padding=1),
            nn.Sigmoid(),
        )
        fast_layout(self)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        features = self.project(z).view(-1, 2 * self.width, self.base, self.base)
        return self.blocks(features)

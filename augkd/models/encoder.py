"""Encoder E of Module 1: (image, label) -> (mu, log sigma^2), an approximate inverse of G."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from augkd.models.layout import fast_layout

LOGVAR_RANGE = (-5.0, 3.0)


class Encoder(nn.Module):
    def __init__(
        self, latent_size: int, image_size: int, num_classes: int, width: int = 32
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.image_size = image_size
        self.label_plane = nn.Linear(num_classes, image_size * image_size)
        self.features = nn.Sequential(
            nn.Conv2d(4, width, 3, stride=2, padding=1),
            nn.BatchNorm2d(width),
            nn.LeakyReLU(0.2),
            nn.Conv2d(width, 2 * width, 3, stride=2, padding=1),
            nn.BatchNorm2d(2 * width),
            nn.LeakyReLU(0.2),
            nn.AdaptiveAvgPool2d(2),
            nn.Flatten(),
        )
        self.mu = nn.Linear(8 * width, latent_size)
        self.logvar = nn.Linear(8 * width, latent_size)
        fast_layout(self)

    def forward(
        self, images: torch.Tensor, labels: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        one_hot = F.one_hot(labels, self.num_classes).to(images.dtype)
        plane = self.label_plane(one_hot).view(-1, 1, self.image_size, self.image_size)
        hidden = self.features(torch.cat([images, plane], dim=1))
        return self.mu(hidden), self.logvar(hidden).clamp(*LOGVAR_RANGE)

    @staticmethod
    def sample(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        return mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)

"""AnchorNet A(z, y) of Module 2: move the domain-specific part of z, keep the rest.

z_a = m * psi(z * m) + (1 - m) * z, with a class-conditional mask m(y) in [0, 1]^d.
"""

from __future__ import annotations

import torch
from torch import nn


class AnchorNet(nn.Module):
    def __init__(self, latent_size: int, num_classes: int, channels: int = 8) -> None:
        super().__init__()
        self.mask_net = nn.Sequential(
            nn.Embedding(num_classes, latent_size),
            nn.Linear(latent_size, latent_size),
            nn.BatchNorm1d(latent_size),
            nn.Sigmoid(),
        )
        self.conv = nn.Sequential(
            nn.Conv1d(1, channels, 3, padding=1),
            nn.LeakyReLU(0.2),
            nn.Conv1d(channels, 1, 3, padding=1),
            nn.Flatten(),
        )
        self.mapping = nn.Linear(latent_size, latent_size)

    def mask(self, labels: torch.Tensor) -> torch.Tensor:
        return self.mask_net(labels)

    def psi(self, z: torch.Tensor) -> torch.Tensor:
        return self.mapping(self.conv(z.unsqueeze(1)))

    def forward(self, z: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns (anchor z_a, mask m)."""
        mask = self.mask(labels)
        return mask * self.psi(z * mask) + (1 - mask) * z, mask

"""Device choice and seeding: CUDA when present, CPU otherwise."""

from __future__ import annotations

import random

import numpy as np
import torch

from augkd.errors import ConfigError


def resolve_device(name: str) -> torch.device:
    """The configured device; a GPU asked for by name must be there (checked before work)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ConfigError(
                f"config key 'device' is '{name}' but this machine has no usable CUDA GPU; "
                "set device=auto or device=cpu."
            )
        if device.index is not None and device.index >= count:
            raise ConfigError(
                f"config key 'device' is '{name}' but this machine has {count} GPU(s), "
                f"numbered from 0; set device=cuda:0 or device=auto."
            )
    return device


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


class Normalize(torch.nn.Module):
    """The teacher's input normalisation, applied alike to every image a model sees."""

    def __init__(self, mean: list[float], std: list[float]) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std

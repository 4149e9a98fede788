"""The in-memory form every data source decodes to, once."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class LabelledImages:
    """Decoded images of one domain.

    images: uint8 tensor [N, 3, H, W] already resized to the configured size (RGB).
    labels: int64 tensor [N] indexing ``class_names``.
    """

    images: torch.Tensor
    labels: torch.Tensor
    class_names: list[str]

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.ndim != 4 or self.images.shape[1] != 3:
            raise ValueError("LabelledImages.images must be a uint8 tensor [N, 3, H, W]")
        if self.labels.shape != (self.images.shape[0],):
            raise ValueError("LabelledImages.labels must hold one label per image")

    def __len__(self) -> int:
        return int(self.labels.shape[0])

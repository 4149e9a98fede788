"""What the regime tests compare images by."""

from __future__ import annotations

import hashlib

import torch


def image_hashes(images: torch.Tensor) -> set[str]:
    """One hash per image: two domains share an image when their sets meet."""
    return {hashlib.sha256(image.numpy().tobytes()).hexdigest() for image in images}

"""A loaded teacher: its network, classes, input size and normalization, and the content
hash of its checkpoint that every stage-cache key carries (augkd.trial.teacher loads or
trains one)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import nn

from augkd.hardware.runtime import Normalize


@dataclass
class Teacher:
    model: nn.Module
    class_names: list[str]
    image_size: int
    normalize: Normalize
    identity: str
    """Content hash of the checkpoint: part of every stage-cache key."""
    metadata: dict[str, Any]

"""Mixed precision (config key ``precision``): autocast for Module 3 and every teacher forward.

bf16 needs no loss scaling; fp16 gets a GradScaler. Losses are computed in fp32 (autocast
runs softmax, log-softmax and cross-entropy in fp32), and Module 1's BatchNorm-statistics term
casts its inputs to fp32 itself. On CPU, bf16 and fp16 autocast run too, so every branch here
is tested without a GPU.
"""

from __future__ import annotations

import contextlib
from typing import Any

import torch
from torch import nn

DTYPES: dict[str, torch.dtype | None] = {
    "fp32": None,
    "bf16": torch.bfloat16,
    "fp16": torch.float16,
}


class MixedPrecision:
    """Autocast and (fp16 only) loss scaling for one device; ``fp32`` makes both no-ops."""

    def __init__(self, precision: str, device: torch.device) -> None:
        self.precision = precision
        self.device_type = device.type
        self.dtype = DTYPES[precision]
        self.scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=self.dtype)

    def step(self, loss: torch.Tensor, optimizer: torch.optim.Optimizer) -> None:
        """backward and optimizer step, through the GradScaler when it is enabled."""
        if not self.scaler.is_enabled():
            loss.backward()
            optimizer.step()
            return
        self.scaler.scale(loss).backward()
        self.scaler.step(optimizer)
        self.scaler.update()

    def state_dict(self) -> dict[str, Any]:
        return self.scaler.state_dict() if self.scaler.is_enabled() else {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state and self.scaler.is_enabled():
            self.scaler.load_state_dict(state)


class AutocastModule(nn.Module):
    """A frozen network (the teacher) whose forward runs under autocast and returns fp32.

    Wrapping the teacher once gives every module (1, 2 and 3) mixed-precision teacher
    forwards without changing their code; gradients still flow to the inputs (Module 1)."""

    def __init__(self, inner: nn.Module, precision: MixedPrecision) -> None:
        super().__init__()
        self.inner = inner
        self.precision = precision

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with self.precision.autocast():
            return self.inner(x).float()

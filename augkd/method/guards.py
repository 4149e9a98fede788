"""Stop a diverging stage with one sentence that names the stage and the knob to turn.

Divergence is more than NaN: a loss that climbs to 1e13 stays finite, and its results
would be written as normal. A loss far above its first value, or gradients that are not
finite, end the stage with the same sentence that NaN gets."""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch

from augkd.basics.errors import DivergedError

DIVERGED_FACTOR = 1000.0
"""A loss this many times (its first value's size, at least 1) above its first value has
diverged: no stage of augkd climbs that far and comes back."""


def _diverged(what: str, value: str, knob: str) -> DivergedError:
    return DivergedError(
        f"{what} became {value} (training diverged); lower {knob} or check the data."
    )


def check_finite(value: float | torch.Tensor, what: str, knob: str) -> None:
    number = float(value)
    if not math.isfinite(number):
        raise _diverged(what, str(number), knob)


class LossWatch:
    """One stage's loss, looked at as it trains: it must stay finite and within
    DIVERGED_FACTOR of its first value (``first``: a resumed stage's first value)."""

    def __init__(self, knob: str, first: float | None = None) -> None:
        self.knob = knob
        self.first = first

    def check(self, value: float | torch.Tensor, what: str) -> None:
        number = float(value)
        check_finite(number, what, self.knob)
        if self.first is None:
            self.first = number
            return
        limit = self.first + DIVERGED_FACTOR * max(abs(self.first), 1.0)
        if number > limit:
            shown = f"{number:.3g}, far above its first value {self.first:.3g}"
            raise _diverged(what, shown, self.knob)


class StepWatch:
    """What a training loop's steps say about divergence, kept on the device (no
    synchronisation per step): the loss of its very first step (a stage can climb far
    within its first look), and the sum of its gradient norms since the last look (one
    that is not finite makes the sum not finite)."""

    def __init__(self) -> None:
        self.first_loss: torch.Tensor | None = None
        self.gradient_norms: torch.Tensor | None = None

    def after_step(
        self, loss: torch.Tensor, parameters: Iterable[torch.nn.Parameter], gradients: bool
    ) -> None:
        """``gradients``: whether this step's gradients must be finite (not under fp16,
        whose scaler skips non-finite steps by design)."""
        if self.first_loss is None:
            self.first_loss = loss.detach().float().clone()
        if not gradients:
            return
        grads = [p.grad for p in parameters if p.grad is not None]
        if grads:
            norm = torch.nn.utils.get_total_norm(grads).float()
            self.gradient_norms = (
                norm if self.gradient_norms is None else self.gradient_norms + norm
            )

    def check(self, losses: LossWatch, loss: float, epoch: int, stage: str) -> None:
        """The mean loss of the steps since the last look (against the first step's),
        then their gradients; ``stage`` names them ("Module 3")."""
        first = None if self.first_loss is None else float(self.first_loss)
        if losses.first is None and first is not None and math.isfinite(first):
            losses.first = first  # a NaN at the first step keeps NaN's sentence, below
        losses.check(loss, f"{stage} training loss at epoch {epoch}")
        norms, self.gradient_norms = self.gradient_norms, None
        if norms is not None and not math.isfinite(float(norms)):
            raise _diverged(f"{stage} gradients at epoch {epoch}", f"{float(norms)}", losses.knob)

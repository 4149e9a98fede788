"""Encoder adaptation: fit E to invert the frozen G on student-domain images.

Not in the paper. Module 1 trains E on G's own samples only (method.md, "Module 1"), so
E(x) of a real student image is outside what E has seen and G(E(x)) is close to noise:
the teacher recognised 11-18 % of such reconstructions on the digits benchmark (chance
10 %). Fitting E on the student train images (G frozen, so G(E(x)) stays in the space
the teacher's statistics shaped) makes G(E(x)) the teacher-domain image nearest to x,
which is what Module 2's anchors and Module 3's x_mix start from.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from augkd.basics.config import EncoderAdaptConfig
from augkd.basics.eta import StepHook
from augkd.data import iterate_batches
from augkd.method.budget import steps_per_epoch
from augkd.method.guards import LossWatch
from augkd.method.losses import vae_kl


@dataclass
class AdaptInputs:
    """What the adaptation fits (E), holds frozen (G), and fits E on (student train images)."""

    encoder: nn.Module
    generator: nn.Module
    train_x: torch.Tensor
    train_y: torch.Tensor


def adapt_encoder(
    inputs: AdaptInputs,
    settings: EncoderAdaptConfig,
    kl_weight: float,
    generator_rng: torch.Generator,
    log: Callable[[str], None] = print,
    on_step: StepHook | None = None,
) -> dict[str, torch.Tensor]:
    """Returns E's adapted state: min ||G(mu(x)) - x||^2 + kl_weight * KL(q(z|x) || N(0, I)).
    ``on_step``: told ("encoder", steps done, steps in all) after each step."""
    encoder, generator = inputs.encoder, inputs.generator
    train_x, train_y = inputs.train_x, inputs.train_y
    generator.eval().requires_grad_(False)
    encoder.train().requires_grad_(True)
    optimizer = torch.optim.Adam(encoder.parameters(), lr=settings.lr)
    loss_watch = LossWatch("encoder_adapt.lr")
    steps = settings.epochs * adaptation_steps_per_epoch(len(train_y), settings.batch_size)
    done = 0
    for epoch in range(settings.epochs):
        total, batches = torch.zeros(()), 0
        for images, labels in iterate_batches(
            train_x, train_y, settings.batch_size, generator_rng, augment=True
        ):
            if len(labels) < 2:
                continue  # BatchNorm in E needs two samples
            loss = adaptation_step(encoder, generator, optimizer, images, labels, kl_weight)
            total += loss.detach().cpu()
            batches += 1
            done += 1
            if on_step is not None:
                on_step("encoder", done, steps)
        mean = float(total) / max(batches, 1)
        loss_watch.check(mean, f"encoder adaptation loss at epoch {epoch + 1}")
        log(f"encoder adaptation epoch {epoch + 1}/{settings.epochs} loss {mean:.4f}")
    encoder.eval().requires_grad_(False)
    return {k: v.detach().cpu() for k, v in encoder.state_dict().items()}


def adaptation_steps_per_epoch(train_images: int, batch_size: int) -> int:
    """Steps of one epoch (a last batch of one image is skipped)."""
    return steps_per_epoch(train_images, batch_size, min_batch=2)


def adaptation_step(
    encoder: nn.Module,
    generator: nn.Module,
    optimizer: torch.optim.Optimizer,
    images: torch.Tensor,
    labels: torch.Tensor,
    kl_weight: float,
) -> torch.Tensor:
    """One optimizer step of E (also what --estimate times)."""
    mu, logvar = encoder(images, labels)
    loss = (generator(mu) - images).pow(2).mean() + kl_weight * vae_kl(mu, logvar)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss

"""Module 3 — mixup learning: train the student on [x ; x_mix], moving from the
teacher domain to the student domain by the mixup schedule (method.md, "Module 3").

The same epoch loop trains every baseline; a ``BatchRecipe`` says what the student
sees and which loss it gets.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from augkd.data import iterate_batches
from augkd.method.losses import distillation_loss
from augkd.precision import MixedPrecision
from augkd.runtime import Normalize


@dataclass
class MixupNets:
    """Frozen networks that build x_mix; ``anchor_net`` None means z_a = z."""

    encoder: nn.Module
    generator: nn.Module
    anchor_net: nn.Module | None


@torch.no_grad()
def mix_batch(
    nets: MixupNets, images: torch.Tensor, labels: torch.Tensor, share: float
) -> torch.Tensor:
    """x_mix = (1 - s) G(z_mix) + s x with z_mix = (1 - s) z_a + s z, z = E(x, y) (the mean)."""
    if share >= 1.0:
        return images
    z, _ = nets.encoder(images, labels)
    anchor = z if nets.anchor_net is None else nets.anchor_net(z, labels)[0]
    z_mix = (1 - share) * anchor + share * z
    return (1 - share) * nets.generator(z_mix) + share * images


@dataclass
class EpochSettings:
    share: float
    """s(e): the student-domain share this epoch."""
    ce_shares: tuple[float, float]
    """The effective u of the real half x and of the mixed half x_mix (plans.ce_shares)."""
    kd_temperature: float
    augment: bool
    batch_size: int


def train_epoch(
    student: nn.Module,
    teacher: nn.Module,
    normalize: Normalize,
    optimizer: torch.optim.Optimizer,
    train_x: torch.Tensor,
    train_y: torch.Tensor,
    settings: EpochSettings,
    generator_rng: torch.Generator,
    mixup_nets: MixupNets | None,
    precision: MixedPrecision | None = None,
) -> torch.Tensor:
    """One epoch; returns the mean training loss as a device tensor (no per-batch sync).

    ``precision`` runs the forwards under autocast (fp16 with loss scaling)."""
    precision = precision or MixedPrecision("fp32", train_x.device)
    student.train()
    total = torch.zeros((), device=train_x.device)
    batches = 0
    real_share, mixed_share = settings.ce_shares
    mixing = mixup_nets is not None
    for images, labels in iterate_batches(
        train_x, train_y, settings.batch_size, generator_rng, settings.augment
    ):
        with precision.autocast():
            shares = torch.full((len(labels),), real_share, device=images.device)
            if mixing:
                mixed = mix_batch(mixup_nets, images, labels, settings.share)
                images = torch.cat([images, mixed.to(images.dtype)])
                labels = torch.cat([labels, labels])
                shares = torch.cat([shares, torch.full_like(shares, mixed_share)])
            inputs = normalize(images)
            first = _first_teacher_row(real_share, mixed_share, len(shares), mixing)
            teacher_logits = None
            if first < len(shares):
                with torch.no_grad():
                    teacher_logits = teacher(inputs[first:])
            loss = distillation_loss(
                student(inputs), teacher_logits, labels, shares, settings.kd_temperature
            )
        optimizer.zero_grad(set_to_none=True)
        precision.step(loss, optimizer)
        total += loss.detach()
        batches += 1
    return total / max(batches, 1)


def _first_teacher_row(real_share: float, mixed_share: float, rows: int, mixing: bool) -> int:
    """The teacher sees only a suffix of [x ; x_mix]: every row, the mixed half, or none."""
    if real_share < 1.0:
        return 0
    if mixing and mixed_share < 1.0:
        return rows // 2
    return rows

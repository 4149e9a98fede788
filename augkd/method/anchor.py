"""Module 2 — anchor learning: train AnchorNet with the teacher's uncertainty
(method.md, "Module 2"). E, G and T stay frozen.

E is frozen and its mean is used, so z = E(x, y) of the train and val images is computed
once, not once a batch. The budget is in optimizer steps (method/budget.py), and the
AnchorNet is judged on a fixed subset of val a few times (``val_checks``, at epoch ends),
keeping the one with the lowest L_A: on a real val split a pass over all of it every epoch
cost more than the training itself.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from augkd.basics.config import Module2Config
from augkd.basics.eta import StepHook
from augkd.data import StudentSplits, as_unit_float, iterate_batches
from augkd.hardware.runtime import Normalize
from augkd.method.budget import StepBudget, step_budget
from augkd.method.guards import LossWatch
from augkd.method.losses import anchor_loss
from augkd.method.resume import BestSoFar, Progress
from augkd.method.training_state import TrainingState, cpu_copy
from augkd.models import AnchorNet

ENCODE_BATCH = 512


def anchor_batch_loss(
    anchor_net: AnchorNet,
    latents: torch.Tensor,
    labels: torch.Tensor,
    generator: nn.Module,
    teacher: nn.Module,
    normalize: Normalize,
    config: Module2Config,
) -> torch.Tensor:
    """L_A of a batch of latent codes z = E(x, y)."""
    anchor, mask = anchor_net(latents, labels)
    teacher_logits = teacher(normalize(generator(anchor)))
    return anchor_loss(
        teacher_logits,
        labels,
        mask,
        config.anchor_weight,
        config.temperature,
        config.ce_weight,
        config.mask_weight,
        config.invariant,
    )


@torch.no_grad()
def encode(encoder: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """z = E(x, y), the encoder's mean, in batches."""
    encoder.eval()
    return torch.cat(
        [
            encoder(
                as_unit_float(images[start : start + ENCODE_BATCH]),
                labels[start : start + ENCODE_BATCH],
            )[0]
            for start in range(0, len(labels), ENCODE_BATCH)
        ]
    )


def module2_budget(config: Module2Config, train_size: int) -> StepBudget:
    return step_budget(config.steps, config.epochs, train_size, config.batch_size, min_batch=2)


def val_check_epochs(budget: StepBudget, checks: int) -> set[int]:
    """The epochs (1-based) after which val judges the AnchorNet: the first epoch end at or
    past each of ``checks`` evenly spaced steps; the last epoch always."""
    chosen = {budget.epochs}
    done = 0
    targets = [budget.steps * (k + 1) / checks for k in range(checks)]
    for epoch in range(budget.epochs):
        done += budget.steps_in_epoch(epoch)
        while targets and targets[0] <= done:
            targets.pop(0)
            chosen.add(epoch + 1)
    return chosen


def val_subset(size: int, limit: int, seed: int) -> torch.Tensor:
    """A fixed, seeded choice of at most ``limit`` val rows (all of them when fewer)."""
    if size <= limit:
        return torch.arange(size)
    order = torch.randperm(size, generator=torch.Generator().manual_seed(seed))
    return order[:limit].sort().values


@dataclass
class AnchorInputs:
    """What Module 2 learns from: the frozen E, G and teacher, and the student-domain splits."""

    encoder: nn.Module
    generator: nn.Module
    teacher: nn.Module
    normalize: Normalize
    splits: StudentSplits
    latent_size: int

    @property
    def num_classes(self) -> int:
        return len(self.splits.class_names)


def train_anchor(
    inputs: AnchorInputs,
    settings: Module2Config,
    generator_rng: torch.Generator,
    log: Callable[[str], None] = print,
    progress: Progress | None = None,
    on_step: StepHook | None = None,
) -> dict[str, Any]:
    """Returns the AnchorNet state with the lowest L_A on the val subset.
    ``on_step``: told ("module2", steps done, steps in all) after each step.

    ``progress`` as in Module 1: resumed from its last save, saved after every epoch."""
    splits, generator, teacher = inputs.splits, inputs.generator, inputs.teacher
    device = splits.train_x.device
    anchor_net = AnchorNet(inputs.latent_size, inputs.num_classes).to(device)
    for frozen in (inputs.encoder, generator, teacher):
        frozen.eval()
        frozen.requires_grad_(False)
    budget = module2_budget(settings, len(splits.train_y))
    checks = val_check_epochs(budget, settings.val_checks)
    train_z = encode(inputs.encoder, splits.train_x, splits.train_y)
    rows = val_subset(len(splits.val_y), settings.val_images, int(generator_rng.initial_seed()))
    val_z = encode(inputs.encoder, splits.val_x[rows.to(device)], splits.val_y[rows.to(device)])
    val_y = splits.val_y[rows.to(device)]
    optimizer = torch.optim.Adam(anchor_net.parameters(), lr=settings.lr)
    # Cosine decay over the stage's steps, stepped once a step (sized and stepped alike).
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, budget.steps)
    training = TrainingState(
        {"anchor_net": anchor_net, "optimizer": optimizer, "scheduler": scheduler},
        {"batches": generator_rng},
        device,
    )
    best = BestSoFar(training, "val_loss", "min", progress.load() if progress is not None else None)
    loss_watch = LossWatch("module2.lr")
    done = sum(budget.steps_in_epoch(e) for e in range(best.first_epoch))
    normalize = inputs.normalize
    for epoch in range(best.first_epoch, budget.epochs):
        anchor_net.train()
        steps = 0
        for latents, labels in iterate_batches(
            train_z, splits.train_y, settings.batch_size, generator_rng
        ):
            if len(labels) < 2:
                continue  # BatchNorm in the mask net needs two samples
            if steps == budget.steps_in_epoch(epoch):
                break
            loss = anchor_batch_loss(
                anchor_net, latents, labels, generator, teacher, normalize, settings
            )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            steps += 1
            done += 1
            if on_step is not None:
                on_step("module2", done, budget.steps)
        if epoch + 1 in checks:
            val_loss = _val_loss(anchor_net, val_z, val_y, generator, teacher, normalize, settings)
            loss_watch.check(val_loss, f"Module 2 anchor loss at epoch {epoch + 1}")
            log(f"module2 epoch {epoch + 1}/{budget.epochs} val anchor loss {val_loss:.4f}")
            best.offer(
                val_loss, epoch + 1, lambda: {"anchor_net": cpu_copy(anchor_net.state_dict())}
            )
        if progress is not None:
            progress.save(epoch + 1, best.snapshot(epoch + 1))
    return cpu_copy(best.best)


@torch.no_grad()
def _val_loss(anchor_net, val_z, val_y, generator, teacher, normalize, config) -> float:
    anchor_net.eval()
    total = 0.0
    for start in range(0, len(val_y), ENCODE_BATCH):
        latents, labels = val_z[start : start + ENCODE_BATCH], val_y[start : start + ENCODE_BATCH]
        loss = anchor_batch_loss(anchor_net, latents, labels, generator, teacher, normalize, config)
        total += float(loss) * len(labels)
    return total / len(val_y)

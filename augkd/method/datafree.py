"""Module 1 — data-free learning: a generator of teacher-domain images, its encoder,
and a data-free-distilled student S0 (method.md, "Module 1")."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from augkd.basics.config import Module1Config
from augkd.basics.errors import ModelError
from augkd.basics.eta import StepHook
from augkd.hardware.runtime import Normalize
from augkd.method.guards import LossWatch
from augkd.method.losses import (
    BatchNormStatistics,
    encoder_loss,
    generator_loss,
    kl_teacher_student,
)
from augkd.method.resume import BestSoFar, Progress
from augkd.method.training_state import TrainingState, cpu_copy
from augkd.models import Encoder, Generator, generator_channels


@dataclass
class DatafreeNets:
    """What one Module-1 iteration trains (G, E, S) and judges with (the frozen teacher)."""

    generator: Generator
    encoder: Encoder
    student: nn.Module
    teacher: nn.Module
    optimizers: dict[str, torch.optim.Optimizer]

    def trained(self) -> dict[str, nn.Module]:
        return {"generator": self.generator, "encoder": self.encoder, "student": self.student}


def build_datafree_nets(
    teacher: nn.Module,
    student: nn.Module,
    num_classes: int,
    image_size: int,
    config: Module1Config,
    device: torch.device,
    generator_channels: int = 3,
) -> DatafreeNets:
    generator = Generator(
        config.latent_size, image_size, config.generator_width, generator_channels
    ).to(device)
    encoder = Encoder(config.latent_size, image_size, num_classes).to(device)
    student.to(device)
    teacher.eval()
    optimizers = {
        "generator": torch.optim.Adam(generator.parameters(), lr=config.generator_lr),
        "encoder": torch.optim.Adam(encoder.parameters(), lr=config.encoder_lr),
        "student": torch.optim.Adam(student.parameters(), lr=config.student_lr),
    }
    return DatafreeNets(generator, encoder, student, teacher, optimizers)


@dataclass
class DatafreeInputs:
    """What Module 1 learns from (the frozen teacher) and distils into (the student S)."""

    teacher: nn.Module
    normalize: Normalize
    student: nn.Module
    num_classes: int
    image_size: int
    device: torch.device


def train_datafree(
    inputs: DatafreeInputs,
    settings: Module1Config,
    log: Callable[[str], None] = print,
    progress: Progress | None = None,
    on_step: StepHook | None = None,
) -> dict[str, Any]:
    """Returns state dicts of the best G and E (lowest L_G on a fixed z batch) and S0.
    ``on_step``: told ("module1", iterations done, iterations in all) after each iteration.

    ``progress``: where the stage resumes from (its last save, if any), and where it saves
    the whole state after every epoch; a resumed run goes on exactly as if never stopped."""
    nets = build_datafree_nets(
        inputs.teacher, inputs.student, inputs.num_classes, inputs.image_size, settings,
        inputs.device, datafree_channels(settings, inputs.normalize),
    )  # fmt: skip
    # Cosine decay over the stage's epochs, stepped once per epoch (release defect 3).
    schedulers = {
        name: torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, settings.epochs)
        for name, optimizer in nets.optimizers.items()
    }
    training = TrainingState(
        {
            **nets.trained(),
            **{f"{name}_optimizer": opt for name, opt in nets.optimizers.items()},
            **{f"{name}_scheduler": sched for name, sched in schedulers.items()},
        },
        device=inputs.device,
    )
    normalize = inputs.normalize
    bn_stats = BatchNormStatistics(inputs.teacher)
    fixed_z = torch.randn(settings.batch_size, settings.latent_size, device=inputs.device)
    resume_state = progress.load() if progress is not None else None
    best = BestSoFar(training, "loss", "min", resume_state)
    if resume_state is not None:
        fixed_z = resume_state["fixed_z"].to(inputs.device)
    else:
        _check_teacher_on_generated(nets, normalize, bn_stats, settings, fixed_z)
    loss_watch = LossWatch("module1.generator_lr")
    total = settings.epochs * settings.iters_per_epoch
    try:
        for epoch in range(best.first_epoch, settings.epochs):
            for iteration in range(settings.iters_per_epoch):
                train_iteration(nets, normalize, bn_stats, settings)
                if on_step is not None:
                    on_step("module1", epoch * settings.iters_per_epoch + iteration + 1, total)
            for scheduler in schedulers.values():
                scheduler.step()
            loss = _fixed_batch_loss(nets, normalize, bn_stats, settings, fixed_z)
            loss_watch.check(loss, f"Module 1 generator loss at epoch {epoch + 1}")
            log(f"module1 epoch {epoch + 1}/{settings.epochs} generator loss {loss:.4f}")
            best.offer(loss, epoch + 1, lambda: _copies(nets))
            if progress is not None:
                progress.save(epoch + 1, best.snapshot(epoch + 1, fixed_z=fixed_z))
    finally:
        bn_stats.remove()
    return cpu_copy(best.best)


def datafree_channels(settings: Module1Config, normalize: Normalize) -> int:
    """1 (grey) or 3 (RGB): what module1.generator_colour resolves to for a teacher's
    normalisation (a grey teacher's channels share one mean and std)."""
    mean, std = normalize.mean.flatten().tolist(), normalize.std.flatten().tolist()
    return generator_channels(settings.generator_colour, mean, std)


def _copies(nets: DatafreeNets) -> dict[str, Any]:
    return {name: cpu_copy(net.state_dict()) for name, net in nets.trained().items()}


def _check_teacher_on_generated(nets: DatafreeNets, normalize, bn_stats, config, fixed_z) -> None:
    """Before the first step: L_G on the untrained G must be finite. It is not when the
    teacher's eval-mode BatchNorm statistics do not fit its weights (a teacher trained for an
    epoch or two): layer by layer it amplifies G's images until its activations overflow, and
    Module 1 would stop at its first epoch naming module1.generator_lr, which cannot help."""
    loss = _fixed_batch_loss(nets, normalize, bn_stats, config, fixed_z)
    if not math.isfinite(loss):
        raise ModelError(
            f"The teacher's loss on generated images is {loss} before Module 1 trains (its "
            "activations overflow: its BatchNorm running statistics do not fit its weights, as "
            "after too few epochs of training); train the teacher longer or check "
            "teacher.checkpoint."
        )


def train_iteration(
    nets: DatafreeNets, normalize: Normalize, bn_stats: BatchNormStatistics, config: Module1Config
) -> None:
    """One generator step, then k student/encoder steps on fresh samples of the updated G."""
    _generator_step(nets, normalize, bn_stats, config)
    for _ in range(config.student_steps):
        _student_encoder_step(nets, normalize, bn_stats, config)


def _generator_objective(nets: DatafreeNets, normalize, bn_stats, config, z) -> torch.Tensor:
    """L_G on the images G(z); the teacher's BN hooks give the statistics term."""
    images = normalize(nets.generator(z))
    bn_stats.pop()
    teacher_logits = nets.teacher(images)
    bn_term = bn_stats.pop()
    return generator_loss(
        teacher_logits, nets.student(images), bn_term, config.balance_weight, config.bn_weight
    )


def _generator_step(nets: DatafreeNets, normalize, bn_stats, config) -> None:
    nets.generator.train()
    nets.student.eval()
    z = torch.randn(config.batch_size, config.latent_size, device=normalize.mean.device)
    loss = _generator_objective(nets, normalize, bn_stats, config, z)
    nets.optimizers["generator"].zero_grad(set_to_none=True)
    loss.backward()
    nets.optimizers["generator"].step()


def _student_encoder_step(nets: DatafreeNets, normalize, bn_stats, config) -> None:
    nets.student.train()
    nets.encoder.train()
    z = torch.randn(config.batch_size, config.latent_size, device=normalize.mean.device)
    with torch.no_grad():
        raw = nets.generator(z)
        teacher_logits = nets.teacher(normalize(raw))
        bn_stats.pop()
    student_loss = kl_teacher_student(teacher_logits, nets.student(normalize(raw))).mean()
    mu, logvar = nets.encoder(raw, teacher_logits.argmax(dim=1))
    inverse_loss = encoder_loss(mu, logvar, z, config.encoder_kl_weight)
    for name in ("student", "encoder"):
        nets.optimizers[name].zero_grad(set_to_none=True)
    (student_loss + inverse_loss).backward()
    nets.optimizers["student"].step()
    nets.optimizers["encoder"].step()


@torch.no_grad()
def _fixed_batch_loss(nets: DatafreeNets, normalize, bn_stats, config, fixed_z) -> float:
    nets.generator.eval()
    nets.student.eval()
    return float(_generator_objective(nets, normalize, bn_stats, config, fixed_z))

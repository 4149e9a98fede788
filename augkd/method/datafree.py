"""Module 1 — data-free learning: a generator of teacher-domain images, its encoder,
and a data-free-distilled student S0 (method.md, "Module 1")."""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

from augkd.config import Module1Config
from augkd.method.guards import check_finite
from augkd.method.losses import (
    BatchNormStatistics,
    encoder_loss,
    generator_loss,
    input_statistics,
    kl_teacher_student,
)
from augkd.models import Encoder, Generator
from augkd.runtime import Normalize


def train_datafree(
    teacher: nn.Module,
    student: nn.Module,
    normalize: Normalize,
    num_classes: int,
    image_size: int,
    config: Module1Config,
    device: torch.device,
    log=print,
) -> dict[str, Any]:
    """Returns state dicts of the best G and E (lowest L_G on a fixed z batch) and S0."""
    generator = Generator(config.latent_size, image_size, config.generator_width).to(device)
    encoder = Encoder(config.latent_size, image_size, num_classes).to(device)
    student.to(device)
    teacher.eval()
    optimizers = {
        "generator": torch.optim.Adam(generator.parameters(), lr=config.generator_lr),
        "encoder": torch.optim.Adam(encoder.parameters(), lr=config.encoder_lr),
        "student": torch.optim.Adam(student.parameters(), lr=config.student_lr),
    }
    # Cosine decay over the stage's epochs, stepped once per epoch (release defect 3).
    schedulers = [
        torch.optim.lr_scheduler.CosineAnnealingLR(opt, config.epochs)
        for opt in optimizers.values()
    ]
    bn_stats = BatchNormStatistics(teacher)
    fixed_z = torch.randn(config.batch_size, config.latent_size, device=device)
    best: dict[str, Any] = {"loss": float("inf")}
    try:
        for epoch in range(config.epochs):
            for _ in range(config.iters_per_epoch):
                _generator_step(
                    generator, teacher, student, normalize, bn_stats, config, optimizers
                )
                for _ in range(config.student_steps):
                    _student_encoder_step(
                        generator,
                        encoder,
                        teacher,
                        student,
                        normalize,
                        bn_stats,
                        config,
                        optimizers,
                    )
            for scheduler in schedulers:
                scheduler.step()
            loss = _fixed_batch_loss(
                generator, teacher, student, normalize, bn_stats, config, fixed_z
            )
            check_finite(
                loss, f"Module 1 generator loss at epoch {epoch + 1}", "module1.generator_lr"
            )
            log(f"module1 epoch {epoch + 1}/{config.epochs} generator loss {loss:.4f}")
            if loss < best["loss"]:
                best = {
                    "loss": loss,
                    "epoch": epoch + 1,
                    "generator": copy.deepcopy(generator.state_dict()),
                    "encoder": copy.deepcopy(encoder.state_dict()),
                    "student": copy.deepcopy(student.state_dict()),
                }
    finally:
        bn_stats.remove()
    return {name: _to_cpu(value) for name, value in best.items()}


def _generator_objective(generator, teacher, student, normalize, bn_stats, config, z):
    """L_G on the images G(z); the teacher's BN hooks give the statistics term."""
    images = normalize(generator(z))
    bn_stats.pop()
    teacher_logits = teacher(images)
    bn_term = bn_stats.pop()
    loss = generator_loss(
        teacher_logits, student(images), bn_term, config.balance_weight, config.bn_weight
    )
    if config.input_stats_weight > 0:
        loss = loss + config.input_stats_weight * input_statistics(images)
    return loss


def _generator_step(generator, teacher, student, normalize, bn_stats, config, optimizers) -> None:
    generator.train()
    student.eval()
    z = torch.randn(config.batch_size, config.latent_size, device=normalize.mean.device)
    loss = _generator_objective(generator, teacher, student, normalize, bn_stats, config, z)
    optimizers["generator"].zero_grad(set_to_none=True)
    loss.backward()
    optimizers["generator"].step()


def _student_encoder_step(
    generator, encoder, teacher, student, normalize, bn_stats, config, optimizers
) -> None:
    student.train()
    encoder.train()
    z = torch.randn(config.batch_size, config.latent_size, device=normalize.mean.device)
    with torch.no_grad():
        raw = generator(z)
        teacher_logits = teacher(normalize(raw))
        bn_stats.pop()
    student_loss = kl_teacher_student(teacher_logits, student(normalize(raw))).mean()
    mu, logvar = encoder(raw, teacher_logits.argmax(dim=1))
    inverse_loss = encoder_loss(mu, logvar, z, config.encoder_kl_weight)
    for name in ("student", "encoder"):
        optimizers[name].zero_grad(set_to_none=True)
    (student_loss + inverse_loss).backward()
    optimizers["student"].step()
    optimizers["encoder"].step()


@torch.no_grad()
def _fixed_batch_loss(generator, teacher, student, normalize, bn_stats, config, fixed_z) -> float:
    generator.eval()
    student.eval()
    return float(
        _generator_objective(generator, teacher, student, normalize, bn_stats, config, fixed_z)
    )


def _to_cpu(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: v.detach().cpu() for k, v in value.items()}
    return value

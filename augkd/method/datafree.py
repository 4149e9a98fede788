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
    resume_state: dict[str, Any] | None = None,
    on_epoch_end=None,
) -> dict[str, Any]:
    """Returns state dicts of the best G and E (lowest L_G on a fixed z batch) and S0.

    Resume hook: ``on_epoch_end(epoch, make_state)`` after every epoch, where ``make_state()``
    builds the whole progress (see ``_progress_state``); passing that dict back as
    ``resume_state`` continues after its epoch exactly as if never interrupted."""
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
    nets = {"generator": generator, "encoder": encoder, "student": student}
    first_epoch = 0
    if resume_state is not None:
        first_epoch, fixed_z, best = _resume(resume_state, nets, optimizers, schedulers, device)
    try:
        for epoch in range(first_epoch, config.epochs):
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
            if on_epoch_end is not None:
                on_epoch_end(
                    epoch + 1,
                    lambda e=epoch + 1, b=best: _progress_state(
                        e, nets, optimizers, schedulers, fixed_z, b
                    ),
                )
    finally:
        bn_stats.remove()
    return {name: _to_cpu(value) for name, value in best.items()}


def _generator_objective(generator, teacher, student, normalize, bn_stats, config, z):
    """L_G on the images G(z); the teacher's BN hooks give the statistics term."""
    images = normalize(generator(z))
    bn_stats.pop()
    teacher_logits = teacher(images)
    bn_term = bn_stats.pop()
    return generator_loss(
        teacher_logits, student(images), bn_term, config.balance_weight, config.bn_weight
    )


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


def _progress_state(epoch, nets, optimizers, schedulers, fixed_z, best) -> dict[str, Any]:
    """Everything the loop carries between epochs, on CPU, RNG states included."""
    device = fixed_z.device
    return {
        "epoch": epoch,
        "nets": {name: _to_cpu(net.state_dict()) for name, net in nets.items()},
        "optimizers": {name: copy.deepcopy(opt.state_dict()) for name, opt in optimizers.items()},
        "schedulers": [scheduler.state_dict() for scheduler in schedulers],
        "fixed_z": fixed_z.detach().cpu(),
        "best": {name: _to_cpu(value) for name, value in best.items()},
        "torch_rng": torch.get_rng_state(),
        "cuda_rng": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
    }


def _resume(state, nets, optimizers, schedulers, device) -> tuple[int, torch.Tensor, dict]:
    for name, net in nets.items():
        net.load_state_dict(state["nets"][name])
    for name, optimizer in optimizers.items():
        optimizer.load_state_dict(state["optimizers"][name])
    for scheduler, saved in zip(schedulers, state["schedulers"], strict=True):
        scheduler.load_state_dict(saved)
    torch.set_rng_state(state["torch_rng"])
    if device.type == "cuda" and state.get("cuda_rng") is not None:
        torch.cuda.set_rng_state(state["cuda_rng"], device)
    best = {
        name: {k: v.to(device) for k, v in value.items()} if isinstance(value, dict) else value
        for name, value in state["best"].items()
    }
    return int(state["epoch"]), state["fixed_z"].to(device), best

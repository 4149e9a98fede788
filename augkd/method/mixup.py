"""Module 3 — mixup learning: train the student on [x ; x_mix], moving from the
teacher domain to the student domain by the mixup schedule (method.md, "Module 3").

The same epoch loop trains every baseline; a ``BatchRecipe`` says what the student
sees and which loss it gets.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from augkd.basics.config import Module3Config
from augkd.data import StudentSplits, iterate_batches
from augkd.hardware.precision import MixedPrecision
from augkd.hardware.runtime import Normalize
from augkd.method.budget import StepBudget, step_budget
from augkd.method.guards import LossWatch, StepWatch
from augkd.method.losses import distillation_loss
from augkd.method.plans import MethodPlan, ce_shares
from augkd.method.schedules import mixup_schedule
from augkd.method.training_state import TrainingState, cpu_copy
from augkd.models.metrics import evaluate


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
    max_steps: int | None = None
    """Stop after this many optimizer steps (the last epoch of a step budget); None: all."""


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
    watch: StepWatch | None = None,
) -> torch.Tensor:
    """One epoch; returns the mean training loss as a device tensor (no per-batch sync).

    ``precision`` runs the forwards under autocast (fp16 with loss scaling); ``watch``
    keeps what the steps say about divergence."""
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
        if watch is not None:
            watch.after_step(loss, student.parameters(), not precision.scaler.is_enabled())
        total += loss.detach()
        batches += 1
        if batches == settings.max_steps:
            break
    return total / max(batches, 1)


def _first_teacher_row(real_share: float, mixed_share: float, rows: int, mixing: bool) -> int:
    """The teacher sees only a suffix of [x ; x_mix]: every row, the mixed half, or none."""
    if real_share < 1.0:
        return 0
    if mixing and mixed_share < 1.0:
        return rows // 2
    return rows


@dataclass
class Report:
    """One val pass of Module 3: what it reports, and what a resume or an export needs."""

    metrics: dict[str, float]
    history: list[dict[str, float]]
    """Every report so far (earlier runs' too, after a resume), this one last."""
    best_student: dict[str, torch.Tensor]
    make_state: Callable[[], dict[str, Any]]


def module3_budget(settings: Module3Config, train_size: int) -> StepBudget:
    return step_budget(settings.steps, settings.epochs, train_size, settings.batch_size)


def mixup_reports(
    student: nn.Module,
    teacher: nn.Module,
    normalize: Normalize,
    splits: StudentSplits,
    mixup_nets: MixupNets | None,
    settings: Module3Config,
    plan: MethodPlan,
    augment: bool,
    rng: torch.Generator,
    precision: MixedPrecision,
    constant: dict[str, float] | None = None,
    resume_state: dict[str, Any] | None = None,
    state_extra: dict[str, Any] | None = None,
    log: Callable[[str], None] = print,
) -> Iterator[Report]:
    """Module 3 (and every baseline's training), one ``Report`` per val pass: the student on
    [x ; x_mix] for the step budget, judged on val every ``val_every`` steps (at epoch ends,
    the last one always); test once, at the best-val weights, after the last. A generator,
    so that the seeds of one trial can advance in lockstep.

    ``constant`` rides on every report; ``state_extra`` on every resume state."""
    budget = module3_budget(settings, len(splits.train_y))
    optimizer = torch.optim.Adam(
        student.parameters(), lr=settings.lr, weight_decay=settings.weight_decay
    )
    training = TrainingState(
        {"student": student, "optimizer": optimizer, "grad_scaler": precision},
        {"batches": rng},
        splits.train_x.device,
    )
    history: list[dict[str, float]] = []
    best: dict[str, Any] = {"val_acc1": -1.0, "epoch": 0, "step": 0, "student": None}
    first_epoch, step, seconds = 0, 0, 0.0
    if resume_state is not None:
        training.restore(resume_state)
        history, best = list(resume_state["history"]), resume_state["best"]
        first_epoch = int(resume_state["epoch"])
        step, seconds = int(history[-1]["step"]), history[-1]["module3_seconds"]
        log(f"resuming module 3 after epoch {first_epoch}")
    schedule = plan.schedule or settings.schedule
    loss_watch = LossWatch("module3.lr", history[0]["train_loss"] if history else None)
    watch = StepWatch()
    losses: list[torch.Tensor] = []
    since_report, started, reported_epoch = 0, time.perf_counter(), first_epoch
    for epoch in range(first_epoch, budget.epochs):
        share = mixup_schedule(schedule, epoch, budget.epochs, settings.a, settings.b)
        shares = ce_shares(
            plan, settings.teacher_term, settings.ce_share, share, settings.teacher_fade
        )
        steps = budget.steps_in_epoch(epoch)
        epoch_settings = EpochSettings(
            share, shares, settings.kd_temperature, augment, settings.batch_size, steps
        )
        loss = train_epoch(
            student, teacher, normalize, optimizer, splits.train_x, splits.train_y,
            epoch_settings, rng, mixup_nets, precision, watch,
        )  # fmt: skip
        losses.append(loss)
        step, since_report = step + steps, since_report + steps
        last = epoch + 1 == budget.epochs
        if since_report < settings.val_interval() and not last:
            continue
        train_loss = float(torch.stack(losses).mean())
        watch.check(loss_watch, train_loss, epoch + 1, "Module 3")
        val = evaluate(student, splits.val_x, splits.val_y, normalize)
        if val["acc1"] > best["val_acc1"]:
            best = {"val_acc1": val["acc1"], "epoch": epoch + 1, "step": step,
                    "student": cpu_copy(student.state_dict())}  # fmt: skip
        elapsed = time.perf_counter() - started
        seconds += elapsed
        metrics = {
            "epoch": float(epoch + 1),
            "epochs": float(budget.epochs),
            "step": float(step),
            "steps": float(budget.steps),
            "train_loss": train_loss,
            "mixup_share": share,
            **{f"val_{name}": value for name, value in val.items()},
            "best_val_acc1": best["val_acc1"],
            "best_epoch": float(best["epoch"]),
            "best_step": float(best["step"]),
            "module3_seconds": seconds,
            "epoch_seconds": elapsed / max(1, epoch + 1 - reported_epoch),
            **(constant or {}),
        }
        if last:
            metrics.update(_test_at_best(student, best["student"], splits, normalize))
        history.append(metrics)
        log(f"epoch {epoch + 1}/{budget.epochs} step {step}/{budget.steps} s={share:.2f} "
            f"loss {train_loss:.3f} val acc1 {val['acc1']:.1f} "
            f"(best {best['val_acc1']:.1f} @ step {best['step']})")  # fmt: skip
        yield Report(
            metrics,
            list(history),
            best["student"],
            lambda e=epoch + 1, h=list(history), b=best: training.capture(
                epoch=e, history=h, best=b, best_student=b["student"], **(state_extra or {})
            ),
        )
        losses, since_report, started = [], 0, time.perf_counter()
        reported_epoch = epoch + 1


def _test_at_best(
    student: nn.Module, best_state: dict[str, torch.Tensor], splits: StudentSplits, normalize
) -> dict[str, float]:
    """The only place test data is touched: once, with the best-val weights (loaded into
    the student, whose training is over)."""
    student.load_state_dict(best_state)
    test = evaluate(student, splits.test_x, splits.test_y, normalize)
    return {f"test_{name}": value for name, value in test.items()}

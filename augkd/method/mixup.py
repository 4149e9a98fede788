"""Module 3 — mixup learning: train the student on [x ; x_mix], moving from the
teacher domain to the student domain by the mixup schedule (method.md, "Module 3").

The same epoch loop trains every baseline; a ``BatchRecipe`` says what the student
sees and which loss it gets.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from augkd.basics.config import Module3Config
from augkd.basics.metric_names import (
    BEST_EPOCH,
    BEST_STEP,
    BEST_VAL_ACC1,
    EPOCH,
    EPOCH_SECONDS,
    EPOCHS,
    MIXUP_SHARE,
    MODULE3_SECONDS,
    STEP,
    STEPS,
    TRAIN_LOSS,
)
from augkd.data import StudentSplits, iterate_batches
from augkd.hardware.precision import MixedPrecision
from augkd.hardware.runtime import Normalize
from augkd.method.budget import StepBudget, step_budget
from augkd.method.guards import LossWatch, StepWatch
from augkd.method.losses import distillation_loss
from augkd.method.plans import MethodPlan, ce_shares
from augkd.method.resume import BestSoFar
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


def first_share(settings: Module3Config, plan: MethodPlan, train_size: int) -> float | None:
    """Module 3's first s when its batches mix; None when they don't or s = 1 (x_mix = x)."""
    if plan.batches != "mixup":
        return None
    epochs = module3_budget(settings, train_size).epochs
    share = mixup_schedule(plan.schedule or settings.schedule, 0, epochs, settings.a, settings.b)
    return share if share < 1.0 else None


@dataclass
class MixupInputs:
    """What Module 3 trains (the student) and learns from: the frozen teacher, the splits,
    the frozen nets that build x_mix (None: no mixing), and the batches' random stream."""

    student: nn.Module
    teacher: nn.Module
    normalize: Normalize
    splits: StudentSplits
    nets: MixupNets | None
    rng: torch.Generator
    precision: MixedPrecision
    augment: bool = False


@dataclass
class Carried:
    """What rides along with Module 3's own results."""

    metrics: dict[str, float] = field(default_factory=dict)
    """On every report (the stages' timings, the diagnostics ...)."""
    state: dict[str, Any] = field(default_factory=dict)
    """On every resume state (what an export needs beside the weights)."""


def mixup_reports(
    inputs: MixupInputs,
    settings: Module3Config,
    plan: MethodPlan,
    carried: Carried | None = None,
    resume_state: dict[str, Any] | None = None,
    log: Callable[[str], None] = print,
) -> Iterator[Report]:
    """Module 3 (and every baseline's training), one ``Report`` per val pass: the student on
    [x ; x_mix] for the step budget, judged on val every ``val_every`` steps (at epoch ends,
    the last one always); test once, at the best-val weights, after the last. A generator,
    so that the seeds of one trial can advance in lockstep."""
    carried = carried or Carried()
    student, splits, normalize, rng = inputs.student, inputs.splits, inputs.normalize, inputs.rng
    budget = module3_budget(settings, len(splits.train_y))
    optimizer = torch.optim.Adam(
        student.parameters(), lr=settings.lr, weight_decay=settings.weight_decay
    )
    training = TrainingState(
        {"student": student, "optimizer": optimizer, "grad_scaler": inputs.precision},
        {"batches": rng},
        splits.train_x.device,
    )
    # The best so far, as resume states keep it (their format: not metric names).
    start = {"val_acc1": -1.0, "epoch": 0, "step": 0, "student": None}
    best = BestSoFar(training, "val_acc1", "max", resume_state, start)
    history: list[dict[str, float]] = []
    step, seconds = 0, 0.0
    if resume_state is not None:
        history = list(resume_state["history"])
        step, seconds = int(history[-1][STEP]), history[-1][MODULE3_SECONDS]
        log(f"resuming module 3 after epoch {best.first_epoch}")
    schedule = plan.schedule or settings.schedule
    loss_watch = LossWatch("module3.lr", history[0][TRAIN_LOSS] if history else None)
    watch = StepWatch()
    losses: list[torch.Tensor] = []
    since_report, started, reported_epoch = 0, time.perf_counter(), best.first_epoch
    for epoch in range(best.first_epoch, budget.epochs):
        share = mixup_schedule(schedule, epoch, budget.epochs, settings.a, settings.b)
        shares = ce_shares(
            plan, settings.teacher_term, settings.ce_share, share, settings.teacher_fade
        )
        steps = budget.steps_in_epoch(epoch)
        epoch_settings = EpochSettings(
            share, shares, settings.kd_temperature, inputs.augment, settings.batch_size, steps
        )
        loss = train_epoch(
            student, inputs.teacher, normalize, optimizer, splits.train_x, splits.train_y,
            epoch_settings, rng, inputs.nets, inputs.precision, watch,
        )  # fmt: skip
        losses.append(loss)
        step, since_report = step + steps, since_report + steps
        last = epoch + 1 == budget.epochs
        if since_report < settings.val_interval() and not last:
            continue
        train_loss = float(torch.stack(losses).mean())
        watch.check(loss_watch, train_loss, epoch + 1, "Module 3")
        val = evaluate(student, splits.val_x, splits.val_y, normalize)
        best.offer(val["acc1"], epoch + 1,
                   lambda at=step: {"step": at, "student": cpu_copy(student.state_dict())})  # fmt: skip
        elapsed = time.perf_counter() - started
        seconds += elapsed
        kept = best.best
        metrics = {
            EPOCH: float(epoch + 1),
            EPOCHS: float(budget.epochs),
            STEP: float(step),
            STEPS: float(budget.steps),
            TRAIN_LOSS: train_loss,
            MIXUP_SHARE: share,
            **{f"val_{name}": value for name, value in val.items()},
            BEST_VAL_ACC1: kept["val_acc1"],
            BEST_EPOCH: float(kept["epoch"]),
            BEST_STEP: float(kept["step"]),
            MODULE3_SECONDS: seconds,
            EPOCH_SECONDS: elapsed / max(1, epoch + 1 - reported_epoch),
            **carried.metrics,
        }
        if last:
            metrics.update(_test_at_best(student, kept["student"], splits, normalize))
        history.append(metrics)
        log(f"epoch {epoch + 1}/{budget.epochs} step {step}/{budget.steps} s={share:.2f} "
            f"loss {train_loss:.3f} val acc1 {val['acc1']:.1f} "
            f"(best {kept['val_acc1']:.1f} @ step {kept['step']})")  # fmt: skip
        yield Report(
            metrics,
            list(history),
            kept["student"],
            best.snapshot(
                epoch + 1, history=list(history), best_student=kept["student"], **carried.state
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

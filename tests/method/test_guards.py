"""Divergence beyond NaN: a loss that climbs far above its start without becoming NaN, or
gradients that are not finite, end a stage with the same sentence NaN gets."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from augkd.basics.config import load_config
from augkd.basics.errors import DivergedError
from augkd.data import load_student_splits
from augkd.hardware.precision import MixedPrecision
from augkd.hardware.runtime import Normalize
from augkd.method.guards import LossWatch, StepWatch
from augkd.method.mixup import MixupInputs, mixup_reports
from augkd.method.plans import METHOD_PLANS
from augkd.models import build_classifier


def test_module3_loss_that_climbs_without_nan_is_the_sentence_nan_gets():
    """At lr 1e6 the loss goes from 2.3 to about 1e12 and stays finite; it used to be
    reported, and its results written, as normal."""
    torch.manual_seed(0)
    config = load_config(
        None, ["method=ce", "module3.lr=1e6", "module3.steps=2", "module3.val_every=2"]
    )
    splits = load_student_splits(config.data, 0, torch.device("cpu"))
    classes = len(splits.class_names)
    student = build_classifier(config.student.arch, classes, config.data.image_size)
    teacher = build_classifier(config.student.arch, classes, config.data.image_size)
    inputs = MixupInputs(
        student, teacher, Normalize([0.5] * 3, [0.5] * 3), splits, None,
        torch.Generator().manual_seed(0), MixedPrecision("fp32", torch.device("cpu")),
    )  # fmt: skip
    reports = mixup_reports(inputs, config.module3, METHOD_PLANS["ce"], log=lambda _: None)
    with pytest.raises(DivergedError) as diverged:
        next(reports)
    message = str(diverged.value)
    assert message.startswith("Module 3 training loss at epoch 1 became ")
    assert ", far above its first value 2." in message
    assert message.endswith(" (training diverged); lower module3.lr or check the data.")


def test_gradients_that_are_not_finite_are_the_sentence_nan_gets():
    weight = nn.Parameter(torch.zeros(3))
    loss = weight.abs().sqrt().sum()  # finite (0), but its gradient at 0 is not
    loss.backward()
    watch = StepWatch()
    watch.after_step(loss, [weight], gradients=True)
    with pytest.raises(DivergedError) as diverged:
        watch.check(LossWatch("module3.lr"), float(loss.detach()), 1, "Module 3")
    assert str(diverged.value) in (
        f"Module 3 gradients at epoch 1 became {value} (training diverged); lower module3.lr "
        "or check the data."
        for value in ("inf", "nan")
    )


def test_a_loss_that_falls_or_wobbles_is_not_divergence():
    watch = LossWatch("module2.lr")
    for value in (-40.0, -45.0, 20.0, 900.0, -60.0):  # within 1000 times its size
        watch.check(value, "Module 2 anchor loss")
    with pytest.raises(DivergedError, match="became 1e\\+05, far above its first value -40"):
        watch.check(1e5, "Module 2 anchor loss")


def test_nan_keeps_its_sentence():
    with pytest.raises(DivergedError) as diverged:
        LossWatch("module3.lr", first=2.3).check(float("nan"), "Module 3 training loss at epoch 1")
    assert str(diverged.value) == (
        "Module 3 training loss at epoch 1 became nan (training diverged); lower module3.lr "
        "or check the data."
    )


def test_nan_at_the_first_step_keeps_the_sentence_of_its_epoch():
    watch = StepWatch()
    watch.after_step(torch.tensor(float("nan")), [], gradients=True)
    with pytest.raises(DivergedError) as diverged:
        watch.check(LossWatch("module3.lr"), float("nan"), 1, "Module 3")
    assert str(diverged.value) == (
        "Module 3 training loss at epoch 1 became nan (training diverged); lower module3.lr "
        "or check the data."
    )


def _overflowing_teacher(classes: int) -> nn.Module:
    """A teacher whose eval-mode activations on generated images overflow float32, as a
    resnet34 trained for one epoch did at release shapes (logits of 1e22 and an infinite
    BatchNorm-statistics term): its first conv scaled by 1e20."""
    teacher = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Conv2d(4, 4, 3),
        nn.BatchNorm2d(4), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, classes),
    )  # fmt: skip
    with torch.no_grad():
        teacher[0].weight.mul_(1e20)
    return teacher.eval().requires_grad_(False)


def test_a_teacher_that_overflows_on_generated_images_is_named_before_module1_trains():
    from augkd.basics.config import Module1Config, StudentConfig
    from augkd.basics.errors import ModelError
    from augkd.method.datafree import DatafreeInputs, train_datafree
    from augkd.models import build_student

    settings = Module1Config(epochs=1, iters_per_epoch=1, batch_size=4, latent_size=8,
                             generator_width=8)  # fmt: skip
    steps: list[int] = []
    with pytest.raises(ModelError) as refused:
        train_datafree(
            DatafreeInputs(
                _overflowing_teacher(3), Normalize([0.5] * 3, [0.25] * 3),
                build_student(StudentConfig(arch="tiny_cnn"), 3), 3, 8, torch.device("cpu"),
            ),
            settings, log=lambda _: None, on_step=lambda *step: steps.append(step),
        )  # fmt: skip
    assert str(refused.value).startswith("The teacher's loss on generated images is ")
    assert "before Module 1 trains" in str(refused.value)
    assert str(refused.value).endswith("train the teacher longer or check teacher.checkpoint.")
    assert steps == []  # refused before its first step

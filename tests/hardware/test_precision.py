"""Mixed precision on a CPU (autocast runs bf16 and fp16 there too): teacher forwards give
fp32 logits, Module 1's BatchNorm term stays fp32, fp16 scales its loss, resume stays exact."""

from __future__ import annotations

import pytest
import torch

from augkd.basics.config import with_overrides
from augkd.hardware.precision import AutocastModule, MixedPrecision
from augkd.method.losses import BatchNormStatistics
from augkd.models import build_classifier
from augkd.trial.pipeline import run_trial
from augkd.trial.stage_keys import stage_keys
from augkd.trial.teacher import load_teacher

CPU = torch.device("cpu")


def _quiet(_line: str) -> None:
    pass


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_autocast_teacher_gives_fp32_logits_and_fp32_batchnorm_term(precision):
    teacher = AutocastModule(
        build_classifier("small_cnn", 10).eval(), MixedPrecision(precision, CPU)
    )
    statistics = BatchNormStatistics(teacher)
    logits = teacher(torch.rand(4, 3, 16, 16))
    assert logits.dtype == torch.float32
    assert statistics.pop().dtype == torch.float32
    with MixedPrecision(precision, CPU).autocast():
        assert teacher.inner(torch.rand(2, 3, 16, 16)).dtype == MixedPrecision(precision, CPU).dtype


def test_bf16_trial_runs_and_keys_its_stages_apart_from_fp32(tiny_config, tmp_path):
    config = with_overrides(
        tiny_config,
        {"precision": "bf16", "method": "kd", "module3.epochs": 1, "data.split": [0.1, 0.1, 0.8]},
    )  # fmt: skip  (low-precision kernels are slow on a CPU: a small training split)
    result = run_trial(config, log=_quiet)
    assert result.metrics["epoch"] == 1.0 and 0.0 <= result.metrics["test_acc1"] <= 100.0
    teacher = load_teacher(config, CPU)
    fp32_key = stage_keys(with_overrides(config, {"precision": "fp32"}), teacher).module1
    assert stage_keys(config, teacher).module1 == fp32_key + "-bf16"


def test_fp16_resume_mid_module3_restores_the_loss_scale_exactly(tiny_config, tmp_path):
    config = with_overrides(
        tiny_config,
        {"precision": "fp16", "method": "ce", "module3.epochs": 2, "data.split": [0.1, 0.1, 0.8]},
    )  # fmt: skip
    states = {}

    def keep(metrics, make_state):
        states[int(metrics["epoch"])] = make_state()

    full = run_trial(config, on_epoch=keep, log=_quiet)
    assert (
        states[1]["stateful"]["grad_scaler"]["scale"] > 0
    )  # the GradScaler's state is checkpointed
    resumed = run_trial(config, resume_state=states[1], log=_quiet)
    assert resumed.metrics["train_loss"] == full.metrics["train_loss"]
    assert all(torch.equal(resumed.best_student[k], v) for k, v in full.best_student.items())

"""Module 1 and Module 2 resume from their own progress exactly: a lost node costs the
epochs since the last save, and the artifact is the one an uninterrupted run makes."""

from __future__ import annotations

import pytest
import torch

from augkd.basics.config import with_overrides
from augkd.data import load_student_splits
from augkd.hardware.runtime import seed_everything
from augkd.method.anchor import train_anchor
from augkd.method.datafree import train_datafree
from augkd.models import Encoder, Generator, build_student
from augkd.trial.teacher import load_teacher

CPU = torch.device("cpu")


class NodeLost(Exception):
    """Stands for the spot node going away right after a progress save."""


def _crash_after(epoch: int, saved: dict):
    def hook(done: int, make_state) -> None:
        saved["state"] = make_state()
        if done == epoch:
            raise NodeLost

    return hook


def _whole_and_resumed(run, lost_after: int) -> tuple[dict, dict, dict]:
    """An uninterrupted run; and one that loses its node after ``lost_after`` epochs and is
    resumed on a new node (another RNG state) from the progress saved there."""
    seed_everything(5)
    whole = run()
    seed_everything(5)
    saved: dict = {}
    with pytest.raises(NodeLost):
        run(on_epoch_end=_crash_after(lost_after, saved))
    seed_everything(123)
    return whole, run(resume_state=saved["state"]), saved["state"]


def _same(a, b) -> None:
    if isinstance(a, dict):
        assert a.keys() == b.keys()
        for key in a:
            _same(a[key], b[key])
    elif isinstance(a, torch.Tensor):
        assert torch.equal(a, b)
    else:
        assert a == b


@pytest.fixture
def stage_inputs(tiny_config):
    config = with_overrides(
        tiny_config,
        {"module1.epochs": 2, "module1.iters_per_epoch": 2, "module1.batch_size": 16,
         "module2.epochs": 2},
    )  # fmt: skip
    teacher = load_teacher(config, CPU)
    return config, teacher


@pytest.mark.slow
def test_module1_resumed_after_a_lost_node_matches_an_uninterrupted_run(stage_inputs):
    config, teacher = stage_inputs

    def run(**hooks):
        student = build_student(config.student, 10)
        return train_datafree(
            teacher.model, student, teacher.normalize, 10, config.data.image_size,
            config.module1, CPU, log=lambda _l: None, **hooks,
        )  # fmt: skip

    whole, resumed, progress = _whole_and_resumed(run, lost_after=1)
    assert progress["epoch"] == 1
    _same(whole, resumed)


@pytest.mark.slow
def test_module2_resumed_after_a_lost_node_matches_an_uninterrupted_run(stage_inputs):
    config, teacher = stage_inputs
    few = with_overrides(config, {"data.split": [0.2, 0.1, 0.7]}).data  # 180 train images
    splits = load_student_splits(few, config.seed, CPU)
    latent = config.module1.latent_size
    torch.manual_seed(0)
    generator = Generator(latent, config.data.image_size)
    encoder = Encoder(latent, config.data.image_size, 10)

    def run(**hooks):
        rng = torch.Generator().manual_seed(9)
        return train_anchor(
            encoder, generator, teacher.model, teacher.normalize, splits, 10, latent,
            config.module2, rng, log=lambda _l: None, **hooks,
        )  # fmt: skip

    whole, resumed, progress = _whole_and_resumed(run, lost_after=1)
    assert progress["epoch"] == 1
    _same(whole, resumed)

"""Module 1 and Module 2 resume from their own progress exactly: a lost node costs the
epochs since the last save, and the artifact is the one an uninterrupted run makes."""

from __future__ import annotations

import pytest
import torch

from augkd.basics.config import with_overrides
from augkd.data import load_student_splits
from augkd.hardware.runtime import seed_everything
from augkd.method.anchor import AnchorInputs, train_anchor
from augkd.method.datafree import DatafreeInputs, train_datafree
from augkd.models import Encoder, Generator, build_student
from augkd.trial.teacher import load_teacher

CPU = torch.device("cpu")


class NodeLost(Exception):
    """Stands for the spot node going away right after a progress save."""


class _Progress:
    """A stage's progress as the cache keeps it: the state saved after every epoch, and the
    one a resumed run starts from; the node is lost right after the save of ``lost_after``."""

    def __init__(self, resume_from: dict | None = None, lost_after: int | None = None) -> None:
        self.saved, self.resume_from, self.lost_after = resume_from, resume_from, lost_after

    def load(self) -> dict | None:
        return self.resume_from

    def save(self, epoch: int, make_state) -> None:
        self.saved = make_state()
        if epoch == self.lost_after:
            raise NodeLost


def _whole_and_resumed(run, lost_after: int) -> tuple[dict, dict, dict]:
    """An uninterrupted run; and one that loses its node after ``lost_after`` epochs and is
    resumed on a new node (another RNG state) from the progress saved there."""
    seed_everything(5)
    whole = run()
    seed_everything(5)
    lost = _Progress(lost_after=lost_after)
    with pytest.raises(NodeLost):
        run(lost)
    seed_everything(123)
    return whole, run(_Progress(resume_from=lost.saved)), lost.saved


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

    def run(progress=None):
        student = build_student(config.student, 10)
        inputs = DatafreeInputs(
            teacher.model, teacher.normalize, student, 10, config.data.image_size, CPU
        )
        return train_datafree(inputs, config.module1, lambda _l: None, progress)

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

    def run(progress=None):
        rng = torch.Generator().manual_seed(9)
        inputs = AnchorInputs(encoder, generator, teacher.model, teacher.normalize, splits, latent)
        return train_anchor(inputs, config.module2, rng, lambda _l: None, progress)

    whole, resumed, progress = _whole_and_resumed(run, lost_after=1)
    assert progress["epoch"] == 1
    _same(whole, resumed)

"""The generator draws grey images (three equal channels) for a teacher trained on grey
ones, and the Module-1 cache key says which generator an artifact holds."""

from __future__ import annotations

import pytest
import torch

from augkd.basics.config import Module1Config, with_overrides
from augkd.models import Generator, generator_channels
from augkd.trial.stage_keys import stage_keys
from augkd.trial.teacher import load_teacher


def test_a_grey_generator_draws_three_equal_channels():
    images = Generator(latent_size=8, image_size=16, width=8, channels=1)(torch.randn(4, 8))
    assert images.shape == (4, 3, 16, 16)
    assert torch.equal(images[:, 0], images[:, 1]) and torch.equal(images[:, 0], images[:, 2])
    rgb = Generator(latent_size=8, image_size=16, width=8)(torch.randn(4, 8))
    assert not torch.equal(rgb[:, 0], rgb[:, 1])


@pytest.mark.parametrize(
    ("colour", "mean", "std", "channels"),
    [
        ("auto", [0.3] * 3, [0.2] * 3, 1),  # a teacher trained on grey images
        ("auto", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], 3),  # ImageNet's
        ("grey", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], 1),
        ("rgb", [0.3] * 3, [0.2] * 3, 3),
    ],
)
def test_auto_follows_the_teachers_normalisation(colour, mean, std, channels):
    assert generator_channels(colour, mean, std) == channels


def test_every_module1_setting_and_the_generator_it_resolves_to_change_the_key(tiny_config):
    teacher = load_teacher(tiny_config, torch.device("cpu"))
    keys = {
        stage_keys(with_overrides(tiny_config, {f"module1.{name}": value}), teacher).module1
        for name, value in [("generator_colour", "grey"), ("generator_colour", "rgb"),
                            ("epochs", 3), ("student_steps", 3), ("batch_size", 32)]
    }  # fmt: skip
    assert len(keys) == 5
    for name in Module1Config.model_fields:  # nothing of Module 1 is left out of its key
        assert name in tiny_config.to_dict()["module1"]

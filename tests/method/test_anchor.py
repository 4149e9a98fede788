"""Module 2 at the cost of its networks: E(x) once, a step budget, a few val checks on a
fixed val subset, and the lowest val L_A kept."""

from __future__ import annotations

import torch

from augkd.basics.config import Module2Config
from augkd.hardware.runtime import Normalize
from augkd.method.anchor import (
    AnchorInputs,
    encode,
    module2_budget,
    train_anchor,
    val_check_epochs,
    val_subset,
)
from augkd.models import Encoder, Generator, build_classifier


def test_val_checks_are_spread_over_the_steps_and_always_judge_the_last_epoch():
    budget = module2_budget(Module2Config(steps=120), train_size=150)  # 2 steps an epoch
    checks = val_check_epochs(budget, 10)
    assert budget.epochs == 60 and checks == {6, 12, 18, 24, 30, 36, 42, 48, 54, 60}
    assert val_check_epochs(budget, 1) == {60}
    assert val_check_epochs(module2_budget(Module2Config(steps=3), 150), 10) == {1, 2}


def test_the_val_subset_is_fixed_by_its_seed_and_whole_when_val_is_small():
    assert torch.equal(val_subset(10, 512, seed=1), torch.arange(10))
    first, again = val_subset(1000, 64, seed=3), val_subset(1000, 64, seed=3)
    assert torch.equal(first, again) and len(first.unique()) == 64
    assert not torch.equal(first, val_subset(1000, 64, seed=4))


def test_latents_encoded_once_equal_the_encoder_applied_batch_by_batch():
    torch.manual_seed(0)
    encoder = Encoder(8, 16, 10).eval()
    images = torch.randint(0, 256, (40, 3, 16, 16), dtype=torch.uint8)
    labels = torch.randint(0, 10, (40,))
    with torch.no_grad():
        one_by_one = torch.cat([encoder(images[i : i + 1].float() / 255, labels[i : i + 1])[0]
                                for i in range(40)])  # fmt: skip
    torch.testing.assert_close(encode(encoder, images, labels), one_by_one, rtol=1e-4, atol=1e-5)


class _Splits:
    def __init__(self, train: int, val: int) -> None:
        generator = torch.Generator().manual_seed(0)
        self.train_x = torch.randint(0, 256, (train, 3, 16, 16), generator=generator).byte()
        self.train_y = torch.arange(train) % 10
        self.val_x = torch.randint(0, 256, (val, 3, 16, 16), generator=generator).byte()
        self.val_y = torch.arange(val) % 10
        self.class_names = [str(c) for c in range(10)]


def test_module2_takes_its_steps_and_keeps_the_anchor_net_with_the_lowest_val_loss():
    torch.manual_seed(0)
    generator, encoder = Generator(8, 16, 8), Encoder(8, 16, 10)
    teacher = build_classifier("tiny_cnn", 10)
    settings = Module2Config(steps=5, batch_size=16, val_checks=3, val_images=20)
    losses: list[float] = []
    inputs = AnchorInputs(
        encoder, generator, teacher, Normalize([0.5] * 3, [0.5] * 3), _Splits(40, 50), 8
    )
    best = train_anchor(
        inputs, settings, torch.Generator().manual_seed(1),
        log=lambda line: losses.append(float(line.rsplit(" ", 1)[-1])),
    )  # fmt: skip
    # 40 images in batches of 16: 3 steps an epoch, so 5 steps are 2 epochs, both judged.
    assert len(losses) == 2 and abs(best["val_loss"] - min(losses)) < 1e-4
    assert best["epoch"] == 1 + losses.index(min(losses))

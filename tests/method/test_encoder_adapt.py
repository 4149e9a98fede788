"""Encoder adaptation: E learns to invert the frozen G on student images, once per seed
and data, and every plan that uses E (augkd, no_anchor, no_mixup) reads the same one."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from augkd.basics.config import with_overrides
from augkd.data import as_unit_float, load_student_splits
from augkd.method.encoder_adapt import AdaptInputs, adapt_encoder
from augkd.models import Encoder
from augkd.storage.cache import StageCache
from augkd.trial.pipeline import run_trial

CPU = torch.device("cpu")


def _quiet(_line: str) -> None:
    pass


def _reconstruction_error(encoder, generator, images, labels) -> float:
    with torch.no_grad():
        mu, _ = encoder.eval()(images, labels)
        return float((generator(mu) - images).pow(2).mean())


def _pca_decoder(train_images: torch.Tensor, latent: int) -> nn.Module:
    """A G whose best inverse is known: z -> mean + z @ top-`latent` principal components."""
    flat = train_images.flatten(1)
    mean = flat.mean(0)
    _, _, components = torch.linalg.svd(flat - mean, full_matrices=False)
    linear = nn.Linear(latent, flat.shape[1])
    with torch.no_grad():
        linear.weight.copy_(components[:latent].T)
        linear.bias.copy_(mean)
    return nn.Sequential(linear, nn.Unflatten(1, train_images.shape[1:])).eval()


@pytest.mark.slow
def test_adaptation_lowers_reconstruction_error_and_leaves_the_generator_alone(tiny_config):
    config = with_overrides(tiny_config, {"encoder_adapt.epochs": 3, "encoder_adapt.lr": 3e-3})
    splits = load_student_splits(config.data, config.seed, CPU)
    latent, size = config.module1.latent_size, config.data.image_size
    torch.manual_seed(0)
    generator = _pca_decoder(as_unit_float(splits.train_x), latent)
    encoder = Encoder(latent, size, 10)
    generator_before = {k: v.clone() for k, v in generator.state_dict().items()}
    val_x, val_y = as_unit_float(splits.val_x), splits.val_y
    before = _reconstruction_error(encoder, generator, val_x, val_y)

    fits = AdaptInputs(encoder, generator, splits.train_x, splits.train_y)
    state = adapt_encoder(fits, config.encoder_adapt, 0.0, torch.Generator().manual_seed(1), _quiet)

    after = _reconstruction_error(encoder, generator, val_x, val_y)
    assert after < 0.5 * before  # on held-out val images, not the ones fitted
    assert all(torch.equal(v, generator.state_dict()[k]) for k, v in generator_before.items())
    assert state.keys() == encoder.state_dict().keys()
    assert all(not p.requires_grad for p in encoder.parameters())


@pytest.mark.slow
def test_one_adapted_encoder_per_seed_serves_every_plan_that_mixes(tiny_config, tmp_path):
    cache = StageCache(str(tmp_path))
    for method in ("augkd", "no_anchor", "no_mixup"):
        run_trial(with_overrides(tiny_config, {"method": method}), cache=cache, log=_quiet)
    produced = [e.stage for e in cache.events if not e.hit]
    read = [e.stage for e in cache.events if e.hit]
    assert produced.count("encoder") == 1
    assert read.count("encoder") == 2  # no_anchor and no_mixup read augkd's


@pytest.mark.slow
def test_no_adaptation_means_no_encoder_stage_and_the_old_stage2_key(tiny_config, tmp_path):
    from augkd.trial.stage_keys import stage_keys
    from augkd.trial.teacher import load_teacher

    off = with_overrides(tiny_config, {"encoder_adapt.epochs": 0})
    cache = StageCache(str(tmp_path))
    run_trial(off, cache=cache, log=_quiet)
    assert "encoder" not in [e.stage for e in cache.events]
    teacher = load_teacher(off, CPU, cache=StageCache(str(tmp_path)))
    # the adaptation's own settings do not split Module 2's cache when it is off
    changed = with_overrides(off, {"encoder_adapt.lr": 0.5})
    assert stage_keys(off, teacher).module2 == stage_keys(changed, teacher).module2
    on = with_overrides(tiny_config, {"encoder_adapt.epochs": 1})
    assert stage_keys(on, teacher).module2 != stage_keys(off, teacher).module2

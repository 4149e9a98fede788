"""Module 2 — anchor learning: train AnchorNet with the teacher's uncertainty
(method.md, "Module 2"). E, G and T stay frozen."""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

from augkd.config import Module2Config
from augkd.data import as_unit_float, iterate_batches
from augkd.method.guards import check_finite
from augkd.method.losses import anchor_loss, vae_kl
from augkd.models import AnchorNet
from augkd.runtime import Normalize


def anchor_batch_loss(
    anchor_net: AnchorNet,
    encoder: nn.Module,
    generator: nn.Module,
    teacher: nn.Module,
    normalize: Normalize,
    images: torch.Tensor,
    labels: torch.Tensor,
    config: Module2Config,
) -> torch.Tensor:
    with torch.no_grad():
        z, _ = encoder(images, labels)
    anchor, mask = anchor_net(z, labels)
    teacher_logits = teacher(normalize(generator(anchor)))
    return anchor_loss(
        teacher_logits,
        labels,
        mask,
        config.anchor_weight,
        config.temperature,
        config.ce_weight,
        config.mask_weight,
        config.invariant,
    )


def adapt_encoder(
    encoder: nn.Module,
    generator: nn.Module,
    splits,
    config: Module2Config,
    kl_weight: float,
    generator_rng: torch.Generator,
    log=print,
) -> dict[str, torch.Tensor]:
    """Fit E to invert the frozen G on student-domain train images.

    Module 1 trains E on G's own images only, so E(x) of a real image is out of its
    training distribution; this makes G(E(x)) the teacher-domain image closest to x."""
    generator.eval().requires_grad_(False)
    encoder.train().requires_grad_(True)
    optimizer = torch.optim.Adam(encoder.parameters(), lr=config.encoder_adapt_lr)
    for epoch in range(config.encoder_adapt_epochs):
        total, batches = 0.0, 0
        for images, labels in iterate_batches(
            splits.train_x, splits.train_y, config.batch_size, generator_rng, augment=True
        ):
            if len(labels) < 2:
                continue
            mu, logvar = encoder(images, labels)
            loss = (generator(mu) - images).pow(2).mean() + kl_weight * vae_kl(mu, logvar)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += float(loss)
            batches += 1
        log(
            f"module2 encoder epoch {epoch + 1}/{config.encoder_adapt_epochs} loss {total / max(batches, 1):.4f}"
        )
    encoder.eval().requires_grad_(False)
    return {k: v.detach().cpu() for k, v in encoder.state_dict().items()}


def train_anchor(
    encoder: nn.Module,
    generator: nn.Module,
    teacher: nn.Module,
    normalize: Normalize,
    splits,
    num_classes: int,
    latent_size: int,
    config: Module2Config,
    generator_rng: torch.Generator,
    log=print,
    encoder_kl_weight: float = 0.0,
) -> dict[str, Any]:
    """Returns the AnchorNet state with the lowest L_A on the val split (and E's state
    when it was adapted to the student domain first)."""
    device = splits.train_x.device
    adapted = None
    if config.encoder_adapt_epochs > 0:
        adapted = adapt_encoder(
            encoder, generator, splits, config, encoder_kl_weight, generator_rng, log
        )
    anchor_net = AnchorNet(latent_size, num_classes).to(device)
    for frozen in (encoder, generator, teacher):
        frozen.eval()
        frozen.requires_grad_(False)
    optimizer = torch.optim.Adam(anchor_net.parameters(), lr=config.lr)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, config.epochs)
    best: dict[str, Any] = {"val_loss": float("inf")}
    for epoch in range(config.epochs):
        anchor_net.train()
        for images, labels in iterate_batches(
            splits.train_x, splits.train_y, config.batch_size, generator_rng
        ):
            if len(labels) < 2:
                continue  # BatchNorm in the mask net needs two samples
            loss = anchor_batch_loss(
                anchor_net, encoder, generator, teacher, normalize, images, labels, config
            )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        scheduler.step()
        val_loss = _val_loss(anchor_net, encoder, generator, teacher, normalize, splits, config)
        check_finite(val_loss, f"Module 2 anchor loss at epoch {epoch + 1}", "module2.lr")
        log(f"module2 epoch {epoch + 1}/{config.epochs} val anchor loss {val_loss:.4f}")
        if val_loss < best["val_loss"]:
            best = {
                "val_loss": val_loss,
                "epoch": epoch + 1,
                "anchor_net": {k: v.detach().cpu() for k, v in anchor_net.state_dict().items()},
            }
    if adapted is not None:
        best["encoder"] = adapted
    return copy.deepcopy(best)


@torch.no_grad()
def _val_loss(anchor_net, encoder, generator, teacher, normalize, splits, config) -> float:
    anchor_net.eval()
    total, count = 0.0, 0
    for start in range(0, len(splits.val_y), 512):
        images = as_unit_float(splits.val_x[start : start + 512])
        labels = splits.val_y[start : start + 512]
        loss = anchor_batch_loss(
            anchor_net, encoder, generator, teacher, normalize, images, labels, config
        )
        total += float(loss) * len(labels)
        count += len(labels)
    return total / count

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
from augkd.method.losses import anchor_loss
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
    resume_state: dict[str, Any] | None = None,
    on_epoch_end=None,
) -> dict[str, Any]:
    """Returns the AnchorNet state with the lowest L_A on the val split.

    Resume hook as in Module 1: ``on_epoch_end(epoch, make_state)`` after every epoch, and
    ``resume_state`` (a dict ``make_state()`` built) continues after its epoch exactly."""
    device = splits.train_x.device
    anchor_net = AnchorNet(latent_size, num_classes).to(device)
    for frozen in (encoder, generator, teacher):
        frozen.eval()
        frozen.requires_grad_(False)
    optimizer = torch.optim.Adam(anchor_net.parameters(), lr=config.lr)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, config.epochs)
    best: dict[str, Any] = {"val_loss": float("inf")}
    first_epoch = 0
    if resume_state is not None:
        anchor_net.load_state_dict(resume_state["anchor_net"])
        optimizer.load_state_dict(resume_state["optimizer"])
        scheduler.load_state_dict(resume_state["scheduler"])
        generator_rng.set_state(resume_state["generator_rng"])
        torch.set_rng_state(resume_state["torch_rng"])
        best, first_epoch = copy.deepcopy(resume_state["best"]), int(resume_state["epoch"])
    for epoch in range(first_epoch, config.epochs):
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
        if on_epoch_end is not None:
            on_epoch_end(
                epoch + 1,
                lambda e=epoch + 1, b=best: {
                    "epoch": e,
                    "anchor_net": {k: v.detach().cpu() for k, v in anchor_net.state_dict().items()},
                    "optimizer": copy.deepcopy(optimizer.state_dict()),
                    "scheduler": scheduler.state_dict(),
                    "generator_rng": generator_rng.get_state(),
                    "torch_rng": torch.get_rng_state(),
                    "best": copy.deepcopy(b),
                },
            )
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

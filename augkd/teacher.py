"""Teachers: train on teacher-domain data, save with their metadata, load safely.

A checkpoint is a plain dict (loadable with ``weights_only=True``) that carries the
architecture, class names, input size and normalisation next to the weights.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from augkd.cache import StageCache
from augkd.config import Config
from augkd.data import iterate_batches, load_teacher_domain, split_indices
from augkd.errors import DataError, ModelError
from augkd.metrics import evaluate
from augkd.models import build_classifier
from augkd.runtime import Normalize
from augkd.storage import read_bytes, write_bytes

CHECKPOINT_FORMAT = "augkd-teacher-v1"
REQUIRED_KEYS = ("format", "arch", "class_names", "image_size", "mean", "std", "state_dict")


@dataclass
class Teacher:
    model: nn.Module
    class_names: list[str]
    image_size: int
    normalize: Normalize
    identity: str
    """Content hash of the checkpoint: part of every stage-cache key."""
    metadata: dict[str, Any]


def default_cache_root(config: Config) -> str:
    return config.teacher.cache_dir or os.path.join(
        os.path.expanduser(os.environ.get("AUGKD_CACHE", "~/.cache/augkd")), "stages"
    )


def train_teacher(config: Config, device: torch.device, log=print) -> dict[str, Any]:
    """Train ``config.teacher.arch`` on the teacher domains; returns the checkpoint dict."""
    domain = load_teacher_domain(config.data)
    generator = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    parts = split_indices(len(domain), (0.9, 0.05, 0.05), seed=0)
    train_rows = torch.cat([parts["train"], parts["val"]])
    x = domain.images[train_rows].to(device).float() / 255
    y = domain.labels[train_rows].to(device)
    held_x = domain.images[parts["test"]].to(device).float() / 255
    held_y = domain.labels[parts["test"]].to(device)
    mean = x.mean(dim=(0, 2, 3)).tolist()
    std = x.std(dim=(0, 2, 3)).clamp_min(1e-3).tolist()
    normalize = Normalize(mean, std).to(device)
    model = build_classifier(config.teacher.arch, len(domain.class_names)).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.teacher.lr, weight_decay=1e-4)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, config.teacher.epochs)
    for epoch in range(config.teacher.epochs):
        model.train()
        for images, labels in iterate_batches(x, y, 64, generator, augment=config.data.augment):
            loss = F.cross_entropy(model(normalize(images)), labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        scheduler.step()
        if (epoch + 1) % 10 == 0 or epoch + 1 == config.teacher.epochs:
            log(f"teacher epoch {epoch + 1}/{config.teacher.epochs} loss {loss.item():.3f}")
    held_out = evaluate(model, held_x, held_y, normalize)
    return {
        "format": CHECKPOINT_FORMAT,
        "arch": config.teacher.arch,
        "class_names": list(domain.class_names),
        "image_size": config.data.image_size,
        "mean": mean,
        "std": std,
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "teacher_domains": list(config.data.teacher_domains),
        "held_out_acc1": held_out["acc1"],
    }


def save_teacher(checkpoint: dict[str, Any], path: str | Path) -> None:
    """Written whole or not at all (Ctrl-C leaves no truncated checkpoint)."""
    buffer = io.BytesIO()
    torch.save(checkpoint, buffer)
    write_bytes(str(path), buffer.getvalue())


def teacher_from_checkpoint(checkpoint: Any, source: str, device: torch.device) -> Teacher:
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != CHECKPOINT_FORMAT:
        raise ModelError(
            f"Teacher checkpoint '{source}' is not an augkd teacher; create one with `augkd teacher`."
        )
    missing = [key for key in REQUIRED_KEYS if key not in checkpoint]
    if missing:
        raise ModelError(
            f"Teacher checkpoint '{source}' lacks {missing}; re-save it with `augkd teacher`."
        )
    model = build_classifier(checkpoint["arch"], len(checkpoint["class_names"]))
    try:
        model.load_state_dict(checkpoint["state_dict"])
    except RuntimeError as error:
        raise ModelError(
            f"Teacher checkpoint '{source}' does not fit its own arch: {error}"
        ) from None
    model.to(device).eval()
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    blob = io.BytesIO()
    torch.save(checkpoint["state_dict"], blob)
    identity = hashlib.sha256(blob.getvalue()).hexdigest()[:16]
    metadata = {k: v for k, v in checkpoint.items() if k != "state_dict"}
    normalize = Normalize(checkpoint["mean"], checkpoint["std"]).to(device)
    return Teacher(
        model,
        list(checkpoint["class_names"]),
        checkpoint["image_size"],
        normalize,
        identity,
        metadata,
    )


def load_teacher(config: Config, device: torch.device, cache: StageCache | None = None) -> Teacher:
    """The configured teacher; the built-in benchmark's is trained once and cached."""
    if config.teacher.checkpoint is not None:
        source = config.teacher.checkpoint
        try:
            raw = read_bytes(source)
        except (FileNotFoundError, OSError) as error:
            raise ModelError(
                f"Teacher checkpoint '{source}' cannot be read ({error}); check teacher.checkpoint."
            ) from None
        try:
            checkpoint = torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True)
        except Exception as error:
            raise ModelError(
                f"Teacher checkpoint '{source}' {why_unloadable(error)}; save the teacher "
                "with `augkd teacher` (plain tensors and metadata only)."
            ) from None
        return teacher_from_checkpoint(checkpoint, source, device)
    if config.data.source != "digits":
        raise ModelError(
            "config key 'teacher.checkpoint' is required for real datasets; train one with "
            "`augkd teacher --config FILE --out teacher.pt`."
        )
    cache = cache or StageCache(default_cache_root(config))
    key = config.digest("teacher") + "-" + _digits_teacher_key(config)
    checkpoint = cache.get_or_create("teacher", key, lambda: train_teacher(config, device))
    return teacher_from_checkpoint(checkpoint, f"built-in digits teacher {key}", device)


def why_unloadable(error: Exception) -> str:
    """Why torch.load(weights_only=True) refused a file, without torch's advice to
    load it unsafely."""
    found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", str(error))
    if found:
        return f"holds Python objects ({found.group(1)}), which augkd does not unpickle"
    return "is not a PyTorch checkpoint, or is damaged"


def _digits_teacher_key(config: Config) -> str:
    data = config.data
    text = f"{data.source}|{data.teacher_domains}|{data.image_size}|{data.augment}"
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def check_classes_match(teacher: Teacher, class_names: list[str], image_size: int) -> None:
    """Refuse a teacher whose classes or input size differ from the student data's."""
    if teacher.class_names != list(class_names):
        only_teacher = sorted(set(teacher.class_names) - set(class_names))
        only_data = sorted(set(class_names) - set(teacher.class_names))
        detail = (
            f"only in teacher: {only_teacher}; only in data: {only_data}"
            if only_teacher or only_data
            else "same names in a different order"
        )
        raise DataError(
            f"The teacher's {len(teacher.class_names)} classes do not match the student data's "
            f"{len(class_names)} ({detail}); use a teacher trained on the same classes."
        )
    if teacher.image_size != image_size:
        raise DataError(
            f"The teacher expects {teacher.image_size}px images but data.image_size is "
            f"{image_size}; set data.image_size={teacher.image_size}."
        )

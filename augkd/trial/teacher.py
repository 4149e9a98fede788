"""Teachers: the configured one, or the built-in benchmark's, trained on teacher-domain data
once and cached; built from its checkpoint dict (augkd.storage.teacher_checkpoint reads and
writes the files) into a frozen network with its normalisation.
"""

from __future__ import annotations

import hashlib
import io
import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from augkd.basics.config import Config
from augkd.basics.errors import DataError, ModelError
from augkd.basics.eta import StepHook
from augkd.data import BUILT_IN_LOADERS, iterate_batches, load_teacher_domain, split_indices
from augkd.hardware.free_memory import check_fits
from augkd.hardware.runtime import Normalize, gpu_memory_share
from augkd.method.memory import estimate_teacher_training
from augkd.models import build_classifier
from augkd.models.metrics import evaluate
from augkd.models.teacher import Teacher
from augkd.storage.cache import StageCache
from augkd.storage.locations import user_cache_dir
from augkd.storage.teacher_checkpoint import CHECKPOINT_FORMAT, REQUIRED_KEYS, read_checkpoint

BUILT_IN_SOURCES = tuple(BUILT_IN_LOADERS)
"""Benchmarks whose teacher augkd trains itself (once, cached); others need a checkpoint."""
TEACHER_BATCH = 64


def default_cache_root(config: Config) -> str:
    """teacher.cache_dir, else ``augkd/stages`` under the user's cache folder."""
    return config.teacher.cache_dir or str(user_cache_dir() / "stages")


def teacher_split(n: int) -> dict[str, torch.Tensor]:
    """The built-in teacher trains on "train" and "val" of its domain and reports its
    held-out Acc@1 on "test" (5 %), the same rows on every run."""
    return split_indices(n, (0.9, 0.05, 0.05), seed=0)


def train_teacher(
    config: Config, device: torch.device, log=print, on_step: StepHook | None = None
) -> dict[str, Any]:
    """Train ``config.teacher.arch`` on the teacher domains; returns the checkpoint dict.
    ``on_step``: told ("teacher", steps done, steps in all) after every batch (progress)."""
    domain = load_teacher_domain(config.data)
    estimate = estimate_teacher_training(config, len(domain.class_names), len(domain))
    check_fits([estimate], device, gpu_memory_share(device))  # before the model allocates
    generator = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    parts = teacher_split(len(domain))
    train_rows = torch.cat([parts["train"], parts["val"]])
    x = domain.images[train_rows].to(device).float() / 255
    y = domain.labels[train_rows].to(device)
    held_x = domain.images[parts["test"]].to(device).float() / 255
    held_y = domain.labels[parts["test"]].to(device)
    mean = x.mean(dim=(0, 2, 3)).tolist()
    std = x.std(dim=(0, 2, 3)).clamp_min(1e-3).tolist()
    normalize = Normalize(mean, std).to(device)
    model = build_classifier(
        config.teacher.arch, len(domain.class_names), pretrained=config.teacher.pretrained
    ).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.teacher.lr, weight_decay=1e-4)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, config.teacher.epochs)
    total, done = config.teacher.epochs * teacher_steps_per_epoch(len(y)), 0
    for epoch in range(config.teacher.epochs):
        model.train()
        for images, labels in iterate_batches(
            x, y, TEACHER_BATCH, generator, augment=config.data.augment
        ):
            loss = teacher_step(model, optimizer, normalize, images, labels)
            done += 1
            if on_step is not None:
                on_step("teacher", done, total)
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
        "small_input": True,
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "teacher_domains": list(config.data.teacher_domains),
        "held_out_acc1": held_out["acc1"],
    }


def teacher_steps_per_epoch(train_images: int) -> int:
    return math.ceil(train_images / TEACHER_BATCH)


def teacher_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    normalize: Normalize,
    images: torch.Tensor,
    labels: torch.Tensor,
) -> torch.Tensor:
    """One optimizer step of the built-in teacher (also what --estimate times)."""
    loss = F.cross_entropy(model(normalize(images)), labels)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss


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
    model = build_classifier(
        checkpoint["arch"],
        len(checkpoint["class_names"]),
        small_input=bool(checkpoint.get("small_input", True)),
    )
    fit_state_dict(model, checkpoint["state_dict"], source, checkpoint.get("metadata_file"))
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


def load_teacher(
    config: Config,
    device: torch.device,
    cache: StageCache | None = None,
    on_step: StepHook | None = None,
) -> Teacher:
    """The configured teacher: its checkpoint, or the built-in benchmark's, trained once and
    cached (``on_step``: its training's progress)."""
    if config.teacher.checkpoint is None:
        source, checkpoint = _built_in_checkpoint(config, device, cache, on_step)
    else:
        source = config.teacher.checkpoint
        checkpoint = read_checkpoint(source, cache)
    return teacher_from_checkpoint(checkpoint, source, device)


def _built_in_checkpoint(
    config: Config, device: torch.device, cache: StageCache | None, on_step: StepHook | None
) -> tuple[str, dict[str, Any]]:
    """(what to call it, the checkpoint) of the built-in benchmark's teacher."""
    if config.data.source not in BUILT_IN_SOURCES:
        raise ModelError(
            "config key 'teacher.checkpoint' is required for real datasets; train one with "
            "`augkd teacher --config FILE --out teacher.pt`."
        )
    key = built_in_teacher_key(config)

    def train() -> dict[str, Any]:  # only when no producer stored it yet
        return train_teacher(config, device, on_step=on_step)

    cache = cache or StageCache(default_cache_root(config))
    checkpoint = cache.get_or_create("teacher", key, train)
    return f"built-in {config.data.source} teacher {key}", checkpoint


def built_in_teacher_key(config: Config) -> str:
    """The stage-cache key of the built-in benchmark's teacher."""
    digits = _digits_teacher_key(config)
    return f"{config.digest('teacher')}-{digits}"


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


def fit_state_dict(
    model: nn.Module, state: dict[str, torch.Tensor], source: str, meta_file: str | None
) -> None:
    """Load weights into the architecture, or say in one sentence why they do not fit."""
    fix = f"check arch in '{meta_file}'" if meta_file else "re-save it with `augkd teacher`"
    expected = model.state_dict()
    missing = [key for key in expected if key not in state]
    unexpected = [key for key in state if key not in expected]
    if missing or unexpected:
        raise ModelError(
            f"Teacher weights '{source}' do not fit their architecture ({len(missing)} missing "
            f"keys such as {missing[:1]}, {len(unexpected)} unexpected such as "
            f"{unexpected[:1]}); {fix}."
        )
    wrong = [key for key in expected if state[key].shape != expected[key].shape]
    head = _head_keys(model)
    if wrong and set(wrong) <= head:
        outputs = state[sorted(head)[-1]].shape[0]
        classes = expected[sorted(head)[-1]].shape[0]
        raise ModelError(
            f"Teacher weights '{source}' have {outputs} outputs but {classes} class names are "
            f"listed for them; list one class name per output, in output order."
        )
    if wrong:
        key = wrong[0]
        raise ModelError(
            f"Teacher weights '{source}' do not fit their architecture: '{key}' has shape "
            f"{list(state[key].shape)} where it expects {list(expected[key].shape)}; {fix}."
        )
    model.load_state_dict(state)


def _head_keys(model: nn.Module) -> set[str]:
    """State-dict keys of the last Linear layer: the one sized by the number of classes."""
    last = [name for name, module in model.named_modules() if isinstance(module, nn.Linear)][-1:]
    return {f"{name}.{p}" for name in last for p in ("weight", "bias")} & set(model.state_dict())

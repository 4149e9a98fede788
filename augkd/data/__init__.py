"""Data: decode once, split by seed, keep tensors on the training device."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from augkd.basics.config import DataConfig
from augkd.basics.errors import ConfigError, DataError
from augkd.data.types import LabelledImages

if TYPE_CHECKING:
    from augkd.storage.cache import StageCache


BUILT_IN_LOADERS: dict[str, tuple[str, str]] = {
    "digits": ("augkd.data.digits", "load_digits_domain"),
    "fonts": ("augkd.data.fonts", "load_fonts_domain"),
    "forms": ("augkd.data.forms", "load_forms_domain"),
    "tablet": ("augkd.data.tablet", "load_tablet_domain"),
}
"""Built-in benchmarks (no download): source -> (module, loader of one domain at a size),
imported only when used (the fonts renderers need matplotlib and fontTools)."""


@dataclass
class StudentSplits:
    """Student-domain train/val/test on the training device: images uint8 [N, 3, S, S]
    (4x less memory than float; ``as_unit_float`` converts each batch), labels int64."""

    train_x: torch.Tensor
    train_y: torch.Tensor
    val_x: torch.Tensor
    val_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    class_names: list[str]
    indices: dict[str, torch.Tensor]
    """Row indices into the decoded domain, per split (to prove they never overlap)."""


def as_unit_float(images: torch.Tensor) -> torch.Tensor:
    """Images as float in [0, 1] whatever their storage: uint8 is scaled, floats pass through.

    Every consumer of split images calls this before a network sees them, so splits may
    be kept as uint8 on the device (4x less memory) without touching the consumers."""
    if images.dtype == torch.uint8:
        return images.float().div_(255)
    return images


def load_domain(config: DataConfig, domain: str, cache: StageCache | None = None) -> LabelledImages:
    """Decode one domain of the configured source.

    With a stage cache, a folder or list-file domain (local or s3://) is listed, and its
    decoded uint8 tensor is a "domain" artifact keyed by the listing and the image size:
    fetched and decoded once, then read by every trial and node."""
    if config.source in BUILT_IN_LOADERS:
        module, function = BUILT_IN_LOADERS[config.source]
        return getattr(importlib.import_module(module), function)(domain, config.image_size)
    if config.root is None:
        raise ConfigError(f"config key 'data.root' must name the {config.source} dataset folder.")
    from augkd.data import real

    if config.source == "torchvision":
        return real.load_torchvision(
            domain, config.root, config.image_size, download=config.download
        )
    if config.source == "listfile":  # VisDA lists name images relative to the list's own folder.
        plan = real.scan_list_file(config.root.rstrip("/") + "/" + domain)
    else:
        plan = real.scan_image_folders(config.root, [domain])
    if cache is None:
        return real.decode_plan(plan, config.image_size)
    stored = cache.get_or_create(
        "domain",
        f"{plan.key}-{config.image_size}px",
        lambda: _as_artifact(real.decode_plan(plan, config.image_size)),
    )
    return LabelledImages(stored["images"], stored["labels"], list(stored["class_names"]))


def _as_artifact(domain: LabelledImages) -> dict:
    return {"images": domain.images, "labels": domain.labels, "class_names": domain.class_names}


def load_teacher_domain(config: DataConfig, cache: StageCache | None = None) -> LabelledImages:
    """All teacher domains merged (used only to train a teacher, never by the method)."""
    parts = [load_domain(config, domain, cache) for domain in config.teacher_domains]
    for domain, part in zip(config.teacher_domains[1:], parts[1:], strict=True):
        if part.class_names != parts[0].class_names:
            raise ConfigError(
                f"Teacher domain '{domain}' has classes {part.class_names}, unlike "
                f"'{config.teacher_domains[0]}' ({parts[0].class_names}); use domains of one dataset."
            )
    return LabelledImages(
        torch.cat([p.images for p in parts]),
        torch.cat([p.labels for p in parts]),
        parts[0].class_names,
    )


def split_indices(n: int, shares: tuple[float, float, float], seed: int) -> dict[str, torch.Tensor]:
    """A seeded permutation cut into disjoint train/val/test index sets."""
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    n_train = round(shares[0] * n)
    n_val = round(shares[1] * n)
    return {
        "train": order[:n_train],
        "val": order[n_train : n_train + n_val],
        "test": order[n_train + n_val :],
    }


def per_class_split_indices(
    labels: torch.Tensor, per_class: int, shares: tuple[float, float, float], seed: int
) -> dict[str, torch.Tensor]:
    """``per_class`` seeded train images of every class; the rest split into val and test
    in the ratio of the val and test shares (scarce labels, large val/test)."""
    generator = torch.Generator().manual_seed(seed)
    train, rest = [], []
    for c in labels.unique().tolist():
        rows = (labels == c).nonzero().flatten()
        if len(rows) <= per_class:
            raise DataError(
                f"Class '{c}' has {len(rows)} images, too few for data.train_per_class="
                f"{per_class}; lower it or leave it unset to split by data.split."
            )
        rows = rows[torch.randperm(len(rows), generator=generator)]
        train.append(rows[:per_class])
        rest.append(rows[per_class:])
    pool = torch.cat(rest)
    pool = pool[torch.randperm(len(pool), generator=generator)]
    n_val = round(len(pool) * shares[1] / (shares[1] + shares[2]))
    return {"train": torch.cat(train), "val": pool[:n_val], "test": pool[n_val:]}


def check_splits(
    config: DataConfig, domain: LabelledImages, indices: dict[str, torch.Tensor]
) -> None:
    """Splits whose numbers would mislead: val or test too small to measure anything (one
    image reports Acc 0 or 100), or a class the student never trains on."""
    for part in ("val", "test"):
        count = len(indices[part])
        if count < config.min_eval_images:
            images = "image" if count == 1 else "images"
            raise ConfigError(
                f"Student domain '{config.student_domain}' leaves {count} {part} {images} with "
                f"data.split={list(config.split)}, fewer than "
                f"data.min_eval_images={config.min_eval_images}, so its accuracies would mean "
                "little; add images, give val and test larger shares, or lower "
                "data.min_eval_images."
            )
    trained = set(domain.labels[indices["train"]].tolist())
    missing = [name for c, name in enumerate(domain.class_names) if c not in trained]
    if missing:
        raise DataError(
            f"Student domain '{config.student_domain}' has no train image of class "
            f"{', '.join(repr(m) for m in missing[:5])} with data.split={list(config.split)}; "
            "add images of it or give train a larger share."
        )


def load_student_splits(
    config: DataConfig, seed: int, device: torch.device, cache: StageCache | None = None
) -> StudentSplits:
    domain = load_domain(config, config.student_domain, cache)
    if config.train_per_class is None:
        indices = split_indices(len(domain), config.split, seed)
    else:
        indices = per_class_split_indices(domain.labels, config.train_per_class, config.split, seed)
    if min(len(part) for part in indices.values()) == 0:
        raise ConfigError(
            f"Student domain '{config.student_domain}' has {len(domain)} images, too few for "
            f"data.split={list(config.split)}; add images or change the split."
        )
    check_splits(config, domain, indices)

    def take(part: str) -> tuple[torch.Tensor, torch.Tensor]:
        rows = indices[part]
        return domain.images[rows].to(device), domain.labels[rows].to(device)

    train_x, train_y = take("train")
    val_x, val_y = take("val")
    test_x, test_y = take("test")
    return StudentSplits(
        train_x, train_y, val_x, val_y, test_x, test_y, domain.class_names, indices
    )


def random_translate(images: torch.Tensor, pad: int, generator: torch.Generator) -> torch.Tensor:
    """Per-sample random shifts by up to ``pad`` pixels, on the tensor's own device.

    One gather from a strided view of all windows (5x faster than indexing rows and
    columns separately on a CPU)."""
    b, _c, h, w = images.shape
    padded = torch.nn.functional.pad(images, (pad, pad, pad, pad), mode="replicate")
    offsets = torch.randint(0, 2 * pad + 1, (2, b), generator=generator).to(images.device)
    windows = padded.unfold(2, h, 1).unfold(3, w, 1)  # [b, c, rows, cols, h, w]
    return windows[torch.arange(b, device=images.device), :, offsets[0], offsets[1]]


def iterate_batches(
    x: torch.Tensor,
    y: torch.Tensor,
    batch_size: int,
    generator: torch.Generator,
    augment: bool = False,
):
    """One shuffled epoch of (x, y) batches; the last partial batch is kept."""
    order = torch.randperm(len(y), generator=generator).to(x.device)
    pad = max(1, x.shape[-1] // 8)
    for start in range(0, len(y), batch_size):
        rows = order[start : start + batch_size]
        images = as_unit_float(x[rows])
        if augment:
            images = random_translate(images, pad, generator)
        yield images, y[rows]

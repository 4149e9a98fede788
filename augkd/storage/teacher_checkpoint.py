"""A teacher's checkpoint file: written whole, read back safely, at a local path or a URI.

An augkd checkpoint is a plain dict (loadable with ``weights_only=True``) that carries the
architecture, class names, input size and normalisation next to the weights. A teacher
trained elsewhere ("bring your own") is a torchvision state dict plus a small YAML beside it
(same name, ``.yaml``) holding the same metadata; it is read as the same dict. What the dict
becomes (a network and its normalisation) is augkd.trial.teacher's.
"""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

import torch

from augkd.basics.errors import ModelError
from augkd.storage.cache import StageCache
from augkd.storage.files import read_bytes, write_bytes

CHECKPOINT_FORMAT = "augkd-teacher-v1"
REQUIRED_KEYS = ("format", "arch", "class_names", "image_size", "mean", "std", "state_dict")
SIDECAR_KEYS = ("arch", "class_names", "image_size", "mean", "std")
SIDECAR_OPTIONAL = {"small_input": False}
"""A teacher trained elsewhere keeps torchvision's stem unless its YAML says otherwise."""


def save_teacher(checkpoint: dict[str, Any], path: str | Path) -> None:
    """Written whole or not at all (Ctrl-C leaves no truncated checkpoint)."""
    buffer = io.BytesIO()
    torch.save(checkpoint, buffer)
    write_bytes(str(path), buffer.getvalue())


def read_checkpoint(source: str, cache: StageCache | None) -> dict[str, Any]:
    """A teacher checkpoint file, loaded safely; a plain state dict with the YAML beside it."""
    try:
        raw = cache.read_source(source) if cache is not None else read_bytes(source)
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
    return _with_sidecar(checkpoint, source) if _is_state_dict(checkpoint) else checkpoint


def why_unloadable(error: Exception) -> str:
    """Why torch.load(weights_only=True) refused a file, without torch's advice to
    load it unsafely."""
    found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", str(error))
    if found:
        return f"holds Python objects ({found.group(1)}), which augkd does not unpickle"
    return "is not a PyTorch checkpoint, or is damaged"


def sidecar_path(weights: str) -> str:
    """``teachers/resnet34.pt`` -> ``teachers/resnet34.yaml`` (also for URIs)."""
    folder, _, name = weights.rpartition("/")
    stem = name.rsplit(".", 1)[0] if "." in name else name
    return f"{folder}/{stem}.yaml" if folder else f"{stem}.yaml"


def _is_state_dict(checkpoint: Any) -> bool:
    return (
        isinstance(checkpoint, dict)
        and "format" not in checkpoint
        and bool(checkpoint)
        and all(isinstance(value, torch.Tensor) for value in checkpoint.values())
    )


def _with_sidecar(state_dict: dict[str, torch.Tensor], source: str) -> dict[str, Any]:
    """A torchvision state dict and the YAML beside it, as an augkd checkpoint dict."""
    import yaml

    meta_file = sidecar_path(source)
    try:
        text = read_bytes(meta_file).decode()
    except (FileNotFoundError, OSError):
        raise ModelError(
            f"Teacher weights '{source}' are a plain state dict, but '{meta_file}' beside them "
            f"is missing; write it with the keys {', '.join(SIDECAR_KEYS)}."
        ) from None
    try:
        meta = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ModelError(f"Teacher YAML '{meta_file}' is not valid YAML ({error}).") from None
    if not isinstance(meta, dict):
        raise ModelError(f"Teacher YAML '{meta_file}' must be a mapping of {SIDECAR_KEYS}.")
    missing = [key for key in SIDECAR_KEYS if key not in meta]
    if missing:
        raise ModelError(
            f"Teacher YAML '{meta_file}' lacks the key '{missing[0]}'; it needs "
            f"{', '.join(SIDECAR_KEYS)}."
        )
    unknown = sorted(set(meta) - set(SIDECAR_KEYS) - set(SIDECAR_OPTIONAL))
    if unknown:
        raise ModelError(
            f"Teacher YAML '{meta_file}' has the unknown key '{unknown[0]}'; allowed keys are "
            f"{', '.join([*SIDECAR_KEYS, *SIDECAR_OPTIONAL])}."
        )
    names = meta["class_names"]
    if not isinstance(names, list) or not names:
        raise ModelError(f"Teacher YAML '{meta_file}': class_names must be a non-empty list.")
    for key in ("mean", "std"):
        if not (isinstance(meta[key], list) and len(meta[key]) == 3):
            raise ModelError(f"Teacher YAML '{meta_file}': {key} must list 3 numbers (R, G, B).")
    prefix = "module."  # saved from DataParallel / DistributedDataParallel
    if all(key.startswith(prefix) for key in state_dict):
        state_dict = {key[len(prefix) :]: value for key, value in state_dict.items()}
    return {
        "format": CHECKPOINT_FORMAT,
        **SIDECAR_OPTIONAL,
        **{key: meta[key] for key in meta},
        "class_names": [str(name) for name in names],
        "state_dict": state_dict,
        "metadata_file": meta_file,
    }

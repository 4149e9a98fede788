"""Loaders for real datasets at a user-given path, each decoded once into ``LabelledImages``.

Folder layouts (Office-31, Office-Home), VisDA-style list files and the torchvision digit
sets (MNIST, USPS, SVHN) all end up as one uint8 tensor [N, 3, S, S] resized to
``image_size``, so the rest of augkd never touches files again.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from augkd.data.types import LabelledImages
from augkd.errors import DataError

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp"})
_EXT_TEXT = "/".join(sorted(ext.lstrip(".") for ext in IMAGE_EXTENSIONS))
_DIGIT_CLASSES = [str(i) for i in range(10)]
_TENSOR_CHUNK = 2048  # images resized per batch for in-memory datasets, to bound peak memory
_DECODE_ERRORS = (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError)


# --------------------------------------------------------------------------- decoding


def _require_path(path: Path) -> None:
    """Fail early with the path the user gave, rather than deep inside a loader."""
    if not path.exists():
        raise DataError(
            f"Data path '{path}' does not exist; check data.root (or the list file path) "
            "points at the dataset folder."
        )


def _decode(path: Path, image_size: int) -> np.ndarray:
    """Decode one file to an RGB uint8 array [S, S, 3], or name the file that failed."""
    try:
        with Image.open(path) as img:
            # JPEG can decode at a reduced scale directly, which is much faster for big photos.
            img.draft("RGB", (image_size, image_size))
            rgb = img.convert("RGB")
            if rgb.size != (image_size, image_size):
                # PIL's bilinear filter widens its support when shrinking, i.e. it antialiases.
                rgb = rgb.resize((image_size, image_size), Image.Resampling.BILINEAR)
            return np.array(rgb, dtype=np.uint8)  # writable copy, safe for torch.from_numpy
    except _DECODE_ERRORS as err:
        raise DataError(
            f"Image '{path}' could not be decoded ({err}); remove or replace the file."
        ) from err


def _decode_all(paths: Sequence[Path], image_size: int) -> torch.Tensor:
    """Decode every path exactly once in a thread pool into one preallocated uint8 tensor."""
    out = torch.empty((len(paths), 3, image_size, image_size), dtype=torch.uint8)
    workers = min(32, (os.cpu_count() or 1) + 4)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        decoded = pool.map(functools.partial(_decode, image_size=image_size), paths)
        for index, array in enumerate(decoded):
            out[index] = torch.from_numpy(array).permute(2, 0, 1)
    return out


def _resize_tensor(images: torch.Tensor, image_size: int) -> torch.Tensor:
    """Resize uint8 [N, C, H, W] (C = 1 or 3) to RGB [N, 3, S, S], chunk by chunk."""
    count = images.shape[0]
    out = torch.empty((count, 3, image_size, image_size), dtype=torch.uint8)
    for start in range(0, count, _TENSOR_CHUNK):
        chunk = images[start : start + _TENSOR_CHUNK]
        if chunk.shape[-2:] != (image_size, image_size):
            resized = F.interpolate(
                chunk.float(),
                size=(image_size, image_size),
                mode="bilinear",
                align_corners=False,
                antialias=True,
            )
            chunk = resized.round_().clamp_(0, 255).to(torch.uint8)
        out[start : start + chunk.shape[0]] = chunk  # broadcasts grayscale to 3 channels
    return out


# --------------------------------------------------------------------------- folders


def _is_visible(path: Path) -> bool:
    """Skip hidden entries such as '.DS_Store' or macOS '._x.jpg' forks, which are not images."""
    return not path.name.startswith(".")


def _class_dirs(domain_dir: Path) -> list[Path]:
    subdirs = sorted(p for p in domain_dir.iterdir() if p.is_dir() and _is_visible(p))
    # Office-31 nests its classes one level deeper: <domain>/images/<class>/...
    if len(subdirs) == 1 and subdirs[0].name == "images":
        subdirs = sorted(p for p in subdirs[0].iterdir() if p.is_dir() and _is_visible(p))
    return subdirs


def _images_in(folder: Path) -> list[Path]:
    return sorted(
        p
        for p in folder.rglob("*")
        if p.is_file() and _is_visible(p) and p.suffix.lower() in IMAGE_EXTENSIONS
    )


def load_image_folders(root: str | Path, domains: list[str], image_size: int) -> LabelledImages:
    """Load ``root/<domain>/<class>/<image>`` folders, merging domains under one class list.

    Several domains are merged so a teacher can be trained on e.g. amazon+webcam; every
    domain must hold the same class folders so that label indices mean the same thing.
    """
    root = Path(root)
    _require_path(root)
    if not domains:
        raise DataError(f"No domains were given for '{root}'; list at least one domain folder.")

    per_domain: list[tuple[str, dict[str, Path]]] = []
    for domain in domains:
        domain_dir = root / domain
        if not domain_dir.is_dir():
            existing = sorted(p.name for p in root.iterdir() if p.is_dir() and _is_visible(p))
            raise DataError(
                f"Domain folder '{domain_dir}' does not exist; domains found under '{root}' "
                f"are: {', '.join(existing) or 'none'}."
            )
        classes = {p.name: p for p in _class_dirs(domain_dir)}
        if not classes:
            raise DataError(
                f"No images found under '{domain_dir}'; expected class folders "
                f"'{domain_dir}/<class>/<image>' holding {_EXT_TEXT} files."
            )
        per_domain.append((domain, classes))

    first_domain, first_classes = per_domain[0]
    for domain, classes in per_domain[1:]:
        if classes.keys() != first_classes.keys():
            missing = sorted(first_classes.keys() - classes.keys())
            extra = sorted(classes.keys() - first_classes.keys())
            raise DataError(
                f"Domain '{domain}' has different classes from domain '{first_domain}' "
                f"(missing: {', '.join(missing) or 'none'}; extra: {', '.join(extra) or 'none'}); "
                "give every domain the same class folders."
            )

    class_names = sorted(first_classes)
    paths: list[Path] = []
    labels: list[int] = []
    for _, classes in per_domain:
        for label, name in enumerate(class_names):
            found = _images_in(classes[name])
            if not found:
                raise DataError(
                    f"Class folder '{classes[name]}' holds no {_EXT_TEXT} images; "
                    "add images or remove the folder from every domain."
                )
            paths.extend(found)
            labels.extend([label] * len(found))

    images = _decode_all(paths, image_size)
    return LabelledImages(images, torch.tensor(labels, dtype=torch.int64), class_names)


# --------------------------------------------------------------------------- list files


def _parse_list(list_path: Path, base: Path) -> tuple[list[Path], list[int], list[str | None]]:
    """Read '<path> <label>' lines; also return each image's folder name for class naming."""
    paths: list[Path] = []
    labels: list[int] = []
    folders: list[str | None] = []
    text = list_path.read_text(encoding="utf-8", errors="replace")
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped:
            continue
        parts = stripped.rsplit(None, 1)  # the path itself may contain spaces
        if len(parts) != 2 or not parts[1].isdigit():
            raise DataError(
                f"List file '{list_path}' line {number} is malformed ({stripped!r}); "
                "each line must be '<image path> <non-negative integer label>'."
            )
        given = Path(parts[0])
        full = given if given.is_absolute() else base / given
        if not full.is_file():
            raise DataError(
                f"Image '{full}' listed in '{list_path}' line {number} does not exist; "
                "fix the path or the root it is relative to."
            )
        if given.is_absolute():
            folders.append(given.parent.name or None)
        else:
            folders.append(given.parts[0] if len(given.parts) > 1 else None)
        paths.append(full)
        labels.append(int(parts[1]))
    return paths, labels, folders


def _names_from_folders(labels: list[int], folders: list[str | None]) -> list[str]:
    """Name classes after their image folders (VisDA: 'aeroplane/x.jpg') when unambiguous."""
    count = max(labels) + 1
    fallback = [f"class_{i}" for i in range(count)]
    seen: dict[int, set[str | None]] = {}
    for label, folder in zip(labels, folders, strict=True):
        seen.setdefault(label, set()).add(folder)
    names: list[str] = []
    for label in range(count):
        options = seen.get(label, set())
        folder = next(iter(options)) if len(options) == 1 else None
        if folder is None:
            return fallback
        names.append(folder)
    return names if len(set(names)) == count else fallback


def load_list_file(
    list_path: str | Path,
    image_size: int,
    root: str | Path | None = None,
    class_names: list[str] | None = None,
) -> LabelledImages:
    """Load a VisDA-2017 style list of '<path> <label>' lines, paths relative to ``root``.

    ``root`` defaults to the list file's folder, which is where VisDA keeps its lists.
    """
    list_path = Path(list_path)
    _require_path(list_path)
    if not list_path.is_file():
        raise DataError(f"List file '{list_path}' is a folder; pass the path of the list file.")
    base = list_path.parent if root is None else Path(root)
    _require_path(base)

    paths, labels, folders = _parse_list(list_path, base)
    if not paths:
        raise DataError(
            f"No images found in list file '{list_path}'; "
            "add lines of the form '<image path> <label>'."
        )
    if class_names is not None:
        if len(class_names) <= max(labels):
            raise DataError(
                f"List file '{list_path}' uses label {max(labels)} but only "
                f"{len(class_names)} class names were given; pass one name per label."
            )
        names = list(class_names)
    else:
        names = _names_from_folders(labels, folders)

    images = _decode_all(paths, image_size)
    return LabelledImages(images, torch.tensor(labels, dtype=torch.int64), names)


# --------------------------------------------------------------------------- torchvision

_SPLITS = {
    "mnist": ("train", "test"),
    "usps": ("train", "test"),
    "svhn": ("train", "test", "extra"),
}


def _not_found(name: str, root: Path) -> DataError:
    return DataError(
        f"The {name} dataset was not found under '{root}'; set data.download=true "
        "(download=True) to fetch it, or point data.root at a folder that has it."
    )


def _unreadable(name: str, root: Path, err: Exception) -> DataError:
    return DataError(
        f"The {name} files under '{root}' could not be read ({err}); delete them and "
        "set data.download=true to fetch them again."
    )


def _load_mnist(root: Path, split: str, download: bool) -> tuple[torch.Tensor, torch.Tensor]:
    from torchvision.datasets import MNIST

    try:
        dataset = MNIST(str(root), train=split == "train", download=download)
    except RuntimeError as err:
        if "not found" in str(err).lower():
            raise _not_found("mnist", root) from err
        raise _unreadable("mnist", root, err) from err
    except (OSError, ValueError, TypeError, AssertionError) as err:
        raise _unreadable("mnist", root, err) from err
    return dataset.data.unsqueeze(1), dataset.targets.to(torch.int64)


def _load_usps(root: Path, split: str, download: bool) -> tuple[torch.Tensor, torch.Tensor]:
    from torchvision.datasets import USPS

    filename = USPS.split_list[split][1]
    if not download and not (root / filename).is_file():
        raise _not_found("usps", root)
    try:
        dataset = USPS(str(root), train=split == "train", download=download)
    except (OSError, ValueError, EOFError, RuntimeError) as err:
        raise _unreadable("usps", root, err) from err
    images = torch.from_numpy(np.ascontiguousarray(dataset.data)).unsqueeze(1)
    return images, torch.as_tensor(dataset.targets, dtype=torch.int64)


def _load_svhn(root: Path, split: str, download: bool) -> tuple[torch.Tensor, torch.Tensor]:
    from torchvision.datasets import SVHN

    path = root / SVHN.split_list[split][1]
    if path.is_file():
        # Read an existing .mat directly: torchvision would md5 the whole file (hundreds of MB)
        # on every load and refuse copies that differ from the official bytes.
        import scipy.io

        try:
            mat = scipy.io.loadmat(str(path))
            data, labels = np.asarray(mat["X"]), np.asarray(mat["y"])
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise _unreadable("svhn", root, err) from err
        if data.ndim != 4 or data.shape[2] != 3:
            raise _unreadable("svhn", root, ValueError(f"X has shape {data.shape}"))
        images = torch.from_numpy(np.ascontiguousarray(data.transpose(3, 2, 0, 1)))
        targets = torch.from_numpy(labels.astype(np.int64).reshape(-1))
        targets[targets == 10] = 0  # SVHN stores the digit 0 as label 10
        return images.to(torch.uint8), targets
    if not download:
        raise _not_found("svhn", root)
    try:
        dataset = SVHN(str(root), split=split, download=True)
    except (OSError, ValueError, RuntimeError) as err:
        raise _unreadable("svhn", root, err) from err
    images = torch.from_numpy(np.ascontiguousarray(dataset.data))
    return images, torch.as_tensor(dataset.labels, dtype=torch.int64)


_TORCHVISION_LOADERS: dict[str, Callable[[Path, str, bool], tuple[torch.Tensor, torch.Tensor]]] = {
    "mnist": _load_mnist,
    "usps": _load_usps,
    "svhn": _load_svhn,
}


def load_torchvision(
    name: str,
    root: str | Path,
    image_size: int,
    split: str = "train",
    download: bool = False,
) -> LabelledImages:
    """Load MNIST, USPS or SVHN from torchvision's on-disk format, as 3-channel images.

    Tensors are read whole and resized in batches rather than image by image, for speed;
    nothing is downloaded unless ``download`` is set.
    """
    key = name.lower()
    if key not in _TORCHVISION_LOADERS:
        raise DataError(
            f"Unknown torchvision dataset '{name}'; use one of: {', '.join(_TORCHVISION_LOADERS)}."
        )
    if split not in _SPLITS[key]:
        raise DataError(
            f"Unknown split '{split}' for {key}; use one of: {', '.join(_SPLITS[key])}."
        )
    root = Path(root)
    if download:
        root.mkdir(parents=True, exist_ok=True)
    images, labels = _TORCHVISION_LOADERS[key](root, split, download)
    if images.shape[0] == 0:
        raise DataError(
            f"The {key} {split} split under '{root}' holds no images; "
            "delete the files and set data.download=true."
        )
    return LabelledImages(_resize_tensor(images, image_size), labels, list(_DIGIT_CLASSES))


REAL_SOURCES: dict[str, Callable[..., LabelledImages]] = {
    "folders": load_image_folders,
    "listfile": load_list_file,
    "mnist": functools.partial(load_torchvision, "mnist"),
    "usps": functools.partial(load_torchvision, "usps"),
    "svhn": functools.partial(load_torchvision, "svhn"),
}
"""Source name (as in ``data.source``) → loader; the digit loaders take (root, image_size, ...)."""

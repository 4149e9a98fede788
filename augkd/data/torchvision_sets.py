"""The torchvision digit sets (MNIST, USPS, SVHN) read from torchvision's on-disk format at
a local ``data.root``, as 3-channel images at ``image_size``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from augkd.basics.errors import DataError
from augkd.data.images import resize_tensor
from augkd.data.types import LabelledImages

_DIGIT_CLASSES = [str(i) for i in range(10)]

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
    if "://" in str(root):
        raise DataError(
            f"data.root '{root}' is a URI, but torchvision's {key} format is read from a local "
            "folder; copy it to each node, or convert it to image folders (data.source=folders)."
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
    return LabelledImages(resize_tensor(images, image_size), labels, list(_DIGIT_CLASSES))

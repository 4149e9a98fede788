"""Loaders for real datasets at a user-given path, each decoded once into ``LabelledImages``.

Folder layouts (Office-31, Office-Home), VisDA-style list files and the torchvision digit
sets (MNIST, USPS, SVHN) all end up as one uint8 tensor [N, 3, S, S] resized to
``image_size``, so the rest of augkd never touches files again. Folders and list files may
live at a local path or any URI pyarrow.fs opens (s3://...): they are listed first (a
``DecodePlan`` whose key hashes the listing), then fetched and decoded.
"""

from __future__ import annotations

import functools
import io
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from pyarrow import fs as pafs

from augkd.basics.errors import DataError
from augkd.data.types import LabelledImages
from augkd.hardware.runtime import cpu_share
from augkd.storage.files import (
    FileEntry,
    fingerprint,
    join_path,
    list_files,
    read_file,
    resolve_filesystem,
)

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp"})
_EXT_TEXT = "/".join(sorted(ext.lstrip(".") for ext in IMAGE_EXTENSIONS))
_DIGIT_CLASSES = [str(i) for i in range(10)]
_TENSOR_CHUNK = 2048  # images resized per batch for in-memory datasets, to bound peak memory
_DECODE_ERRORS = (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError)


# --------------------------------------------------------------------------- plans


@dataclass
class DecodePlan:
    """The files of one domain (possibly several merged), listed but not yet decoded.

    ``key`` hashes the listing (paths, sizes, mtimes) and the class names: with the image
    size it keys the decoded domain in the stage cache, so a changed file is decoded anew."""

    filesystem: pafs.FileSystem
    paths: list[str]
    """Paths inside ``filesystem``."""
    shown: list[str]
    """The same files as the user names them (local path or URI), for error messages."""
    labels: list[int]
    class_names: list[str]
    key: str


def _located(location: str | Path) -> tuple[pafs.FileSystem, str, str]:
    """(filesystem, path inside it, the name the user gave) of a local path or a URI."""
    shown = str(location).rstrip("/") or "/"
    filesystem, path = resolve_filesystem(shown)
    return filesystem, path, shown


def _require_path(filesystem: pafs.FileSystem, path: str, shown: str) -> pafs.FileInfo:
    """Fail early with the path the user gave, rather than deep inside a loader."""
    info = filesystem.get_file_info(path)
    if info.type == pafs.FileType.NotFound:
        raise DataError(
            f"Data path '{shown}' does not exist; check data.root (or the list file path) "
            "points at the dataset folder."
        )
    return info


# --------------------------------------------------------------------------- decoding


_SIXTEEN_BIT = frozenset({"I;16", "I;16L", "I;16B", "I;16N"})
"""PIL's modes of 16-bit greyscale (PNG, TIFF); ``convert("RGB")`` clips them at 255,
which turns an ordinary 16-bit scan into a nearly all-white image."""


def _as_rgb(img: Image.Image, shown: str) -> Image.Image:
    """RGB as a viewer shows the image: deeper greyscale scaled to 8 bits, not clipped;
    pixels whose range cannot be known (floating point) refused."""
    if img.mode in _SIXTEEN_BIT or img.mode == "I":
        values = np.asarray(img).astype(np.int64)
        if values.min(initial=0) < 0 or values.max(initial=0) > 65535:
            raise DataError(
                f"Image '{shown}' holds 32-bit integer pixels outside the 16-bit range, which "
                "augkd cannot map to 8 bits faithfully; convert it to an 8-bit PNG or JPEG."
            )
        grey = np.rint(values / 257.0).astype(np.uint8)  # 65535 -> 255, full scale to full
        return Image.fromarray(grey, mode="L").convert("RGB")
    if img.mode == "F":
        raise DataError(
            f"Image '{shown}' holds floating-point pixels (PIL mode F), whose range augkd "
            "cannot know; convert it to an 8-bit PNG or JPEG."
        )
    if img.mode in ("RGBA", "LA", "PA") or "transparency" in img.info:
        alpha = np.asarray(img.convert("RGBA"))[..., 3]
        if (alpha < 255).any():  # convert("RGB") would drop it: the hidden colours would show
            raise DataError(
                f"Image '{shown}' has transparent pixels, whose colour depends on what it is "
                "shown over; flatten it onto a background (e.g. white) and save it as RGB."
            )
    return img.convert("RGB")


def _decode(data: bytes, shown: str, image_size: int) -> np.ndarray:
    """Decode one file to an RGB uint8 array [S, S, 3], or name the file that failed."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            # JPEG can decode at a reduced scale directly, which is much faster for big photos.
            img.draft("RGB", (image_size, image_size))
            rgb = _as_rgb(img, shown)
            if rgb.size != (image_size, image_size):
                # PIL's bilinear filter widens its support when shrinking, i.e. it antialiases.
                rgb = rgb.resize((image_size, image_size), Image.Resampling.BILINEAR)
            return np.array(rgb, dtype=np.uint8)  # writable copy, safe for torch.from_numpy
    except DataError:
        raise
    except _DECODE_ERRORS as err:
        raise DataError(
            f"Image '{shown}' could not be decoded ({err}); remove or replace the file."
        ) from err


def decode_plan(plan: DecodePlan, image_size: int) -> LabelledImages:
    """Fetch and decode every file of the plan once, into one preallocated uint8 tensor.

    Fetching waits on storage, so it uses a few threads per CPU of this trial's share;
    decoding itself never runs on more threads than that share (not every host thread)."""
    count = len(plan.paths)
    out = torch.empty((count, 3, image_size, image_size), dtype=torch.uint8)
    share = cpu_share()
    decoding = threading.BoundedSemaphore(share)

    def fetch_and_decode(index: int) -> None:
        try:
            with plan.filesystem.open_input_stream(plan.paths[index]) as stream:
                data = stream.read()
        except OSError as err:
            raise DataError(
                f"Image '{plan.shown[index]}' could not be read ({err}); check the file and "
                "the storage credentials."
            ) from err
        with decoding:
            array = _decode(data, plan.shown[index], image_size)
        out[index] = torch.from_numpy(array).permute(2, 0, 1)

    with ThreadPoolExecutor(max_workers=min(32, 4 * share)) as pool:
        for _ in pool.map(fetch_and_decode, range(count)):
            pass
    return LabelledImages(out, torch.tensor(plan.labels, dtype=torch.int64), plan.class_names)


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


def _is_visible(name: str) -> bool:
    """Skip hidden entries such as '.DS_Store' or macOS '._x.jpg' forks, which are not images."""
    return not name.startswith(".")


def _children(folders: set[str], parent: str) -> list[str]:
    """Visible immediate subfolders of ``parent`` ('' for the listed folder itself)."""
    prefix = f"{parent}/" if parent else ""
    names = {
        folder[len(prefix) :].split("/")[0]
        for folder in folders
        if folder.startswith(prefix) and len(folder) > len(prefix)
    }
    return sorted(name for name in names if _is_visible(name))


def _path_order(relative: str) -> tuple[str, ...]:
    return tuple(relative.split("/"))  # component by component, as sorted(Path) orders


def scan_image_folders(root: str | Path, domains: list[str]) -> DecodePlan:
    """List ``root/<domain>/<class>/<image>`` folders (local or URI), merging domains under
    one class list. Every domain must hold the same class folders so that label indices mean
    the same thing (a teacher is trained on e.g. amazon+webcam)."""
    filesystem, base, shown_root = _located(root)
    _require_path(filesystem, base, shown_root)
    if not domains:
        raise DataError(
            f"No domains were given for '{shown_root}'; list at least one domain folder."
        )

    per_domain: list[tuple[str, str, dict[str, list[FileEntry]]]] = []
    for domain in domains:
        domain_path = join_path(base, domain)
        shown_domain = join_path(shown_root, domain)
        if filesystem.get_file_info(domain_path).type != pafs.FileType.Directory:
            top = {
                info.base_name
                for info in filesystem.get_file_info(pafs.FileSelector(base))
                if info.type == pafs.FileType.Directory
            }
            existing = sorted(name for name in top if _is_visible(name))
            raise DataError(
                f"Domain folder '{shown_domain}' does not exist; domains found under "
                f"'{shown_root}' are: {', '.join(existing) or 'none'}."
            )
        files, folders = list_files(filesystem, domain_path)
        parent = ""
        classes = _children(folders, parent)
        # Office-31 nests its classes one level deeper: <domain>/images/<class>/...
        if classes == ["images"]:
            parent = "images"
            classes = _children(folders, parent)
        if not classes:
            raise DataError(
                f"No images found under '{shown_domain}'; expected class folders "
                f"'{shown_domain}/<class>/<image>' holding {_EXT_TEXT} files."
            )
        by_class: dict[str, list[FileEntry]] = {name: [] for name in classes}
        prefix = f"{parent}/" if parent else ""
        for entry in files:
            if not entry.relative.startswith(prefix):
                continue
            parts = entry.relative[len(prefix) :].split("/")
            name = parts[-1]
            if (
                len(parts) >= 2
                and parts[0] in by_class
                and _is_visible(name)
                and os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS
            ):
                by_class[parts[0]].append(entry)
        per_domain.append((domain, join_path(shown_domain, parent), by_class))

    first_domain, _, first_classes = per_domain[0]
    for domain, _, classes in per_domain[1:]:
        if classes.keys() != first_classes.keys():
            missing = sorted(first_classes.keys() - classes.keys())
            extra = sorted(classes.keys() - first_classes.keys())
            raise DataError(
                f"Domain '{domain}' has different classes from domain '{first_domain}' "
                f"(missing: {', '.join(missing) or 'none'}; extra: {', '.join(extra) or 'none'}); "
                "give every domain the same class folders."
            )

    class_names = sorted(first_classes)
    paths: list[str] = []
    shown: list[str] = []
    labels: list[int] = []
    listing: list[tuple[str, int, int]] = []
    for domain, shown_domain, classes in per_domain:
        for label, name in enumerate(class_names):
            found = sorted(classes[name], key=lambda entry: _path_order(entry.relative))
            if not found:
                raise DataError(
                    f"Class folder '{join_path(shown_domain, name)}' holds no {_EXT_TEXT} "
                    "images; add images or remove the folder from every domain."
                )
            domain_path = join_path(base, domain)
            paths.extend(join_path(domain_path, entry.relative) for entry in found)
            shown.extend(join_path(join_path(shown_root, domain), e.relative) for e in found)
            labels.extend([label] * len(found))
            listing.extend((f"{domain}/{e.relative}", e.size, e.mtime_ns) for e in found)
    key = fingerprint(listing, "folders", shown_root, domains, class_names)
    return DecodePlan(filesystem, paths, shown, labels, class_names, key)


def load_image_folders(root: str | Path, domains: list[str], image_size: int) -> LabelledImages:
    """Decode ``root/<domain>/<class>/<image>`` folders (see ``scan_image_folders``)."""
    return decode_plan(scan_image_folders(root, domains), image_size)


# --------------------------------------------------------------------------- list files


def _parse_list(text: str, shown_list: str) -> list[tuple[int, str, int]]:
    """(line number, path as written, label) of every '<path> <label>' line."""
    entries: list[tuple[int, str, int]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped:
            continue
        parts = stripped.rsplit(None, 1)  # the path itself may contain spaces
        if len(parts) != 2 or not parts[1].isdigit():
            raise DataError(
                f"List file '{shown_list}' line {number} is malformed ({stripped!r}); "
                "each line must be '<image path> <non-negative integer label>'."
            )
        entries.append((number, parts[0], int(parts[1])))
    return entries


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


def _require_every_label(labels: list[int], shown_list: str) -> None:
    """Labels 0..max each need images: a gap would be an empty class, and the classes
    would lose their folder names (class_0, class_1, ...)."""
    missing = sorted(set(range(max(labels) + 1)) - set(labels))
    if missing:
        shown = ", ".join(map(str, missing[:10])) + (", ..." if len(missing) > 10 else "")
        raise DataError(
            f"List file '{shown_list}' has no images for label {shown} (its labels run from 0 "
            f"to {max(labels)}); list images of every label, or renumber the labels without gaps."
        )


def scan_list_file(
    list_path: str | Path,
    root: str | Path | None = None,
    class_names: list[str] | None = None,
) -> DecodePlan:
    """List a VisDA-2017 style file of '<path> <label>' lines, paths relative to ``root``
    (default: the list file's folder, where VisDA keeps its lists); local or URI."""
    filesystem, path, shown_list = _located(list_path)
    info = _require_path(filesystem, path, shown_list)
    if info.type != pafs.FileType.File:
        raise DataError(f"List file '{shown_list}' is a folder; pass the path of the list file.")
    if root is None:
        base, shown_base = path.rsplit("/", 1)[0], shown_list.rsplit("/", 1)[0]
    else:
        _, base, shown_base = _located(root)
        _require_path(filesystem, base, shown_base)

    text = read_file(filesystem, path).decode("utf-8", errors="replace")
    entries = _parse_list(text, shown_list)
    if not entries:
        raise DataError(
            f"No images found in list file '{shown_list}'; "
            "add lines of the form '<image path> <label>'."
        )
    local = isinstance(filesystem, pafs.LocalFileSystem)
    paths, shown, folders = [], [], []
    for _, given, _ in entries:
        absolute = local and os.path.isabs(given)
        paths.append(given if absolute else join_path(base, given))
        shown.append(given if absolute else join_path(shown_base, given))
        parts = given.strip("/").split("/")
        if absolute:
            folders.append(parts[-2] if len(parts) > 1 else None)
        else:
            folders.append(parts[0] if len(parts) > 1 else None)
    infos = filesystem.get_file_info(paths)
    for (number, _, _), file_info, name in zip(entries, infos, shown, strict=True):
        if file_info.type != pafs.FileType.File:
            raise DataError(
                f"Image '{name}' listed in '{shown_list}' line {number} does not exist; "
                "fix the path or the root it is relative to."
            )
    labels = [label for _, _, label in entries]
    if class_names is not None:
        if len(class_names) <= max(labels):
            raise DataError(
                f"List file '{shown_list}' uses label {max(labels)} but only "
                f"{len(class_names)} class names were given; pass one name per label."
            )
        names = list(class_names)
    else:
        _require_every_label(labels, shown_list)
        names = _names_from_folders(labels, folders)
    listing = [
        (p, int(i.size or 0), int(i.mtime_ns or 0)) for p, i in zip(paths, infos, strict=True)
    ]
    key = fingerprint(listing, "listfile", shown_list, labels, names)
    return DecodePlan(filesystem, paths, shown, labels, names, key)


def load_list_file(
    list_path: str | Path,
    image_size: int,
    root: str | Path | None = None,
    class_names: list[str] | None = None,
) -> LabelledImages:
    """Decode the images of a VisDA-2017 style list file (see ``scan_list_file``)."""
    return decode_plan(scan_list_file(list_path, root, class_names), image_size)


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
    return LabelledImages(_resize_tensor(images, image_size), labels, list(_DIGIT_CLASSES))


REAL_SOURCES: dict[str, Callable[..., LabelledImages]] = {
    "folders": load_image_folders,
    "listfile": load_list_file,
    "mnist": functools.partial(load_torchvision, "mnist"),
    "usps": functools.partial(load_torchvision, "usps"),
    "svhn": functools.partial(load_torchvision, "svhn"),
}
"""Source name (as in ``data.source``) → loader; the digit loaders take (root, image_size, ...)."""

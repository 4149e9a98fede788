"""Loaders for real datasets at a user-given path, each decoded once into ``LabelledImages``.

Folder layouts (Office-31, Office-Home), VisDA-style list files and the torchvision digit
sets (MNIST, USPS, SVHN) all end up as one uint8 tensor [N, 3, S, S] resized to
``image_size``, so the rest of augkd never touches files again. Folders and list files may
live at a local path or any URI pyarrow.fs opens (s3://...): they are listed first (a
``DecodePlan`` whose key hashes the listing), then fetched and decoded.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from pathlib import Path

from pyarrow import fs as pafs

from augkd.basics.errors import DataError
from augkd.data.images import EXTENSIONS_TEXT, IMAGE_EXTENSIONS, DecodePlan, decode_plan
from augkd.data.torchvision_sets import load_torchvision
from augkd.data.types import LabelledImages
from augkd.storage.files import (
    FileEntry,
    fingerprint,
    join_path,
    list_files,
    read_file,
    resolve_filesystem,
)


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
                f"'{shown_domain}/<class>/<image>' holding {EXTENSIONS_TEXT} files."
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
                    f"Class folder '{join_path(shown_domain, name)}' holds no {EXTENSIONS_TEXT} "
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


REAL_SOURCES: dict[str, Callable[..., LabelledImages]] = {
    "folders": load_image_folders,
    "listfile": load_list_file,
    "mnist": functools.partial(load_torchvision, "mnist"),
    "usps": functools.partial(load_torchvision, "usps"),
    "svhn": functools.partial(load_torchvision, "svhn"),
}
"""Source name (as in ``data.source``) → loader; the digit loaders take (root, image_size, ...)."""

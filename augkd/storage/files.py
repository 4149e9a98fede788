"""Files addressed by a local path or a URI (s3://, gs://, ...) through pyarrow.fs.

The stage cache, the results table, the search's space, datasets and teachers are all read
and written here, so that one search runs on a laptop disk or on a cluster's object store
unchanged. For s3:// URIs pyarrow (25) itself honours the standard ``AWS_ENDPOINT_URL``
(and ``AWS_ENDPOINT_URL_S3``) variables, so S3-compatible stores (MinIO, on-premise, moto in
the tests) work everywhere without a setting of ours.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from dataclasses import dataclass

from pyarrow import fs as pafs


def join_uri(root: str, *parts: str) -> str:
    return "/".join([root.rstrip("/"), *parts])


def resolve_filesystem(uri: str) -> tuple[pafs.FileSystem, str]:
    """A pyarrow filesystem and the path inside it, for a local path or a URI."""
    if "://" not in uri:
        return pafs.LocalFileSystem(), os.path.abspath(os.path.expanduser(uri))
    return pafs.FileSystem.from_uri(uri)


def is_file(filesystem: pafs.FileSystem, path: str) -> bool:
    return filesystem.get_file_info(path).type == pafs.FileType.File


def read_file(filesystem: pafs.FileSystem, path: str) -> bytes:
    with filesystem.open_input_stream(path) as stream:
        return stream.read()


def write_file(filesystem: pafs.FileSystem, path: str, data: bytes) -> None:
    """Readers never see a partial file: a local write goes to a temporary name and is
    moved into place; an object-store put is atomic by itself."""
    filesystem.create_dir(path.rsplit("/", 1)[0], recursive=True)
    local = isinstance(filesystem, pafs.LocalFileSystem)
    target = f"{path}.{uuid.uuid4().hex}.tmp" if local else path
    try:
        with filesystem.open_output_stream(target) as stream:
            stream.write(data)
        if local:
            filesystem.move(target, path)
    except BaseException:  # also Ctrl-C: no half-written temporary file stays behind
        if local and is_file(filesystem, target):
            filesystem.delete_file(target)
        raise


def read_bytes(uri: str) -> bytes:
    return read_file(*resolve_filesystem(uri))


def write_bytes(uri: str, data: bytes) -> None:
    write_file(*resolve_filesystem(uri), data)


def uri_is_file(uri: str) -> bool:
    return is_file(*resolve_filesystem(uri))


def join_path(base: str, relative: str) -> str:
    return f"{base.rstrip('/')}/{relative}" if relative else base


@dataclass(frozen=True)
class FileEntry:
    """One file of a listing: its path relative to the listed folder ('/'-separated)."""

    relative: str
    size: int
    mtime_ns: int


def list_files(filesystem: pafs.FileSystem, base: str) -> tuple[list[FileEntry], set[str]]:
    """Every file under ``base`` (recursively) and every folder, both relative to ``base``.

    Folders are also derived from file paths, since object stores have no empty folders."""
    infos = filesystem.get_file_info(pafs.FileSelector(base, recursive=True, allow_not_found=True))
    prefix = base.rstrip("/") + "/"
    files: list[FileEntry] = []
    folders: set[str] = set()
    for info in infos:
        relative = info.path[len(prefix) :] if info.path.startswith(prefix) else info.path
        if info.type == pafs.FileType.File:
            files.append(FileEntry(relative, int(info.size or 0), int(info.mtime_ns or 0)))
            parts = relative.split("/")[:-1]
            folders.update("/".join(parts[: i + 1]) for i in range(len(parts)))
        elif info.type == pafs.FileType.Directory:
            folders.add(relative)
    return files, folders


def fingerprint(items: list[tuple[str, int, int]], *extra: object) -> str:
    """A short hash of (path, size, mtime) triples and anything else a result depends on."""
    digest = hashlib.sha256(repr(extra).encode())
    for item in items:
        digest.update(repr(item).encode())
    return digest.hexdigest()[:16]

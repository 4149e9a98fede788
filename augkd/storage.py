"""Files addressed by a local path or a URI (s3://, gs://, ...) through pyarrow.fs.

The stage cache, the results table and the search's space all live here, so that one
search can run on a laptop disk or on a cluster's object store unchanged.
"""

from __future__ import annotations

import os
import uuid

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

"""Node-local copies of what trials read from object storage: one download per node.

Every trial on a node needs the same teacher, decoded domain and Module-1/encoder artifacts.
Fetching them whole from S3 in every trial costs minutes of transfer per trial at release
sizes, so the first reader on a node downloads a file into a folder on that node's disk, and
every later reader on the node reads that copy. A file lock per entry makes the other readers
wait for the one download instead of starting their own.

A copy is trusted only while its SHA-256 matches a hash recorded when the file was written:
for a stage artifact, the hash its producer stored beside it; for a file augkd did not write
(a teacher checkpoint), the hash of the bytes downloaded, kept beside the copy and keyed by the
source's size and modification time. A copy that does not match (a partial write, a damaged
disk) is discarded and downloaded again.
"""

from __future__ import annotations

import hashlib
import logging
import os
import uuid
from dataclasses import dataclass
from pathlib import Path

from pyarrow import fs as pafs

from augkd.storage import read_file

log = logging.getLogger(__name__)


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _short_digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass
class NodeRead:
    data: bytes | None
    """None when the downloaded bytes do not match the recorded hash (the stored file is
    corrupt or partial); the caller decides what that means."""
    downloaded: bool
    """True when this read fetched the file from storage; False when the node had it."""


class NodeCopies:
    """A folder on this node holding verified copies of files from object storage."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)

    def stage_artifact(
        self, filesystem: pafs.FileSystem, path: str, root: str, name: str, recorded: str
    ) -> NodeRead:
        """A stage artifact of the cache at ``root``; ``recorded``: its producer's hash."""
        local = self.directory / "stages" / _short_digest(root) / name
        return self._read(filesystem, path, local, recorded, f"{root}/{name}")

    def place_stage_artifact(self, root: str, name: str, data: bytes) -> None:
        """Keep what this node just produced, so that its own trials need no download."""
        local = self.directory / "stages" / _short_digest(root) / name
        with self._lock(local):
            _write_atomically(local, data)

    def source_file(self, filesystem: pafs.FileSystem, path: str, uri: str) -> NodeRead:
        """A file augkd did not write (a teacher checkpoint): keyed by its URI, size and
        modification time, so a replaced file is downloaded again."""
        info = filesystem.get_file_info(path)
        if info.type != pafs.FileType.File:
            raise FileNotFoundError(uri)
        local = self.directory / "files" / _short_digest(f"{uri}|{info.size}|{info.mtime_ns}")
        record = local.with_name(local.name + ".sha256")
        with self._lock(local):
            recorded = record.read_text().strip() if record.exists() else None
            if recorded is not None and local.exists():
                found = self._verified(local, recorded, uri)
                if found is not None:
                    return NodeRead(found, downloaded=False)
            data = read_file(filesystem, path)
            if info.size is not None and len(data) != info.size:
                return NodeRead(None, downloaded=True)
            _write_atomically(local, data)
            _write_atomically(record, sha256_hex(data).encode())
            self._count_download(uri, len(data))
            return NodeRead(data, downloaded=True)

    # ---------------------------------------------------------------------------------------
    def _read(
        self, filesystem: pafs.FileSystem, path: str, local: Path, recorded: str, uri: str
    ) -> NodeRead:
        with self._lock(local):
            if local.exists():
                found = self._verified(local, recorded, uri)
                if found is not None:
                    return NodeRead(found, downloaded=False)
            data = read_file(filesystem, path)
            if sha256_hex(data) != recorded:
                return NodeRead(None, downloaded=True)
            _write_atomically(local, data)
            self._count_download(uri, len(data))
            return NodeRead(data, downloaded=True)

    def _verified(self, local: Path, recorded: str, source: str) -> bytes | None:
        """The copy's bytes when they match ``recorded``; otherwise the copy is removed."""
        data = local.read_bytes()
        if sha256_hex(data) == recorded:
            return data
        log.warning(
            "Node copy '%s' of '%s' does not match the hash recorded when it was written "
            "(partial or damaged); discarded it and downloading it again.",
            local,
            source,
        )
        local.unlink(missing_ok=True)
        return None

    def _lock(self, local: Path):
        from filelock import FileLock

        locks = self.directory / ".locks"
        locks.mkdir(parents=True, exist_ok=True)
        relative = local.relative_to(self.directory).as_posix().replace("/", "_")
        return FileLock(str(locks / f"{relative}.lock"))

    def _count_download(self, source: str, size: int) -> None:
        """One line per download in ``downloads.log``: what an operator (and the tests) can
        count to see that a node fetched each file once."""
        with (self.directory / "downloads.log").open("a") as out:
            out.write(f"{source}\t{size}\t{os.getpid()}\n")


def _write_atomically(target: Path, data: bytes) -> None:
    """Readers never see a partial copy: write a temporary file, then rename it."""
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f"{target.name}.{uuid.uuid4().hex}.part")
    try:
        temporary.write_bytes(data)
        os.replace(temporary, target)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise

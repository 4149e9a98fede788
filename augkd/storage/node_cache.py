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

import contextlib
import hashlib
import logging
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from pyarrow import fs as pafs

from augkd.storage.files import read_file

log = logging.getLogger(__name__)


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _short_digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class NodeCopiesUnusable(RuntimeError):
    """This node's folder cannot be used (not writable, no lock): read storage directly."""


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
            self._keep(local, data)

    def source_file(self, filesystem: pafs.FileSystem, path: str, uri: str) -> NodeRead:
        """A file augkd did not write (a teacher checkpoint): keyed by its URI, size and
        modification time, so a replaced file is downloaded again."""
        info = filesystem.get_file_info(path)
        if info.type != pafs.FileType.File:
            raise FileNotFoundError(uri)
        local = self.directory / "files" / _short_digest(f"{uri}|{info.size}|{info.mtime_ns}")
        record = local.with_name(local.name + ".sha256")
        with self._lock(local):
            recorded = _read_text(record)
            if recorded is not None:
                found = self._verified(local, recorded, uri)
                if found is not None:
                    return NodeRead(found, downloaded=False)
            data = read_file(filesystem, path)
            if info.size is not None and len(data) != info.size:
                return NodeRead(None, downloaded=True)
            if self._keep(local, data):
                self._keep(record, sha256_hex(data).encode())
            self._count_download(uri, len(data))
            return NodeRead(data, downloaded=True)

    # ---------------------------------------------------------------------------------------
    def _read(
        self, filesystem: pafs.FileSystem, path: str, local: Path, recorded: str, uri: str
    ) -> NodeRead:
        with self._lock(local):
            found = self._verified(local, recorded, uri)
            if found is not None:
                return NodeRead(found, downloaded=False)
            data = read_file(filesystem, path)
            if sha256_hex(data) != recorded:
                return NodeRead(None, downloaded=True)
            self._keep(local, data)
            self._count_download(uri, len(data))
            return NodeRead(data, downloaded=True)

    def _verified(self, local: Path, recorded: str, source: str) -> bytes | None:
        """The copy's bytes when they match ``recorded``; otherwise (none, unreadable, or
        different) None, and a different copy is removed."""
        try:
            data = local.read_bytes()
        except OSError:
            return None
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

    @contextmanager
    def _lock(self, local: Path) -> Iterator[None]:
        """Held while one reader checks, downloads and keeps ``local``; the others wait."""
        from filelock import FileLock

        relative = local.relative_to(self.directory).as_posix().replace("/", "_")
        try:
            locks = self.directory / ".locks"
            locks.mkdir(parents=True, exist_ok=True)
            lock = FileLock(str(locks / f"{relative}.lock"))
            lock.acquire()
        except OSError as error:
            raise NodeCopiesUnusable(f"{self.directory}: {error}") from error
        try:
            yield
        finally:
            lock.release()

    def _keep(self, local: Path, data: bytes) -> bool:
        """Write a copy; a full or failing disk costs later downloads, not this read."""
        try:
            _write_atomically(local, data)
        except OSError as error:
            log.warning("could not keep the node copy %s (%s)", local, error)
            return False
        return True

    def _count_download(self, source: str, size: int) -> None:
        """One line per download in ``downloads.log``: what an operator (and the tests) can
        count to see that a node fetched each file once."""
        with contextlib.suppress(OSError), (self.directory / "downloads.log").open("a") as out:
            out.write(f"{source}\t{size}\t{os.getpid()}\n")


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


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

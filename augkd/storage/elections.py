"""Elections: which of several callers (trials, nodes, drivers) does a piece of work.

An OS file lock on local or shared storage, released by the OS if its holder dies; a lease
object on object stores, renewed by a heartbeat thread while its holder works. Used by the
stage cache (one producer per missing artifact) and by the one-search-per-name lock
(augkd.search.prepare.name_lock).
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
import uuid
from dataclasses import dataclass

from pyarrow import fs as pafs

from augkd.storage.files import read_file, write_file

log = logging.getLogger(__name__)


def read_text(filesystem: pafs.FileSystem, path: str) -> str | None:
    """A small text file's content, or None where it is missing or unreadable."""
    try:
        return read_file(filesystem, path).decode()
    except (FileNotFoundError, OSError):
        return None


def delete_quietly(filesystem: pafs.FileSystem, path: str) -> None:
    """Delete a file that may already be gone."""
    with contextlib.suppress(OSError):
        filesystem.delete_file(path)


@dataclass(frozen=True)
class LockPlace:
    """Where elections keep their locks (``<folder>/.locks/``) and how long a lease lasts:
    the stage cache's root, or a search folder (augkd.search.prepare.name_lock)."""

    filesystem: pafs.FileSystem
    folder: str
    lease_s: float
    settle_s: float

    def read_text(self, path: str) -> str | None:
        return read_text(self.filesystem, path)

    def delete(self, path: str) -> None:
        delete_quietly(self.filesystem, path)


class _FileLockElection:
    """Local or shared-disk storage: an OS file lock, released by the OS if its holder dies."""

    def __init__(self, place: LockPlace, name: str) -> None:
        from filelock import FileLock, Timeout

        lock_dir = os.path.join(place.folder, ".locks")
        os.makedirs(lock_dir, exist_ok=True)
        self.lock = FileLock(os.path.join(lock_dir, name + ".lock"))
        self.timeout_error = Timeout

    def try_acquire(self) -> bool:
        try:
            self.lock.acquire(timeout=0)
        except self.timeout_error:
            return False
        return True

    def acquire_unless_alive(self, poll_s: float) -> bool:
        """The OS frees a dead holder's lock, so a lock held now has a live holder."""
        return self.try_acquire()

    def release(self) -> None:
        self.lock.release()


class _LeaseElection:
    """Object stores: a lease object that its holder's heartbeat rewrites every lease_s/4.

    A waiter judges staleness by its own clock: a lease whose content has not changed for
    lease_s (no heartbeat) belongs to a dead producer and may be taken over. Candidates write
    their token, wait ``settle_s`` and read back: the last writer wins (S3 reads after writes
    are strongly consistent)."""

    def __init__(self, place: LockPlace, name: str) -> None:
        self.place = place
        self.path = f"{place.folder}/.locks/{name}.lease"
        self.token = uuid.uuid4().hex
        self.seen: str | None = None
        self.seen_since = time.monotonic()
        self.stop = threading.Event()
        self.heartbeat: threading.Thread | None = None

    def try_acquire(self) -> bool:
        current = self.place.read_text(self.path)
        if current is not None:
            if current != self.seen:
                self.seen, self.seen_since = current, time.monotonic()
                return False
            if time.monotonic() - self.seen_since < self.place.lease_s:
                return False
            log.warning("lease %s was not renewed for %.0fs; taking over", self.path,
                        self.place.lease_s)  # fmt: skip
        self._write(0)
        time.sleep(self.place.settle_s)
        if self.place.read_text(self.path) != f"{self.token}:0":
            return False
        self.heartbeat = threading.Thread(target=self._renew, daemon=True)
        self.heartbeat.start()
        return True

    def acquire_unless_alive(self, poll_s: float) -> bool:
        """Take the lease, or False once its holder shows it is alive (the lease changed
        after this caller first saw it, or another candidate won). An unrenewed lease is
        taken over after lease_s: the wait a dead holder costs."""
        first_seen: str | None = None
        while True:
            if self.try_acquire():
                return True
            if self.seen is None:
                return False  # lost the election to a candidate that wrote after this one
            if first_seen is None:
                first_seen = self.seen
            elif self.seen != first_seen:
                return False  # renewed by its holder's heartbeat
            time.sleep(poll_s)

    def _write(self, beat: int) -> None:
        write_file(self.place.filesystem, self.path, f"{self.token}:{beat}".encode())

    def _renew(self) -> None:
        beat = 0
        while not self.stop.wait(self.place.lease_s / 4):
            beat += 1
            try:
                self._write(beat)
            except OSError as error:  # a transient storage error: try again next beat
                log.warning("could not renew lease %s (%s)", self.path, error)

    def release(self) -> None:
        self.stop.set()
        if self.heartbeat is not None:
            self.heartbeat.join()
            current = self.place.read_text(self.path) or ""
            if current.startswith(self.token):
                self.place.delete(self.path)


Election = _FileLockElection | _LeaseElection


def election_for(place: LockPlace, name: str) -> Election:
    """One election for ``name`` in ``place``: an OS file lock on local storage, a lease
    with a heartbeat on object storage."""
    name = name.replace("/", "_")
    if isinstance(place.filesystem, pafs.LocalFileSystem):
        return _FileLockElection(place, name)
    return _LeaseElection(place, name)

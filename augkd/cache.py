"""Content-addressed stage artifacts, shared by every trial that needs the same one.

An artifact (the built-in teacher, Module 1's G/E/S0, Module 2's AnchorNet) is keyed
by a hash of exactly the settings it depends on and stored under ``root`` (a local
path or any URI pyarrow.fs understands, such as s3://). Writes are atomic (write a
temporary object, then move it; an S3 put is atomic by itself). Concurrent trials
that need the same missing artifact elect one producer (an OS file lock on local or
shared storage, a lease object on object stores); the others wait for its file.
"""

from __future__ import annotations

import io
import logging
import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from pyarrow import fs as pafs

from augkd.storage import is_file, read_file, resolve_filesystem, write_file

log = logging.getLogger(__name__)


@dataclass
class CacheEvent:
    stage: str
    key: str
    hit: bool
    seconds: float
    """Time spent producing (a miss) or loading/waiting (a hit)."""


class StageCache:
    def __init__(self, root: str, wait_timeout_s: float = 3600.0, poll_s: float = 0.5) -> None:
        self.root = root.rstrip("/")
        self.filesystem, self.path = resolve_filesystem(self.root)
        self.wait_timeout_s = wait_timeout_s
        self.poll_s = poll_s
        self.events: list[CacheEvent] = []

    def _artifact_path(self, stage: str, key: str) -> str:
        return f"{self.path}/{stage}/{key}.pt"

    def _exists(self, path: str) -> bool:
        return is_file(self.filesystem, path)

    def _load(self, path: str) -> Any:
        data = read_file(self.filesystem, path)
        return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)

    def _store(self, path: str, artifact: Any) -> None:
        buffer = io.BytesIO()
        torch.save(artifact, buffer)
        write_file(self.filesystem, path, buffer.getvalue())

    def get_or_create(self, stage: str, key: str, produce: Callable[[], Any]) -> Any:
        """The artifact for (stage, key): loaded when stored, else produced once and stored."""
        path = self._artifact_path(stage, key)
        start = time.perf_counter()
        if self._exists(path):
            return self._hit(stage, key, path, start)
        with _producer_election(self, f"{stage}/{key}") as is_producer:
            if not is_producer or self._exists(path):
                self._wait_for(path)
                return self._hit(stage, key, path, start)
            log.info("stage cache miss: computing %s %s", stage, key)
            artifact = produce()
            self._store(path, artifact)
        seconds = time.perf_counter() - start
        self.events.append(CacheEvent(stage, key, False, seconds))
        return artifact

    def _hit(self, stage: str, key: str, path: str, start: float) -> Any:
        artifact = self._load(path)
        seconds = time.perf_counter() - start
        log.info("stage cache hit: %s %s (%.1fs)", stage, key, seconds)
        self.events.append(CacheEvent(stage, key, True, seconds))
        return artifact

    def _wait_for(self, path: str) -> None:
        deadline = time.monotonic() + self.wait_timeout_s
        while not self._exists(path):
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"Waited {self.wait_timeout_s:.0f}s for stage artifact {path}; its producer "
                    "may have died. Delete stale locks under the cache root and retry."
                )
            time.sleep(self.poll_s)


class _producer_election:
    """Yields True to one concurrent caller per artifact; the others wait for its file.

    Local storage (also shared by nodes on one host or an NFS mount): an OS file
    lock. Object stores: a lease object, last writer wins, read back after a settle
    delay (S3 reads after writes are strongly consistent); a stale lease expires.
    """

    def __init__(self, cache: StageCache, name: str, lease_s: float = 1800.0) -> None:
        self.cache = cache
        self.name = name.replace("/", "_")
        self.lease_s = lease_s
        self.token = uuid.uuid4().hex
        self.file_lock = None
        self.lease_path: str | None = None

    def __enter__(self) -> bool:
        filesystem = self.cache.filesystem
        if isinstance(filesystem, pafs.LocalFileSystem):
            from filelock import FileLock

            lock_dir = os.path.join(self.cache.path, ".locks")
            os.makedirs(lock_dir, exist_ok=True)
            self.file_lock = FileLock(os.path.join(lock_dir, self.name + ".lock"))
            self.file_lock.acquire(timeout=self.cache.wait_timeout_s)
            return True
        lease = f"{self.cache.path}/.locks/{self.name}.lease"
        info = filesystem.get_file_info(lease)
        if info.type == pafs.FileType.File and info.mtime is not None:
            age = time.time() - info.mtime.timestamp()
            if age < self.lease_s:
                return False
        filesystem.create_dir(lease.rsplit("/", 1)[0], recursive=True)
        with filesystem.open_output_stream(lease) as stream:
            stream.write(self.token.encode())
        time.sleep(2.0)
        with filesystem.open_input_stream(lease) as stream:
            won = stream.read().decode() == self.token
        if won:
            self.lease_path = lease
        return won

    def __exit__(self, *exc_info: object) -> None:
        if self.file_lock is not None:
            self.file_lock.release()
        if self.lease_path is not None:
            self.cache.filesystem.delete_file(self.lease_path)

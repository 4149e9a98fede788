"""Content-addressed stage artifacts, shared by every trial and node that needs the same one.

An artifact (a decoded data domain, the built-in teacher, Module 1's G/E/S0, Module 2's
AnchorNet) is keyed by a hash of exactly what it depends on and stored under ``root`` (a
local path or any URI pyarrow.fs opens, such as s3://). Writes are atomic.

Concurrent callers that need the same missing artifact elect one producer: an OS file lock
on local or shared storage, a lease object on object stores, renewed by a heartbeat thread
while the producer works. The others wait as long as the producer is alive, however long the
stage takes; if it dies, one of them takes over (resuming from the progress a long stage
saved); if it fails, it leaves a failure marker and every waiter stops at once with its error.
A corrupt (e.g. truncated) artifact is moved aside and produced again once.

On object storage each artifact is written with its SHA-256 beside it (``<key>.sha256``), and
readers go through this node's copies (augkd.storage.node_cache): each artifact is downloaded once per
node and verified against that hash. Local storage is read in place.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from pyarrow import fs as pafs

from augkd.basics.errors import AugkdError, CacheError
from augkd.storage.elections import (
    Election,
    LockPlace,
    delete_quietly,
    election_for,
    read_text,
)
from augkd.storage.files import is_file, read_bytes, read_file, resolve_filesystem, write_file
from augkd.storage.locations import node_cache_dir
from augkd.storage.node_cache import NodeCopies, NodeCopiesUnusable, sha256_hex

log = logging.getLogger(__name__)

_CORRUPT = object()


@dataclass
class CacheEvent:
    stage: str
    key: str
    hit: bool
    seconds: float
    """Time spent producing (a miss) or loading/waiting (a hit)."""
    downloaded: bool = False
    """This read fetched the artifact from object storage into the node's copies."""
    node_copy: bool = False
    """This read found the artifact among the node's copies (no download)."""


class StageCache:
    def __init__(
        self,
        root: str,
        poll_s: float = 0.5,
        lease_s: float = 120.0,
        settle_s: float = 2.0,
        wait_timeout_s: float | None = None,
    ) -> None:
        """``lease_s``: how long an unrenewed S3 lease keeps waiters waiting (the heartbeat
        renews it every quarter of that); ``wait_timeout_s``: an optional cap on any wait,
        None to wait as long as a live producer works."""
        self.root = root.rstrip("/")
        self.filesystem, self.path = resolve_filesystem(self.root)
        self.poll_s = poll_s
        self.lease_s = lease_s
        self.settle_s = settle_s
        self.wait_timeout_s = wait_timeout_s
        self.events: list[CacheEvent] = []
        self.remote = not isinstance(self.filesystem, pafs.LocalFileSystem)
        copies = node_cache_dir()
        self.node = NodeCopies(copies) if copies is not None else None
        self._fetched = (False, False)
        """(downloaded, node_copy) of the last artifact read, for its event."""

    # ---- paths -----------------------------------------------------------
    def artifact_path(self, stage: str, key: str) -> str:
        return f"{self.path}/{stage}/{key}.pt"

    @staticmethod
    def _hash_path(artifact_path: str) -> str:
        return artifact_path.removesuffix(".pt") + ".sha256"

    def _marker_path(self, stage: str, key: str) -> str:
        return f"{self.path}/{stage}/{key}.failed"

    def _progress_path(self, stage: str, key: str) -> str:
        return f"{self.path}/{stage}/.progress/{key}.pt"

    def contains(self, stage: str, key: str) -> bool:
        return is_file(self.filesystem, self.artifact_path(stage, key))

    # ---- bytes -----------------------------------------------------------
    def _read_text(self, path: str) -> str | None:
        return read_text(self.filesystem, path)

    def _delete(self, path: str) -> None:
        delete_quietly(self.filesystem, path)

    def _store(self, path: str, artifact: Any, node_name: str | None = None) -> None:
        """``node_name``: an artifact (not a stage's progress): on object storage its hash is
        recorded first, and this node keeps a copy."""
        buffer = io.BytesIO()
        torch.save(artifact, buffer)
        data = buffer.getvalue()
        if node_name is None or not self.remote:
            write_file(self.filesystem, path, data)
            return
        hash_path = self._hash_path(path)
        write_file(self.filesystem, hash_path, sha256_hex(data).encode())
        try:
            write_file(self.filesystem, path, data)
        except BaseException:  # no hash without its artifact (also on Ctrl-C)
            self._delete(hash_path)
            raise
        if self.node is not None:
            try:
                self.node.place_stage_artifact(self.root, node_name, data)
            except NodeCopiesUnusable as error:  # readers will read storage instead
                self._without_node_copies(error)

    def _fetch(self, path: str, node_name: str | None) -> bytes | None:
        """The stored bytes, through this node's copies when the artifact has a hash."""
        self._fetched = (False, False)
        if node_name is None or self.node is None or not self.remote:
            return read_file(self.filesystem, path)
        recorded = self._read_text(self._hash_path(path))
        if recorded is None:  # written before hashes were recorded: read it in place
            return read_file(self.filesystem, path)
        try:
            found = self.node.stage_artifact(
                self.filesystem, path, self.root, node_name, recorded.strip()
            )
        except NodeCopiesUnusable as error:
            self._without_node_copies(error)
            return read_file(self.filesystem, path)
        self._fetched = (found.downloaded, not found.downloaded)
        return found.data

    def _without_node_copies(self, error: NodeCopiesUnusable) -> None:
        """A node folder that cannot be used is this node's problem, never the artifact's:
        say so once and read storage directly from now on."""
        log.warning("Node copies are off on this node (%s); set AUGKD_NODE_CACHE to a "
                    "writable folder to have them.", error)  # fmt: skip
        self.node = None

    def _try_load(self, path: str, node_name: str | None = None) -> Any:
        """The artifact, or ``_CORRUPT`` when the file cannot be read back as one (or does
        not match the hash recorded with it)."""
        try:
            data = self._fetch(path, node_name)
        except FileNotFoundError:
            raise
        except OSError:
            return _CORRUPT
        if data is None:
            return _CORRUPT
        try:
            return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
        except Exception:
            return _CORRUPT

    def _move_aside(self, path: str) -> str:
        aside = f"{path}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
        with contextlib.suppress(OSError):  # another reader moved it first
            self.filesystem.move(path, aside)
        return aside

    # ---- the one entry point --------------------------------------------
    def get_or_create(self, stage: str, key: str, produce: Callable[[], Any]) -> Any:
        """The artifact for (stage, key): loaded when stored, else produced once and stored."""
        path = self.artifact_path(stage, key)
        start = time.perf_counter()
        moved_aside = False
        while True:
            if is_file(self.filesystem, path):
                try:
                    artifact = self._try_load(path, f"{stage}/{key}.pt")
                except FileNotFoundError:
                    continue  # moved aside by another reader meanwhile
                if artifact is not _CORRUPT:
                    return self._record(stage, key, True, start, artifact)
                if moved_aside:
                    raise _corrupt_again(path)
                aside = self._move_aside(path)
                moved_aside = True
                log.warning(
                    "Stage artifact '%s' is corrupt; moved it aside to '%s' and producing it "
                    "again.",
                    path,
                    aside,
                )
            produced, artifact = self._produce_or_wait(stage, key, path, produce, moved_aside)
            if produced:
                return self._record(stage, key, False, start, artifact)

    def _record(self, stage: str, key: str, hit: bool, start: float, artifact: Any) -> Any:
        seconds = time.perf_counter() - start
        downloaded, node_copy = self._fetched if hit else (False, False)
        if hit:
            log.info("stage cache hit: %s %s (%.1fs)", stage, key, seconds)
        self.events.append(CacheEvent(stage, key, hit, seconds, downloaded, node_copy))
        return artifact

    def read_source(self, uri: str) -> bytes:
        """A file the config names (a teacher checkpoint), through this node's copies when it
        lives in object storage; recorded as a ``source`` event."""
        filesystem, path = resolve_filesystem(uri)
        if self.node is None or isinstance(filesystem, pafs.LocalFileSystem):
            return read_bytes(uri)
        start = time.perf_counter()
        try:
            found = self.node.source_file(filesystem, path, uri)
        except NodeCopiesUnusable as error:
            self._without_node_copies(error)
            return read_bytes(uri)
        if found.data is None:
            raise OSError(f"the download of {uri} ended early; try again")
        seconds = time.perf_counter() - start
        self.events.append(
            CacheEvent("source", uri, True, seconds, found.downloaded, not found.downloaded)
        )
        return found.data

    def _produce_or_wait(
        self, stage: str, key: str, path: str, produce: Callable[[], Any], verify: bool
    ) -> tuple[bool, Any]:
        """(True, artifact) when this caller produced it; (False, None) once another has.
        ``verify``: read the stored artifact back (it replaces a corrupt one)."""
        marker = self._marker_path(stage, key)
        seen_marker = self._read_text(marker)  # an older failure: this caller tries again
        deadline = None if self.wait_timeout_s is None else time.monotonic() + self.wait_timeout_s
        election = _election_for(self, f"{stage}/{key}")
        while True:
            if is_file(self.filesystem, path):
                return False, None
            _raise_if_failed(self._read_text(marker), seen_marker, f"{stage}/{key}")
            if election.try_acquire():
                break
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(
                    f"Waited {self.wait_timeout_s:.0f}s for stage artifact {path} while its "
                    "producer was still alive; raise the wait or check that producer."
                )
            time.sleep(self.poll_s)
        try:
            _raise_if_failed(self._read_text(marker), seen_marker, f"{stage}/{key}")
            if is_file(self.filesystem, path):
                return False, None
            log.info("stage cache miss: computing %s %s", stage, key)
            try:
                artifact = produce()
                self._store(path, artifact, f"{stage}/{key}.pt")
                if verify and self._try_load(path) is _CORRUPT:
                    raise _corrupt_again(path)
            except Exception as error:
                self._write_marker(marker, error)
                raise
            self._delete(marker)
            self._delete(self._progress_path(stage, key))
            return True, artifact
        finally:
            election.release()

    def _write_marker(self, marker: str, error: Exception) -> None:
        payload = {
            "error": str(error) or type(error).__name__,
            "type": type(error).__name__,
            "bad_input": isinstance(error, AugkdError),
            "id": uuid.uuid4().hex,
        }
        try:
            write_file(self.filesystem, marker, json.dumps(payload).encode())
        except OSError:
            log.warning("could not write the failure marker %s", marker)

    # ---- progress of long stages ----------------------------------------
    def progress(self, stage: str, key: str, every_s: float) -> StageProgress:
        return StageProgress(self, stage, key, every_s)


def _corrupt_again(path: str) -> CacheError:
    return CacheError(
        f"Stage artifact '{path}' is corrupt again after it was produced anew; check the "
        "storage (disk full, quota, a partial upload) and delete the file."
    )


def _raise_if_failed(current: str | None, seen: str | None, name: str) -> None:
    """Stop a waiter at once when the producer it waited for left a failure marker."""
    if current is None or current == seen:
        return
    try:
        failure = json.loads(current)
    except ValueError:
        failure = {"error": current, "bad_input": False}
    message = f"The producer of stage artifact '{name}' failed: {failure.get('error')}"
    if failure.get("bad_input"):
        raise CacheError(message)
    raise RuntimeError(message)


class StageProgress:
    """A long stage's own checkpoint in the cache, so a lost node costs minutes, not hours.

    ``save`` is the per-epoch hook of Module 1 and 2: it builds and writes the state at most
    every ``every_s`` seconds; ``load`` returns the last one (None if none or unreadable)."""

    def __init__(self, cache: StageCache, stage: str, key: str, every_s: float) -> None:
        self.cache = cache
        self.path = cache._progress_path(stage, key)
        self.every_s = every_s
        self.last_save = time.monotonic()
        self.resumed_epoch = 0

    def load(self) -> dict[str, Any] | None:
        if not is_file(self.cache.filesystem, self.path):
            return None
        state = self.cache._try_load(self.path)
        if state is _CORRUPT or not isinstance(state, dict):
            log.warning("Stage progress '%s' is unreadable; starting the stage over.", self.path)
            return None
        self.resumed_epoch = int(state.get("epoch", 0))
        log.info("resuming %s from its progress after epoch %d", self.path, self.resumed_epoch)
        return state

    def save(self, epoch: int, make_state: Callable[[], dict[str, Any]]) -> None:
        if time.monotonic() - self.last_save < self.every_s:
            return
        self.cache._store(self.path, make_state())
        self.last_save = time.monotonic()


def _election_for(cache: StageCache, name: str) -> Election:
    return election_for(
        LockPlace(cache.filesystem, cache.path, cache.lease_s, cache.settle_s), name
    )

"""One search per name: a search holds its name in its own folder for as long as it runs.

Two searches with one name would write one results table, one study and one parent run,
each overwriting the other's records. So before Ray starts and before any tracking or
Optuna work, the driver takes the name with the stage cache's election
(augkd.storage.cache.election_for): an OS file lock on local storage, freed by the OS when the
driver dies, or a lease object on object storage that the driver's heartbeat renews and
that a new driver takes over once it went unrenewed for ``name_lease_seconds``. Beside it
the holder notes who it is, so that a refused search can name the running one.

A name whose search already ran is refused too, unless the search is asked to --resume it:
a new search never appends to an earlier one's records.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from collections.abc import Callable, Iterator

from augkd.basics.errors import ConfigError
from augkd.storage.elections import LockPlace, election_for
from augkd.storage.files import is_file, resolve_filesystem, write_file
from augkd.storage.locations import RESULTS_FILE

LOCK_NAME = "search"
"""The election's name: ``<search>/.locks/search.lock`` (local) or ``search.lease`` (S3)."""
HOLDER_FILE = ".locks/search.holder.json"
SETTLE_SECONDS = 2.0
"""How long lease candidates wait before reading back who won (as the stage cache does)."""
POLL_SECONDS = 1.0
RAN_MARKERS = ("tuner.pkl", RESULTS_FILE)
"""A search folder holding one of these has run: Tune saved it, or a trial was recorded."""


@contextlib.contextmanager
def hold_search_name(
    search_path: str,
    name: str,
    storage: str,
    resume: bool,
    lease_seconds: float,
    echo: Callable[[str], None] = print,
) -> Iterator[None]:
    """Hold ``name`` while the body runs; refuses (ConfigError, exit 2) a name that another
    driver holds, or whose search already ran unless ``resume``."""
    filesystem, folder = resolve_filesystem(search_path)
    place = LockPlace(filesystem, folder, lease_seconds, SETTLE_SECONDS)
    election = election_for(place, LOCK_NAME)
    holder_path = f"{folder}/{HOLDER_FILE}"
    if _remote(search_path) and place.read_text(f"{folder}/.locks/{LOCK_NAME}.lease"):
        echo(f"[search] '{name}' has a lease in {storage}; checking whether its holder is "
             f"alive (up to {lease_seconds:.0f} s)")  # fmt: skip
    if not election.acquire_unless_alive(POLL_SECONDS):
        raise ConfigError(_running_sentence(name, storage, _holder(place, holder_path)))
    try:
        if not resume and _has_run(place, folder):
            raise ConfigError(
                f"search '{name}' already ran in {storage}; continue it with --resume "
                f"--name {name}, or give this search another --name."
            )
        write_file(filesystem, holder_path, json.dumps(_this_driver()).encode())
        yield
    finally:
        place.delete(holder_path)
        election.release()
        _tidy_unused(search_path, folder)


def _tidy_unused(search_path: str, folder: str) -> None:
    """A local search that never started (refused, or stopped before Tune) leaves no folder
    holding only its lock: where nothing else was written, the lock file and folder go."""
    if _remote(search_path):
        return  # a deleted lease leaves no object behind
    locks = os.path.join(folder, ".locks")
    with contextlib.suppress(OSError):
        if os.listdir(folder) == [".locks"] and os.listdir(locks) == [f"{LOCK_NAME}.lock"]:
            os.remove(os.path.join(locks, f"{LOCK_NAME}.lock"))
            os.rmdir(locks)
            os.rmdir(folder)


def _remote(search_path: str) -> bool:
    return "://" in search_path


def _has_run(place: LockPlace, folder: str) -> bool:
    return any(is_file(place.filesystem, f"{folder}/{marker}") for marker in RAN_MARKERS)


def _this_driver() -> dict[str, object]:
    return {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "started": time.strftime("%Y-%m-%d %H:%M:%S"),
    }


def _holder(place: LockPlace, holder_path: str) -> dict[str, object] | None:
    """Who holds the name; the winner writes it just after winning, so wait a moment."""
    for _ in range(int(5 / 0.25)):
        text = place.read_text(holder_path)
        if text:
            with contextlib.suppress(ValueError):
                return json.loads(text)
        time.sleep(0.25)
    return None


def _running_sentence(name: str, storage: str, holder: dict[str, object] | None) -> str:
    who = (
        f"by process {holder.get('pid')} on {holder.get('host')} since {holder.get('started')}"
        if holder
        else "by another driver"
    )
    return (
        f"search '{name}' is already running in {storage} ({who}); wait for it to end, or "
        f"stop it and continue it with --resume --name {name}, or give this search another "
        "--name."
    )

"""The search's Optuna study, kept on disk so that it outlives the driver: a journal
file named after the search, next to its results.

Why a journal file: it needs no server, survives ``--resume`` (Ray restores the
searcher by unpickling it, and an unpickled JournalStorage re-reads the same file), and
``optuna-dashboard`` and ``optuna.load_study`` open it as it is. Only the driver writes
it (the searcher lives there), so a search whose storage is object storage (s3://)
keeps its journal on the driver's disk (``augkd_exports/<search>/``) and uploads a copy
next to the results when the search ends; ``--resume`` fetches that copy when the
driver's disk lost it.
"""

from __future__ import annotations

import logging
import os
import shlex
from pathlib import Path
from typing import Any

import optuna
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend

from augkd.basics.dotted import get_dotted
from augkd.storage.files import join_uri, read_bytes, uri_is_file, write_bytes
from augkd.storage.locations import local_folder

log = logging.getLogger(__name__)

STUDY_FILE = "optuna.journal"
TUNE_TRIAL_ATTR = "tune_trial_id"


def journal_path(search_path: str) -> str:
    """Where the driver reads and writes the study's journal."""
    return str(Path(local_folder(search_path)).resolve() / STUDY_FILE)


def open_storage(search_path: str) -> JournalStorage:
    """The journal storage of a search (fetched from object storage when missing here)."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    path = journal_path(search_path)
    remote_copy = join_uri(search_path, STUDY_FILE)
    if not os.path.exists(path) and "://" in search_path and uri_is_file(remote_copy):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        Path(path).write_bytes(read_bytes(remote_copy))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    return JournalStorage(JournalFileBackend(path))


def publish(search_path: str) -> None:
    """Copy the journal next to the results when they live in object storage."""
    path = journal_path(search_path)
    if "://" in search_path and os.path.exists(path):
        write_bytes(join_uri(search_path, STUDY_FILE), Path(path).read_bytes())


def study_name(search_path: str) -> str:
    return search_path.rstrip("/").rsplit("/", 1)[-1]


def load_study(search_path: str) -> optuna.Study | None:
    """The search's study, or None when it has none (a search from before journals)."""
    path = journal_path(search_path)
    if not os.path.exists(path) and not ("://" in search_path and uri_is_file(
        join_uri(search_path, STUDY_FILE))):  # fmt: skip
        return None
    storage = open_storage(search_path)
    try:
        return optuna.load_study(study_name=study_name(search_path), storage=storage)
    except KeyError:
        return None


def open_commands(search_path: str) -> list[str]:
    """Shell commands that open the study: the dashboard, and Python's load_study."""
    path = journal_path(search_path)
    name = study_name(search_path)
    code = (
        "import optuna; from optuna.storages import JournalStorage; "
        "from optuna.storages.journal import JournalFileBackend; "
        f"study = optuna.load_study(study_name={name!r}, "
        f"storage=JournalStorage(JournalFileBackend({str(path)!r}))); "
        "print(study.trials_dataframe())"
    )
    # quoted for a shell: a storage path may hold a space or a quote
    return [shlex.join(["optuna-dashboard", str(path)]), shlex.join(["python", "-c", code])]


def default_point(space: Any) -> dict[str, Any] | None:
    """The base config's value of every searched param (augkd's defaults), as
    Optuna's first trial; a param whose default lies outside its range is left to the
    sampler. None for the grid sampler, which visits its own points."""
    if space.sampler.name == "grid":
        return None
    point: dict[str, Any] = {}
    for key, param in space.params.items():
        if param.when and any(point.get(k) != v for k, v in param.when.items()):
            continue
        value = get_dotted(space.base_resolved, key)
        distribution = param.distribution()
        try:
            inside = distribution._contains(distribution.to_internal_repr(value))
        except (TypeError, ValueError):
            inside = False
        if inside:
            point[key] = value
        else:
            log.info("the default %s=%r lies outside the searched range", key, value)
    return point or None

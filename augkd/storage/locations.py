"""Where searches live: the default storage and tracking store, the files inside a
search folder, and finding a search from a storage root or a search folder.

``python search.py``, ``augkd export|compare|report|evaluate``, the notebook and the
benchmarks all ask here, so that their defaults agree: ``augkd_runs/`` and
``mlflow.db`` in the working directory, unless $AUGKD_STORAGE / $AUGKD_TRACKING_URI
say otherwise.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from augkd.basics.errors import ConfigError
from augkd.storage.files import join_uri, resolve_filesystem

RESULTS_FILE = "results.parquet"
SPACE_FILE = "search_space.json"
BASELINES_FILE = "baselines.json"
EVALUATION_FILE = "evaluation.parquet"
EVALUATION_RUNS_FOLDER = "evaluation_runs"
"""One file per finished evaluation run (answer/evaluation_files.FinishedRuns)."""
STAGE_CACHE = "stage_cache"
SEARCH_MARKERS = (SPACE_FILE, RESULTS_FILE, "tuner.pkl")
"""A folder holding any of these is a search (Tune writes tuner.pkl, augkd the others)."""
SEARCH_NAME = re.compile(r"^(?P<space>.+)-(?P<stamp>\d{8}-\d{6})$")
TUNED_BASELINE = "-tuned-"
"""``<search>-tuned-<method>``: a baseline's own search (evaluate --tune-baselines), kept next
to the search it serves and never taken for the latest search of a storage root."""
SEARCH_PATH_ENV = "AUGKD_SEARCH_PATH"
"""The search that `augkd export|compare|report|evaluate` and the notebook read by default."""


def default_storage(workdir: str | Path | None = None) -> str:
    """$AUGKD_STORAGE, else ``augkd_runs`` in the working directory."""
    storage = os.environ.get("AUGKD_STORAGE") or "augkd_runs"
    if "://" in storage:
        return storage
    path = Path(storage).expanduser()
    return str(path if path.is_absolute() else Path(workdir or Path.cwd()).resolve() / path)


SQLITE_PREFIX = "sqlite:///"
"""How a tracking URI names a SQLite file (MLflow's local store)."""


def default_tracking_uri(workdir: str | Path | None = None) -> str:
    """$AUGKD_TRACKING_URI, else ``mlflow.db`` in the working directory."""
    if os.environ.get("AUGKD_TRACKING_URI"):
        return os.environ["AUGKD_TRACKING_URI"]
    return sqlite_tracking_uri(workdir or Path.cwd())


def sqlite_tracking_uri(folder: str | Path) -> str:
    """The tracking URI of the SQLite store ``mlflow.db`` in ``folder`` (absolute, so that it
    names the same file from any working directory)."""
    return f"{SQLITE_PREFIX}{(Path(folder) / 'mlflow.db').resolve()}"


def sqlite_file(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` tracking URI; None for any other store."""
    return Path(uri.removeprefix(SQLITE_PREFIX)) if uri.startswith(SQLITE_PREFIX) else None


def resolve_tracking_uri(given: str | None, workdir: str | Path | None = None) -> str:
    """The tracking store a command uses: the one given (--tracking-uri), else the default."""
    return given or default_tracking_uri(workdir)


def experiment_name(space_name: str) -> str:
    """The MLflow experiment that holds every search of one space."""
    return f"augkd-{space_name}"


def given_search_path(path: str | None) -> str | None:
    """The search named by the command (--search), else by $AUGKD_SEARCH_PATH."""
    return path or os.environ.get(SEARCH_PATH_ENV)


def storage_root(storage: str) -> str:
    """An absolute local path, or the URI as given."""
    return storage if "://" in storage else str(Path(storage).expanduser().resolve())


def local_folder(search_path: str) -> str:
    """Where the driver writes a search's local files (exports, report, Optuna journal):
    the search folder itself, or augkd_exports/<name> when it lives in object storage."""
    if "://" not in search_path:
        return search_path
    return str(Path("augkd_exports").resolve() / search_path.rstrip("/").rsplit("/", 1)[-1])


def stage_cache_root(storage: str) -> str:
    return join_uri(storage_root(storage), STAGE_CACHE)


def storage_of_stage_cache(cache_root: str) -> str:
    """The storage a stage cache root (``stage_cache_root``) lies in; a cache root kept
    elsewhere stands for itself."""
    parent, _, name = cache_root.rstrip("/").rpartition("/")
    return parent if name == STAGE_CACHE and parent else cache_root


NODE_CACHE_ENV = "AUGKD_NODE_CACHE"
"""Set on a node (e.g. in ~/.augkd_env) to move its copies to a bigger disk; ``off`` turns
them off, so every trial reads object storage directly."""


def user_cache_dir() -> Path:
    """augkd's folder under the user's cache folder: $XDG_CACHE_HOME/augkd, else
    ~/.cache/augkd (the default stage cache and the node copies live under it)."""
    cache_home = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache_home).expanduser().resolve() / "augkd"


def node_cache_dir() -> Path | None:
    """Where this node keeps its copies of stage artifacts and teachers from object storage:
    $AUGKD_NODE_CACHE, else ``augkd/nodes`` under the user's cache folder; None when off."""
    chosen = os.environ.get(NODE_CACHE_ENV, "").strip()
    if chosen.lower() == "off":
        return None
    if chosen:
        return Path(chosen).expanduser().resolve()
    return user_cache_dir() / "nodes"


def _children(uri: str) -> list[tuple[str, set[str]]]:
    """(name, file names) of each sub-folder of ``uri``; [] when it is no folder."""
    from pyarrow import fs as pafs

    filesystem, path = resolve_filesystem(uri)
    try:
        infos = filesystem.get_file_info(pafs.FileSelector(path, recursive=False))
    except (FileNotFoundError, NotADirectoryError, OSError):
        return []
    folders = [i for i in infos if i.type == pafs.FileType.Directory]
    out = []
    for info in folders:
        inner = filesystem.get_file_info(pafs.FileSelector(info.path, allow_not_found=True))
        out.append((info.base_name, {i.base_name for i in inner if i.type == pafs.FileType.File}))
    return out


def is_search(uri: str) -> bool:
    """Whether ``uri`` is a search folder (it holds one of SEARCH_MARKERS)."""
    from pyarrow import fs as pafs

    filesystem, path = resolve_filesystem(uri)
    return any(
        filesystem.get_file_info(f"{path}/{marker}").type == pafs.FileType.File
        for marker in SEARCH_MARKERS
    )


def _started(name: str, uri: str) -> float:
    """When a search started: the stamp in its name, else its space file's mtime."""
    match = SEARCH_NAME.match(name)
    if match:
        return datetime.strptime(match["stamp"], "%Y%m%d-%H%M%S").timestamp()
    from pyarrow import fs as pafs

    filesystem, path = resolve_filesystem(uri)
    for marker in SEARCH_MARKERS:
        info = filesystem.get_file_info(f"{path}/{marker}")
        if info.type == pafs.FileType.File and info.mtime is not None:
            return info.mtime.timestamp()
    return 0.0


def latest_search(storage: str, space: str | None = None) -> str | None:
    """The most recently started search under a storage root (of one space, if named)."""
    root = storage_root(storage)
    found = [
        (_started(name, join_uri(root, name)), name)
        for name, files in _children(root)
        if files & set(SEARCH_MARKERS)
        and TUNED_BASELINE not in name
        and (space is None or name.startswith(space + "-") or name == space)
    ]
    return join_uri(root, max(found)[1]) if found else None


def resolve_search(path: str | None, echo: Callable[[str], None] | None = None) -> str:
    """A search folder from ``path``, $AUGKD_SEARCH_PATH or the default storage.

    ``path`` may be a search folder, or a storage root: then the latest search there,
    and ``echo`` is told which. Anything else is a ConfigError naming the path.
    """
    given = given_search_path(path) or default_storage()
    uri = storage_root(given)
    if is_search(uri):
        return uri
    latest = latest_search(uri)
    if latest is not None:
        if echo is not None:
            echo(f"using the latest search under {given}: {latest}")
        return latest
    from pyarrow import fs as pafs

    filesystem, inner = resolve_filesystem(uri)
    if filesystem.get_file_info(inner).type == pafs.FileType.NotFound:
        raise ConfigError(
            f"Search path '{given}' does not exist; pass --search a storage root "
            "(e.g. augkd_runs) or a search folder (e.g. augkd_runs/digits-20261126-120000)."
        )
    raise ConfigError(
        f"'{given}' is neither a search folder nor a storage root holding one; pass --search "
        "a folder that `python search.py` wrote (e.g. augkd_runs or augkd_runs/digits-...)."
    )

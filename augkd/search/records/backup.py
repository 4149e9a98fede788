"""A search's records that must outlive the machine of its driver: the MLflow store and the
Optuna journal, copied into the search's object storage while it runs and restored from there.

On a cluster the driver runs on the head, and both records live on the head's disk: the
MLflow server's SQLite file and the Optuna journal (augkd_exports/<search>/). ``ray down`` or
a lost head would take them along, so while a search whose storage is object storage (s3://)
runs, a thread of the driver copies them to ``<search>/records/mlflow.db`` and
``<search>/optuna.journal`` every ``records_minutes`` (a search-space key) and once more on
every way out (done, failed, Ctrl-C, crash). ``--resume`` brings the copies back when the local
ones are gone; ``augkd restore`` does the same on any machine, e.g. a laptop after ``ray down``.

The SQLite copy is taken with sqlite3's backup API, a consistent snapshot even while MLflow
writes; the journal copy ends at its last whole line. A tracking server with a database of
its own (Postgres, MySQL) needs none of this: only SQLite files are copied.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import tempfile
import threading
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

from augkd.basics.errors import ConfigError
from augkd.search.run.study import STUDY_FILE, journal_path
from augkd.storage.files import join_uri, read_bytes, uri_is_file, write_bytes
from augkd.storage.locations import sqlite_file

log = logging.getLogger(__name__)

MLFLOW_COPY = "records/mlflow.db"
"""Where the MLflow store's copy lives inside the search folder."""
MLFLOW_DB_ENV = "AUGKD_MLFLOW_DB"
"""The SQLite file behind an http:// tracking server on the driver's machine (the cluster
head sets it in ~/.augkd_env), so that the driver can copy the server's store."""


def sqlite_store(tracking_uri: str) -> Path | None:
    """The SQLite file holding the tracking store, when the driver can reach it."""
    database = sqlite_file(tracking_uri)
    if database is not None:
        return database
    behind_server = os.environ.get(MLFLOW_DB_ENV)
    if tracking_uri.startswith(("http://", "https://")) and behind_server:
        return Path(behind_server).expanduser()
    return None


def snapshot(database: Path) -> bytes:
    """A consistent copy of a SQLite database that others may be writing."""
    with tempfile.TemporaryDirectory() as folder:
        target = Path(folder) / "copy.db"
        source = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=30)
        with closing(source), closing(sqlite3.connect(target)) as copy:
            source.backup(copy)
        return target.read_bytes()


def whole_lines(path: Path) -> bytes:
    """The journal up to its last complete line (Optuna may be appending one)."""
    return _cut_at_last_line(path.read_bytes())


def _cut_at_last_line(data: bytes) -> bytes:
    return data[: data.rfind(b"\n") + 1]


FETCH_TRIES = 3


def _fetch_database(uri: str) -> bytes:
    """The copy, checked whole: pyarrow reads an object in ranges, so a read that overlaps
    an upload of a new copy can mix the two (seen with moto's S3); such a read is repeated."""
    for _ in range(FETCH_TRIES):
        data = read_bytes(uri)
        if _is_whole_database(data):
            return data
    raise ConfigError(
        f"The MLflow copy {uri} did not read back as a whole SQLite database "
        f"{FETCH_TRIES} times (is its search running and copying it now?); try again later."
    )


def _is_whole_database(data: bytes) -> bool:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "check.db"
        path.write_bytes(data)
        try:
            with closing(sqlite3.connect(path)) as connection:
                return connection.execute("PRAGMA quick_check").fetchone()[0] == "ok"
        except sqlite3.DatabaseError:
            return False


class RecordKeeper:
    """Copies a search's records to its storage every ``every_s`` seconds (0: only at the
    end) from a thread of the driver, and once more when the search ends in any way."""

    def __init__(
        self,
        tracking_uri: str,
        search_path: str,
        every_s: float,
        echo: Callable[[str], None] = print,
    ) -> None:
        self.search_path = search_path
        self.database = sqlite_store(tracking_uri)
        self.journal = Path(journal_path(search_path))
        self.every_s = every_s
        self.echo = echo
        self.active = "://" in search_path
        self.uploads = 0
        """How many times the records were copied (what the tests count)."""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def __enter__(self) -> RecordKeeper:
        if self.active and self.every_s > 0:
            self._thread = threading.Thread(target=self._every_interval, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if not self.active:
            return
        try:
            self.upload()
        except Exception as error:  # never hide why the search ended
            self.echo(
                f"[search] could not copy the MLflow store and Optuna journal to "
                f"{self.search_path} ({type(error).__name__}: {error}); copy them by hand "
                "before the cluster goes down (docs/cluster.md, Records)."
            )

    def _every_interval(self) -> None:
        while not self._stop.wait(self.every_s):
            try:
                self.upload()
            except Exception as error:  # storage hiccup: try again next interval
                log.warning("could not copy the search's records to storage: %s", error)

    def upload(self) -> None:
        with self._lock:
            if self.database is not None and self.database.is_file():
                write_bytes(join_uri(self.search_path, MLFLOW_COPY), snapshot(self.database))
            if self.journal.is_file():
                write_bytes(join_uri(self.search_path, STUDY_FILE), whole_lines(self.journal))
            self.uploads += 1


def _run_count(database: Path, search_name: str | None = None) -> int:
    """Runs in an MLflow SQLite store (of one search, if named); 0 for an empty file."""
    from augkd.search.records.tracking import SEARCH_TAG

    try:
        with closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as connection:
            if search_name is None:
                return connection.execute("SELECT count(*) FROM runs").fetchone()[0]
            return connection.execute(
                "SELECT count(*) FROM tags WHERE key = ? AND value = ?",
                (SEARCH_TAG, search_name),
            ).fetchone()[0]
    except sqlite3.OperationalError:  # no MLflow tables yet
        return 0


def _put_database(copy: bytes, database: Path) -> None:
    """Write the copy as the store: a new file, or, over an empty store a server may already
    hold open, through the backup API so that its connections see the restored data."""
    database.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=database.parent) as folder:
        staged = Path(folder) / "restored.db"
        staged.write_bytes(copy)
        if not database.exists():
            os.replace(staged, database)
            return
        with (
            closing(sqlite3.connect(staged)) as source,
            closing(sqlite3.connect(database, timeout=30)) as target,
        ):
            source.backup(target)


def restore_records(
    tracking_uri: str, search_path: str, echo: Callable[[str], None] = print
) -> list[str]:
    """Bring back a search's journal and MLflow store from its storage where the local ones
    are gone (a new head, a deleted file); returns what was restored. A local store that
    holds other runs is never overwritten: the copy is named instead."""
    if "://" not in search_path:
        return []
    restored: list[str] = []
    name = search_path.rstrip("/").rsplit("/", 1)[-1]
    journal = Path(journal_path(search_path))
    remote_journal = join_uri(search_path, STUDY_FILE)
    if not journal.exists() and uri_is_file(remote_journal):
        journal.parent.mkdir(parents=True, exist_ok=True)
        journal.write_bytes(_cut_at_last_line(read_bytes(remote_journal)))
        restored.append(str(journal))
        echo(f"[search] restored the Optuna journal {journal} from {remote_journal}")
    database = sqlite_store(tracking_uri)
    remote_store = join_uri(search_path, MLFLOW_COPY)
    if not uri_is_file(remote_store):
        return restored
    if database is None:
        echo(
            f"[search] note: {remote_store} holds a copy of this search's MLflow store, but the "
            f"file behind {tracking_uri} is unknown here; set {MLFLOW_DB_ENV} to it to have it "
            "restored when it is gone, or: augkd restore --search " + search_path
        )
        return restored
    if database.exists() and _run_count(database, name) > 0:
        return restored  # the local store has this search: it is the newer record
    if database.exists() and _run_count(database) > 0:
        echo(
            f"[search] note: the MLflow store {database} holds other runs but none of search "
            f"'{name}'; left it as it is. Its runs are in {remote_store}: "
            f"augkd restore --search {search_path} --tracking-uri sqlite:///other.db"
        )
        return restored
    _put_database(_fetch_database(remote_store), database)
    restored.append(str(database))
    echo(f"[search] restored the MLflow store {database} from {remote_store}")
    return restored


def restore_command(search_path: str, tracking_uri: str, echo: Callable[[str], None]) -> int:
    """`augkd restore`: a search's records onto this machine, refusing to overwrite."""
    if "://" not in search_path:
        raise ConfigError(
            f"--search '{search_path}' is a local folder, whose records are already local; "
            "pass the s3:// search folder that `python search.py` wrote."
        )
    database = sqlite_file(tracking_uri)
    if database is None:
        raise ConfigError(
            f"--tracking-uri {tracking_uri} is not a SQLite file; pass e.g. "
            "--tracking-uri sqlite:///mlflow.db to restore the search's MLflow runs into it."
        )
    if not uri_is_file(join_uri(search_path, MLFLOW_COPY)):
        raise ConfigError(
            f"'{search_path}' holds no copy of an MLflow store ({MLFLOW_COPY}); check --search, "
            "or the search ran with a tracking server that keeps its own database."
        )
    if database.exists() and _run_count(database) > 0:
        raise ConfigError(
            f"The MLflow store {database} already holds runs; pass --tracking-uri "
            "sqlite:///another.db, or move it away first."
        )
    restored = restore_records(tracking_uri, search_path, echo)
    if restored:
        from augkd.search.answer.next_steps import mlflow_ui_command

        echo(f"open MLflow: {mlflow_ui_command(tracking_uri)}")
    return 0

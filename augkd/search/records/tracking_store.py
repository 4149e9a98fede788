"""Whether a search's MLflow store can be used, checked before Ray starts: a server that
answers, a SQLite file that can be written (checked directly: MLflow itself retries a bad
SQLite path for minutes), or another store MLflow can read."""

from __future__ import annotations

import os
import sqlite3
from contextlib import closing
from pathlib import Path

from mlflow.tracking import MlflowClient

from augkd.basics.errors import ConfigError
from augkd.storage.locations import sqlite_file


def check_tracking_uri(uri: str) -> None:
    """Refuse a tracking store that cannot be reached, before any trial starts."""
    if uri.startswith(("http://", "https://")):
        import requests

        try:
            requests.get(uri.rstrip("/") + "/health", timeout=5).raise_for_status()
        except Exception as error:
            raise ConfigError(
                f"MLflow tracking server {uri} cannot be reached ({type(error).__name__}); "
                "start it, or pass --tracking-uri sqlite:///mlflow.db for a local store."
            ) from None
        return
    database = sqlite_file(uri)
    if database is not None:
        _check_sqlite_store(uri, database)
        return
    try:
        MlflowClient(uri).search_experiments(max_results=1)
    except Exception as error:
        raise ConfigError(
            f"Tracking URI {uri} cannot be used ({type(error).__name__}: "
            f"{str(error).splitlines()[0][:200] if str(error) else ''}); "
            "pass --tracking-uri sqlite:///mlflow.db or an http:// server."
        ) from None


def _check_sqlite_store(uri: str, database: Path) -> None:
    """The SQLite file ``database`` of ``uri``: a file, in a writable folder, that opens and
    takes a write."""
    if database.is_dir():
        raise ConfigError(
            f"Tracking URI {uri} names a folder, not a database file; "
            f"pass e.g. --tracking-uri sqlite:///{database / 'mlflow.db'}."
        )
    folder = database.parent
    if not folder.is_dir() or not os.access(folder, os.W_OK):
        raise ConfigError(
            f"Tracking URI {uri} points into '{folder}', which is not a writable folder; "
            "create it or choose another --tracking-uri."
        )
    if database.exists():
        try:
            with closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as connection:
                connection.execute("PRAGMA schema_version")
        except sqlite3.Error as error:
            raise ConfigError(
                f"Tracking URI {uri}: '{database}' is not a usable SQLite database ({error}); "
                "move it aside or choose another --tracking-uri."
            ) from None
        if not _sqlite_writable(database):
            raise ConfigError(
                f"Tracking URI {uri}: '{database}' is read-only, so no run could be logged; "
                "make it writable (chmod u+w) or choose another --tracking-uri."
            )


def _sqlite_writable(database: Path) -> bool:
    """Whether a write to ``database`` would succeed: a table created and rolled back
    (file modes alone do not say: root writes through them, an immutable file refuses
    root too). A store another writer holds locked right now counts as writable."""
    try:
        with closing(
            sqlite3.connect(f"file:{database}?mode=rw", uri=True, timeout=5, isolation_level=None)
        ) as connection:
            connection.execute("BEGIN IMMEDIATE")
            connection.execute("CREATE TABLE augkd_write_probe (x)")
            connection.execute("ROLLBACK")
    except sqlite3.Error as error:
        code = getattr(error, "sqlite_errorcode", 0) & 0xFF
        return code not in (sqlite3.SQLITE_READONLY, sqlite3.SQLITE_PERM, sqlite3.SQLITE_CANTOPEN)
    return True

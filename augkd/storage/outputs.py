"""Where commands write, checked before any work starts: a run must not train for an
hour and then find that it cannot save. Each check ends in one sentence naming the
flag and the path."""

from __future__ import annotations

import re
import tempfile
import uuid
from pathlib import Path

from pyarrow import fs as pafs

from augkd.basics.errors import ConfigError
from augkd.storage.files import resolve_filesystem, write_file


def check_folder_writable(uri: str, flag: str) -> None:
    """A folder (local path or s3://...) that exists or can be made, probed with a
    small file written and deleted again."""
    try:
        filesystem, path = resolve_filesystem(uri)
        is_file = filesystem.get_file_info(path).type == pafs.FileType.File
    except Exception as error:  # pyarrow: OSError subclasses, ArrowInvalid for bad URIs
        raise ConfigError(f"{flag} '{uri}' cannot be used ({why(error)}); check it.") from None
    if is_file:
        raise ConfigError(f"{flag} '{uri}' is a file, not a folder; pass a folder path.")
    probe = f"{path}/.augkd-probe-{uuid.uuid4().hex}"
    try:
        write_file(filesystem, probe, b"probe")
        filesystem.delete_file(probe)
    except Exception as error:
        raise ConfigError(
            f"{flag} '{uri}' is not writable ({why(error)}); pass a folder you can write to."
        ) from None


def check_local_folder(path: str, flag: str) -> None:
    """A local folder that exists or can be made, checked without making it (a command
    that refuses its other input afterwards leaves nothing behind)."""
    target = Path(path).expanduser()
    if target.exists() and not target.is_dir():
        raise ConfigError(f"{flag} '{path}' is a file, not a folder; pass a folder path.")
    _nearest_folder(target, path, flag, "made")


def check_file_writable(path: str, flag: str) -> None:
    """A file path that is not a folder, inside a folder that exists or can be made."""
    target = Path(path).expanduser()
    if target.is_dir():
        raise ConfigError(
            f"{flag} '{path}' is a folder; pass a file path such as {target / 'results.json'}."
        )
    ancestor = _nearest_folder(target, path, flag, "written")
    try:
        with tempfile.NamedTemporaryFile(dir=ancestor, prefix=".augkd-probe-"):
            pass
    except OSError as error:
        raise ConfigError(
            f"{flag} '{path}' cannot be written in '{ancestor}' ({why(error)}); "
            f"choose another {flag}."
        ) from None


def _nearest_folder(target: Path, path: str, flag: str, verb: str) -> Path:
    """The nearest existing ancestor of ``target``, which must be a folder."""
    ancestor = target.parent
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise ConfigError(
            f"{flag} '{path}' cannot be {verb}: '{ancestor}' is a file, not a folder; "
            f"choose another {flag}."
        )
    return ancestor


def why(error: Exception) -> str:
    """The short reason inside an OS or pyarrow error ("Permission denied")."""
    text = getattr(error, "strerror", None) or str(error)
    if "Detail:" in text:
        text = text.rsplit("Detail:", 1)[1]
    text = re.sub(r"\[errno \d+\]\s*", "", text, flags=re.IGNORECASE).strip()
    return text.splitlines()[0][:200] if text else type(error).__name__

"""`augkd report` finds the MLflow store its search logged to, or says what to pass; it
never creates an empty store, and an --out that is a file is one sentence (exit 2)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from augkd import report
from augkd.basics.config import Config
from augkd.basics.errors import ExitCode
from augkd.cli import main as cli_main
from augkd.search.records.results import ResultsTable


@pytest.fixture
def here(tmp_path, monkeypatch):
    """A working directory of the test's own, with no store named by the environment."""
    for name in ("AUGKD_SEARCH_PATH", "AUGKD_TRACKING_URI", "AUGKD_STORAGE"):
        monkeypatch.delenv(name, raising=False)
    workdir = tmp_path / "workdir"
    workdir.mkdir()
    monkeypatch.chdir(workdir)
    return workdir


def _search(folder: Path, tracking_uri: str | None) -> Path:
    """A search folder with one completed trial, recording ``tracking_uri`` as a search
    does in its space file."""
    table = ResultsTable(str(folder))
    table.update("t0", status="completed", best_val_acc1=50.0, config_yaml=Config().to_yaml())
    table.write()
    space = {"name": "digits", "params": {}}
    if tracking_uri is not None:
        space["tracking_uri"] = tracking_uri
    (folder / report.SPACE_FILE).write_text(json.dumps(space))
    return folder


def _one_line(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


def test_report_without_tracking_uri_uses_the_store_the_search_recorded(tmp_path, here):
    store = tmp_path / "elsewhere" / "mlflow.db"
    store.parent.mkdir()
    store.write_bytes(b"")  # exists: the search created it
    search = _search(tmp_path / "digits-20990101-000000", f"sqlite:///{store}")
    data = report.load_search(str(search), strict=True)
    assert data.tracking_uri == f"sqlite:///{store}"


def test_report_without_a_store_says_what_to_pass_and_creates_none(tmp_path, here, capsys):
    search = _search(tmp_path / "digits-20990101-000000", None)
    code = cli_main(["report", "--search", str(search), "--out", str(tmp_path / "r")])
    assert code == ExitCode.BAD_INPUT
    assert _one_line(capsys) == (
        f"error: The MLflow store of search '{search}' was not found: '{here / 'mlflow.db'}' "
        "does not exist; pass --tracking-uri the store the search logged to (the `mlflow ui "
        "--backend-store-uri` it printed)."
    )
    assert not (here / "mlflow.db").exists()
    assert not (tmp_path / "r").exists()


def test_report_out_onto_an_existing_file_is_one_sentence(tmp_path, here, capsys):
    search = _search(tmp_path / "digits-20990101-000000", None)
    taken = tmp_path / "report.html"
    taken.write_text("an earlier report")
    code = cli_main(["report", "--search", str(search), "--out", str(taken)])
    assert code == ExitCode.BAD_INPUT
    assert (
        _one_line(capsys) == f"error: --out '{taken}' is a file, not a folder; pass a folder path."
    )
    assert taken.read_text() == "an earlier report"

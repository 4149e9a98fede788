"""Records that survive the cluster (augkd.search.records.backup): the MLflow store and the Optuna
journal are copied into the search's S3 storage while it runs and on every way out, and come
back when the driver's local copies are lost.

Storage is moto's S3 server; MLflow stores are real SQLite files (and, once, a real
`mlflow server`); the search is a real one on a local Ray."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from contextlib import closing
from pathlib import Path

import optuna
import pytest
import requests
from mlflow.tracking import MlflowClient

from augkd.basics.errors import ConfigError, ExitCode
from augkd.cli import main as augkd_main
from augkd.search.records.backup import (
    MLFLOW_COPY,
    MLFLOW_DB_ENV,
    RecordKeeper,
    restore_records,
    whole_lines,
)
from augkd.search.records.tracking import SEARCH_TAG, TRIAL_TAG
from augkd.search.run.runner import SearchOptions, run_search
from augkd.search.run.study import STUDY_FILE, journal_path, load_study
from augkd.storage.files import read_bytes, uri_is_file, write_bytes
from tests.conftest import free_port
from tests.paths import REPO as ROOT

TINY = ["teacher.epochs=5", "module2.epochs=1", "module3.epochs=3"]


@pytest.fixture
def s3_search(s3_server) -> str:
    return f"{s3_server.bucket('records')}/{uuid.uuid4().hex}/search-1"


def _store_with_runs(database: Path, search: str, runs: int) -> list[str]:
    client = MlflowClient(f"sqlite:///{database}")
    experiment = client.create_experiment(f"e-{uuid.uuid4().hex[:6]}")
    ids = []
    for i in range(runs):
        run = client.create_run(experiment, tags={SEARCH_TAG: search, TRIAL_TAG: str(i)})
        client.log_metric(run.info.run_id, "val_acc1", float(i))
        ids.append(run.info.run_id)
    return ids


def _read_once(uri: str) -> bytes:
    """One GET, as S3 serves an object whole (pyarrow's ranged reads may mix two uploads)."""
    import boto3

    bucket, key = uri.removeprefix("s3://").split("/", 1)
    return boto3.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()


def _integrity(data: bytes, folder: Path) -> tuple[str, int]:
    path = folder / f"{uuid.uuid4().hex}.db"
    path.write_bytes(data)
    with closing(sqlite3.connect(path)) as connection:
        return (
            connection.execute("PRAGMA integrity_check").fetchone()[0],
            connection.execute("SELECT count(*) FROM metrics").fetchone()[0],
        )


def test_copies_of_a_store_that_mlflow_is_writing_are_whole_databases(
    s3_search, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    database = tmp_path / "mlflow.db"
    [run_id] = _store_with_runs(database, "search-1", 1)
    client = MlflowClient(f"sqlite:///{database}")
    writing = threading.Event()
    writing.set()

    def write() -> None:
        step = 0
        while writing.is_set():
            client.log_metric(run_id, "loss", 1.0 / (step + 1), step=step)
            step += 1

    writer = threading.Thread(target=write)
    writer.start()
    seen: list[tuple[str, int]] = []
    try:
        with RecordKeeper(f"sqlite:///{database}", s3_search, every_s=0.05) as keeper:
            while keeper.uploads < 4:
                time.sleep(0.05)
                if uri_is_file(f"{s3_search}/{MLFLOW_COPY}"):
                    seen.append(_integrity(_read_once(f"{s3_search}/{MLFLOW_COPY}"), tmp_path))
    finally:
        writing.clear()
        writer.join()
    assert seen and {check for check, _ in seen} == {"ok"}
    counts = [count for _, count in seen]
    assert counts == sorted(counts) and counts[-1] > counts[0]  # copies follow the writer


@pytest.mark.parametrize("ending", [None, RuntimeError("a trial crashed"), KeyboardInterrupt()])
def test_the_records_are_copied_on_every_way_out(s3_search, tmp_path, monkeypatch, ending):
    monkeypatch.chdir(tmp_path)
    database = tmp_path / "mlflow.db"
    _store_with_runs(database, "search-1", 2)
    journal = Path(journal_path(s3_search))
    journal.parent.mkdir(parents=True)
    journal.write_bytes(b'{"op_code": 0}\n')

    def run() -> None:
        with RecordKeeper(f"sqlite:///{database}", s3_search, every_s=0):  # only at the end
            if ending is not None:
                raise ending

    if ending is None:
        run()
    else:
        with pytest.raises(type(ending)):
            run()
    assert read_bytes(f"{s3_search}/{STUDY_FILE}") == b'{"op_code": 0}\n'
    assert _integrity(read_bytes(f"{s3_search}/{MLFLOW_COPY}"), tmp_path) == ("ok", 2)


def test_the_journal_copy_ends_at_its_last_whole_line(tmp_path):
    journal = tmp_path / "optuna.journal"
    journal.write_bytes(b'{"op_code": 0}\n{"op_code": 4, "tri')  # Optuna is appending
    assert whole_lines(journal) == b'{"op_code": 0}\n'


def test_a_local_store_with_other_runs_is_never_overwritten(s3_search, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_bytes(f"{s3_search}/{MLFLOW_COPY}", b"whatever the search copied")
    database = tmp_path / "mlflow.db"
    mine = _store_with_runs(database, "another-search", 1)
    said: list[str] = []
    assert restore_records(f"sqlite:///{database}", s3_search, said.append) == []
    assert "holds other runs but none of search 'search-1'" in said[0]
    assert "augkd restore --search" in said[0]
    client = MlflowClient(f"sqlite:///{database}")
    assert client.get_run(mine[0]).info.run_id == mine[0]

    assert augkd_main(["restore", "--search", s3_search, "--tracking-uri",
                       f"sqlite:///{database}"]) == ExitCode.BAD_INPUT  # fmt: skip


def test_a_server_whose_file_is_unknown_gets_a_note_not_a_guess(s3_search, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(MLFLOW_DB_ENV, raising=False)
    write_bytes(f"{s3_search}/{MLFLOW_COPY}", b"a copy")
    said: list[str] = []
    assert restore_records("http://10.0.0.5:5000", s3_search, said.append) == []
    assert said == [
        f"[search] note: {s3_search}/{MLFLOW_COPY} holds a copy of this search's MLflow store, "
        "but the file behind http://10.0.0.5:5000 is unknown here; set AUGKD_MLFLOW_DB to it to "
        f"have it restored when it is gone, or: augkd restore --search {s3_search}"
    ]


def test_a_copy_that_does_not_read_back_whole_is_named_not_restored(
    s3_search, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    good = tmp_path / "good.db"
    _store_with_runs(good, "search-1", 2)
    data = good.read_bytes()
    page = 4096
    mixed = data[: 2 * page] + bytes(page) + data[3 * page :]  # a page of another version
    write_bytes(f"{s3_search}/{MLFLOW_COPY}", mixed)
    write_bytes(f"{s3_search}/{STUDY_FILE}", b'{"op_code": 0}\n{"op_code": 4, "tri')
    database = tmp_path / "mlflow.db"
    with pytest.raises(ConfigError, match="did not read back as a whole SQLite database 3 times"):
        restore_records(f"sqlite:///{database}", s3_search, lambda _: None)
    assert not database.exists()
    assert Path(journal_path(s3_search)).read_bytes() == b'{"op_code": 0}\n'  # whole lines


def test_restore_names_a_search_without_a_copy(s3_search, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    write_bytes(f"{s3_search}/search_space.json", b"{}")  # a search folder, without records
    code = augkd_main(["restore", "--search", s3_search])
    assert code == ExitCode.BAD_INPUT
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "holds no copy of an MLflow store" in err
    assert not (tmp_path / "mlflow.db").exists()


def test_an_empty_store_behind_a_running_mlflow_server_gets_the_copy(
    s3_search, tmp_path, monkeypatch
):
    """A new head: its MLflow server already runs on a fresh SQLite file when --resume
    restores the search's copy into that file; the server then serves the restored runs."""
    monkeypatch.chdir(tmp_path)
    old = tmp_path / "old" / "mlflow.db"
    old.parent.mkdir()
    run_ids = _store_with_runs(old, "search-1", 3)
    with RecordKeeper(f"sqlite:///{old}", s3_search, every_s=0):
        pass

    fresh = tmp_path / "head" / "mlflow.db"
    fresh.parent.mkdir()
    port = free_port()
    uri = f"http://127.0.0.1:{port}"
    with (tmp_path / "server.log").open("w") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port",
             str(port), "--workers", "1", "--backend-store-uri", f"sqlite:///{fresh}"],
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        while True:
            assert server.poll() is None, (tmp_path / "server.log").read_text()
            try:
                if requests.get(f"{uri}/health", timeout=1).ok:
                    break
            except requests.RequestException:  # not listening, or still starting
                time.sleep(0.2)
        client = MlflowClient(uri)
        assert client.search_runs(["0"]) == []
        monkeypatch.setenv(MLFLOW_DB_ENV, str(fresh))
        assert restore_records(uri, s3_search, lambda _: None) == [str(fresh)]
        experiments = client.search_experiments()
        found = client.search_runs([e.experiment_id for e in experiments])
        assert sorted(run.info.run_id for run in found) == sorted(run_ids)
    finally:
        server.terminate()
        server.wait()


# --- a whole search ------------------------------------------------------------------------


def _mlflow_runs(tracking_uri: str, name: str) -> dict[str, tuple]:
    client = MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name("augkd-digits")
    runs = client.search_runs(
        [experiment.experiment_id], filter_string=f"tags.`{SEARCH_TAG}` = '{name}'"
    )
    return {
        run.info.run_id: (run.data.tags[TRIAL_TAG], run.data.metrics.get("epoch")) for run in runs
    }


def _optuna_trials(search_path: str) -> list[tuple]:
    study: optuna.Study = load_study(search_path)
    return [
        (t.number, t.state.name, t.params, t.value, dict(t.intermediate_values))
        for t in study.trials
    ]


@pytest.mark.slow
def test_resume_on_a_machine_without_the_records_brings_back_every_run_and_trial(
    s3_server, local_ray, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    storage = f"{s3_server.bucket('records')}/{uuid.uuid4().hex}"
    tracking_uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    options = SearchOptions(
        space="digits", storage=storage, name="kept", tracking_uri=tracking_uri,
        smoke_test=True, num_samples=3, overrides=TINY,
    )  # fmt: skip
    outcome = run_search(options, echo=lambda *a, **k: None)
    runs, trials = _mlflow_runs(tracking_uri, "kept"), _optuna_trials(outcome.search_path)
    assert len(runs) == 4 and len(trials) == 3  # the parent and a run per trial
    assert {state for _, state, *_ in trials} <= {"COMPLETE", "PRUNED"}

    # the head is gone, with its MLflow store and the driver's journal; a new driver (a
    # process of its own, with a Ray of its own) resumes the search
    (tmp_path / "mlflow.db").unlink()
    Path(journal_path(outcome.search_path)).unlink()
    command = [
        sys.executable, str(ROOT / "search.py"), "--space", "digits", "--storage", storage,
        "--name", "kept", "--tracking-uri", tracking_uri, "--smoke-test", "--num-samples", "3",
        "--address", "local", "--resume", *[arg for key in TINY for arg in ("--set", key)],
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    resumed = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    said = resumed.stdout.splitlines()
    assert any(line.startswith("[search] restored the MLflow store") for line in said), said
    assert any(line.startswith("[search] restored the Optuna journal") for line in said), said
    assert _mlflow_runs(tracking_uri, "kept") == runs
    assert _optuna_trials(outcome.search_path) == trials

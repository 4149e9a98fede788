"""One search per name (augkd.search.prepare.name_lock): a second search with a running one's name,
or a finished one's name without --resume, is refused before Ray starts with one sentence
naming it and --resume; a dead driver's hold on a name is taken over."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import pytest
import ray
from mlflow.tracking import MlflowClient

from augkd.basics.errors import ConfigError, ExitCode
from augkd.search.prepare.name_lock import hold_search_name
from augkd.search.records.results import load_results
from augkd.search.records.tracking import SEARCH_TAG, TRIAL_TAG
from augkd.storage.files import resolve_filesystem, uri_is_file, write_bytes
from tests.conftest import ROOT

TRIALS = 2
TINY = ["method=ce", "teacher.epochs=2"]
"""The teacher and Module 3 only: the smallest whole search."""
HOLDER = """
import sys
from augkd.search.prepare.name_lock import hold_search_name
with hold_search_name(sys.argv[1], sys.argv[2], sys.argv[3], False, 60.0, print):
    print("held", flush=True)
    sys.stdin.read()
"""


def _search_command(storage: str, name: str, tracking_uri: str, *extra: str) -> list[str]:
    return [
        sys.executable, str(ROOT / "search.py"), "--space", "digits", "--smoke-test",
        "--num-samples", str(TRIALS), "--storage", storage, "--name", name,
        "--tracking-uri", tracking_uri, "--address", "local",
        *(item for setting in TINY for item in ("--set", setting)), *extra,
    ]  # fmt: skip


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}


def _one_line(err: str) -> str:
    assert "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


def _running_sentence(name: str, storage: str) -> str:
    return f"error: search '{name}' is already running in {storage} (by process "


def _storage_for(kind: str, tmp_path: Path, s3_server) -> str:
    if kind == "local":
        return str(tmp_path / "runs")
    return f"{s3_server.bucket('name-lock')}/{uuid.uuid4().hex}"


@pytest.fixture
def s3_if_asked(request):
    """The S3 test server for the s3 cases only (a local case starts no moto)."""
    return request.getfixturevalue("s3_server") if request.node.callspec.id == "s3" else None


def test_name_held_by_a_live_driver_is_refused_before_ray_then_free_once_it_died(
    tmp_path, search_main, capsys
):
    storage, name = str(tmp_path / "runs"), "held"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, f"{storage}/{name}", name, storage],
        env=_env(), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline() == "held\n"
        tracking = tmp_path / "mlflow.db"
        code = search_main(
            ["--space", "digits", "--storage", storage, "--name", name,
             "--tracking-uri", f"sqlite:///{tracking}", "--address", "local"]
        )  # fmt: skip
        line = _one_line(capsys.readouterr().err)
        assert code == ExitCode.BAD_INPUT
        assert line.startswith(_running_sentence(name, storage) + f"{holder.pid} on ")
        assert line.endswith(
            f"wait for it to end, or stop it and continue it with --resume --name {name}, "
            "or give this search another --name."
        )
        assert not ray.is_initialized() and not tracking.exists()  # refused before both
    finally:
        holder.kill()  # a driver that dies without letting go
        holder.wait()
    with hold_search_name(f"{storage}/{name}", name, storage, False, 60.0, print):
        pass  # the OS freed the dead driver's lock at once


def test_dead_drivers_lease_on_s3_is_taken_over_and_a_live_one_refused(s3_server):
    storage = f"{s3_server.bucket('name-lock')}/{uuid.uuid4().hex}"
    search_path = f"{storage}/lease"
    lease = f"{search_path}/.locks/search.lease"
    write_bytes(lease, b"a-dead-driver:7")  # never renewed again
    notes: list[str] = []
    errors: list[BaseException] = []
    held, done = threading.Event(), threading.Event()

    def live_driver() -> None:
        try:
            with hold_search_name(search_path, "lease", storage, False, 1.0, notes.append):
                held.set()
                done.wait()
        except BaseException as error:
            errors.append(error)
        finally:
            held.set()

    driver = threading.Thread(target=live_driver)
    driver.start()
    try:
        held.wait()  # taken over after one unrenewed lease period
        assert errors == []
        assert notes[0].startswith("[search] 'lease' has a lease in ")
        with (  # its heartbeat shows it alive
            pytest.raises(ConfigError) as refused,
            hold_search_name(search_path, "lease", storage, False, 1.0, notes.append),
        ):
            pass
        assert str(refused.value).startswith(
            f"search 'lease' is already running in {storage} (by process {os.getpid()} on "
        )
    finally:
        done.set()
        driver.join()
    filesystem, path = resolve_filesystem(lease)
    assert not filesystem.get_file_info(path).is_file  # let go when the search ended


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["local", "s3"])
def test_two_searches_with_one_name_started_together_one_refused_the_other_whole(
    kind, tmp_path, s3_if_asked
):
    storage, name = _storage_for(kind, tmp_path, s3_if_asked), "twins"
    tracking_uri = f"sqlite:///{tmp_path / 'mlflow.db'}"  # new: no tables yet
    command = _search_command(storage, name, tracking_uri)
    pipes = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "text": True}
    searches = [subprocess.Popen(command, cwd=tmp_path, env=_env(), **pipes) for _ in range(2)]
    ended = [(search.pid, *search.communicate(), search.returncode) for search in searches]
    refused = [e for e in ended if e[3] == ExitCode.BAD_INPUT]
    finished = [e for e in ended if e[3] == ExitCode.OK]
    assert len(refused) == 1 and len(finished) == 1, ended
    winner_pid, _, _, _ = finished[0]
    line = _one_line(refused[0][2])
    assert line.startswith(_running_sentence(name, storage) + f"{winner_pid} on "), line
    assert "--resume --name twins" in line
    assert "Ray" not in refused[0][1]  # refused before Ray started
    search_path = f"{storage}/{name}"
    rows = load_results(search_path)
    assert len(rows) == TRIALS and {row["status"] for row in rows} == {"completed"}
    client = MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name("augkd-digits")
    runs = client.search_runs(
        [experiment.experiment_id], filter_string=f"tags.`{SEARCH_TAG}` = '{name}'"
    )
    assert sorted(run.data.tags[TRIAL_TAG] for run in runs) == sorted(
        ["parent", *(row["trial_id"] for row in rows)]
    )  # one parent, the winner's trials only
    assert not uri_is_file(f"{search_path}/.locks/search.holder.json")

    again = subprocess.run(command, cwd=tmp_path, env=_env(), capture_output=True, text=True)
    assert again.returncode == ExitCode.BAD_INPUT
    assert _one_line(again.stderr) == (
        f"error: search '{name}' already ran in {storage}; continue it with --resume "
        f"--name {name}, or give this search another --name."
    )
    assert len(load_results(search_path)) == TRIALS  # nothing appended

"""Everything a search can check before Ray starts is refused before Ray starts: exit
2, one sentence naming the file or flag, no Ray, and no MLflow run left behind."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import ray

from augkd.basics.errors import ConfigError, ExitCode
from augkd.search.prepare.request import SearchOptions, requested_space
from augkd.search.run.runner import run_search
from tests.basics.test_exit_codes import one_line
from tests.conftest import ROOT


@pytest.fixture
def refused(search_main, tmp_path, capsys, monkeypatch):
    """Run search.py's main in an empty folder; it must refuse before Ray starts.
    Returns the one stderr line."""
    monkeypatch.chdir(tmp_path)

    def run(*argv: str) -> str:
        defaults = {"--storage": "runs", "--tracking-uri": f"sqlite:///{tmp_path / 'mlflow.db'}"}
        extra = [
            item for flag, value in defaults.items() if flag not in argv for item in (flag, value)
        ]
        try:
            code = search_main([*argv, *extra])
        except SystemExit as exit_:  # argparse refuses flags itself, with the same code
            code = exit_.code
        assert code == ExitCode.BAD_INPUT
        assert not ray.is_initialized()
        assert not (tmp_path / "mlflow.db").exists()  # no parent run, RUNNING or not
        return one_line(capsys.readouterr())

    return run


def test_space_that_is_not_yaml_is_named_with_its_line(refused, tmp_path):
    space = tmp_path / "broken.yaml"
    space.write_text("params:\n  module3.a: {type: float, low: [0.1\n")
    line = refused("--space", str(space))
    assert line.startswith(f"error: Search space '{space}' is not valid YAML at line 3")


def test_space_that_is_a_yaml_list_is_named(refused, tmp_path):
    space = tmp_path / "list.yaml"
    space.write_text("- module3.a\n- module3.b\n")
    line = refused("--space", str(space))
    assert line.startswith(f"error: Search space '{space}' holds a YAML list, not a mapping")


def test_storage_that_is_a_file_is_refused(refused, tmp_path):
    (tmp_path / "runs_file").write_text("")
    line = refused("--storage", "runs_file")
    resolved = (tmp_path / "runs_file").resolve()
    assert line == f"error: --storage '{resolved}' is a file, not a folder; pass a folder path."


def test_storage_in_a_read_only_folder_is_refused(refused, tmp_path):
    if os.geteuid() == 0:  # root writes through file modes; sysfs refuses even root
        read_only = "/sys"
    else:
        (tmp_path / "read_only").mkdir(mode=0o555)
        read_only = str((tmp_path / "read_only").resolve())
    line = refused("--storage", read_only)
    assert line.startswith(f"error: --storage '{read_only}' is not writable (")


@pytest.mark.parametrize("store", ["folder", "damaged"])
def test_tracking_store_that_cannot_be_used_is_refused(store, refused, tmp_path):
    if store == "folder":
        uri, named = f"sqlite:///{tmp_path}", "names a folder, not a database file"
    else:
        (tmp_path / "damaged.db").write_text("not sqlite")
        uri, named = f"sqlite:///{tmp_path / 'damaged.db'}", "is not a usable SQLite database"
    line = refused("--tracking-uri", uri)
    assert line.startswith(f"error: Tracking URI {uri}") and named in line


def test_cuda_device_without_gpu_resources_is_refused(refused):
    line = refused("--set", "device=cuda")
    assert line.startswith("error: config key 'device' is 'cuda' but resources.gpu is 0")


def test_trial_count_is_blamed_on_the_flag_that_set_it(refused):
    line = refused("--num-samples", "0")
    assert line.startswith("error: argument --num-samples: must be 1 or more, got 0")
    line = refused("--set", "num_samples=0")
    assert "--set num_samples:" in line and "search-space key" not in line


def test_a_reuse_actors_that_is_not_true_or_false_is_refused_naming_the_key(refused):
    line = refused("--set", "reuse_actors=maybe")
    assert "--set reuse_actors: Input should be a valid boolean" in line


def test_resume_of_nothing_is_refused(refused):
    line = refused("--resume", "--name", "never-ran")
    assert "/never-ran' holds no saved search to resume" in line


def test_resume_with_a_damaged_results_table_names_it(refused, tmp_path):
    search = tmp_path / "runs" / "damaged"
    search.mkdir(parents=True)
    (search / "tuner.pkl").write_bytes(b"")  # what Tuner.can_restore looks for
    (search / "results.parquet").write_bytes(b"PAR1 cut short")
    line = refused("--resume", "--name", "damaged")
    assert f"Results table '{search / 'results.parquet'}' cannot be read" in line


def test_search_py_exits_2_as_a_process(tmp_path):
    space = tmp_path / "list.yaml"
    space.write_text("- a\n")
    done = subprocess.run(
        [sys.executable, str(ROOT / "search.py"), "--space", str(space), "--storage", "runs"],
        cwd=tmp_path, capture_output=True, text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    assert done.returncode == ExitCode.BAD_INPUT
    assert done.stderr.startswith(f"error: Search space '{space}' holds a YAML list")
    assert done.stderr.count("\n") == 1 and done.stdout == ""
    assert not (tmp_path / "runs").exists() and not (tmp_path / "mlflow.db").exists()


def test_read_only_tracking_file_is_refused_before_ray(refused, tmp_path):
    """It used to pass these checks and die with a traceback after the shared stages."""
    import sqlite3

    database = tmp_path / "readonly.db"
    with sqlite3.connect(database) as connection:
        connection.execute("CREATE TABLE runs (x)")
    connection.close()
    if os.geteuid() == 0:  # root writes through file modes; an immutable file refuses root
        if subprocess.run(["chattr", "+i", str(database)], capture_output=True).returncode:
            pytest.skip("chattr +i is not allowed here, and root writes through file modes")
    else:
        database.chmod(0o444)
    try:
        line = refused("--tracking-uri", f"sqlite:///{database}")
    finally:
        if os.geteuid() == 0:
            subprocess.run(["chattr", "-i", str(database)], check=True)
    assert line == (
        f"error: Tracking URI sqlite:///{database}: '{database}' is read-only, so no run could "
        "be logged; make it writable (chmod u+w) or choose another --tracking-uri."
    )


def test_unreachable_tracking_server_is_refused_at_start(tmp_path):
    options = SearchOptions(storage=str(tmp_path), tracking_uri="http://127.0.0.1:9")
    with pytest.raises(ConfigError, match="cannot be reached"):
        run_search(options)
    assert not ray.is_initialized()


def test_set_added_on_resume_for_a_searched_key_is_refused(tmp_path):
    """The restored searcher would sample the key and override the --set value; a key the
    search fixed from its start stays fixed on resume."""
    from augkd.search.prepare.before_ray import check_fixed_keys_on_resume
    from augkd.search.prepare.space import write_recorded_space

    started = requested_space(SearchOptions(space="digits"), lambda _: None)
    write_recorded_space(str(tmp_path), started)
    again = requested_space(SearchOptions(space="digits", overrides=["module3.a=0.5"]), print)
    with pytest.raises(ConfigError) as refused:
        check_fixed_keys_on_resume(again, str(tmp_path))
    assert str(refused.value) == (
        "--set module3.a: the search being resumed samples this key, and a resumed search "
        "keeps its space; drop the --set, or start a new search to fix it."
    )
    write_recorded_space(str(tmp_path), again)  # fixed from the start: resumes as it ran
    check_fixed_keys_on_resume(again, str(tmp_path))

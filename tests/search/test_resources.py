"""No input exhausts or hangs the machine: a search whose stage cannot fit is refused before
Ray starts; a stage task Ray kills for memory ends the search at once with the keys that set
its size and the command that continues (never Ray's endless re-runs); an --address where no
Ray listens ends with exit 2; and every command printed for a shell survives a space in a path.

Nothing here allocates much: the refusals are of estimates, and the kill for memory is Ray's
own memory monitor, set to a threshold this machine is always above, in a Ray of the test's."""

from __future__ import annotations

import http.server
import os
import re
import shlex
import signal
import subprocess
import sys
import threading
import time

import pytest
import ray
import torch

from augkd.basics.config import MEMORY_SHARE, load_config, with_overrides
from augkd.basics.errors import ConfigError, ExitCode, WorkersLostError
from augkd.hardware.free_memory import host_available_bytes
from augkd.method.memory import check_config_before_work, estimate_stages
from augkd.search.answer.next_steps import mlflow_ui_command
from augkd.search.prepare.request import SearchOptions
from augkd.search.run.ending import resume_command
from augkd.search.run.ray_session import check_reachable
from augkd.search.run.study import open_commands
from augkd.search.run.trainable import memory_kill_sentence
from augkd.search.stages.stage_jobs import StageJob, gather, sizes_of
from tests.conftest import ROOT, free_port
from tests.search.prepare.test_before_ray import refused  # noqa: F401  (a fixture)

CPU = torch.device("cpu")


def test_a_search_whose_module1_cannot_fit_is_refused_before_ray_starts(refused):  # noqa: F811
    line = refused("--smoke-test", "--space", "digits", "--set", "module1.batch_size=100000000")
    assert line.startswith("error: Module 1 would need about ")
    assert "at module1.batch_size=100000000, but this machine has " in line
    assert "lower module1.batch_size to " in line


def test_a_searched_batch_size_is_checked_at_its_largest_choice(refused, tmp_path):  # noqa: F811
    space = tmp_path / "big.yaml"
    space.write_text(
        "name: big\nbase_config: null\n"
        "params:\n  module1.batch_size: {type: categorical, choices: [32, 100000000]}\n"
    )
    line = refused("--space", str(space), "--smoke-test")
    assert "at module1.batch_size=100000000, but this machine has " in line


def test_module1s_that_run_at_once_are_counted_together(refused, tmp_path):  # noqa: F811
    """A searched key Module 1 depends on makes it per trial: four trials at once (a half CPU
    each) need four times its memory. The batch is chosen so that one fits and four do not."""
    config = load_config(None)
    (one,) = estimate_stages(config, 10, config.teacher.arch, ["module1"])
    batch = int(one.largest_value(int(host_available_bytes() * MEMORY_SHARE)) * 0.6)
    check_config_before_work(with_overrides(config, {"module1.batch_size": batch}), CPU)
    space = tmp_path / "four.yaml"
    space.write_text(
        "name: four\nmax_concurrent: 4\nresources: {cpu: 0.5}\n"
        "params:\n  module1.balance_weight: {type: categorical, choices: [10.0, 20.0]}\n"
    )
    line = refused("--space", str(space), "--set", f"module1.batch_size={batch}")
    # four trials at once, or two on a one-CPU machine: either way more than fits
    assert re.match(r"error: Module 1 \((4|2) at once\) would need about ", line), line
    assert f"at module1.batch_size={batch}, but this machine has " in line


# -- a stage task killed for memory ----------------------------------------------------------


@pytest.fixture
def ray_that_kills_for_memory():
    """A Ray of the test's own whose memory monitor finds the node always above its
    threshold (1 %), so it kills the task that runs: what Ray's OOM killer does on a full
    node, without filling one."""
    ray.init(
        address="local", num_cpus=1, include_dashboard=False, log_to_driver=False,
        _system_config={"memory_usage_threshold": 0.01, "memory_monitor_refresh_ms": 100},
    )  # fmt: skip
    yield
    ray.shutdown()


@ray.remote(max_retries=0)
def _a_stage_that_runs_a_while() -> dict:
    time.sleep(60)
    return {}


def test_a_stage_task_killed_for_memory_ends_at_once_naming_its_keys(ray_that_kills_for_memory):
    config = load_config(None, ["module1.batch_size=4096"])
    submitted: list[float] = []

    def submit():
        submitted.append(time.time())
        return _a_stage_that_runs_a_while.remote()

    job = StageJob("shared-stage (seed 0)", submit, sizes_of(config, True, True, True))
    rerun = "python search.py --name 'my search' --storage '/data/a b'"
    with pytest.raises(WorkersLostError) as raised:
        gather([job], retries=3, rerun=rerun)
    assert len(submitted) == 1  # not run again: the same size would be killed again
    assert str(raised.value) == (
        "Ray killed the shared-stage (seed 0) task for want of memory (Module 1: "
        "module1.batch_size=4096; encoder adaptation: encoder_adapt.batch_size=64; Module 2: "
        "module2.batch_size=128); the stages it finished stay cached: lower that size (or "
        f"free memory on the node), then continue the search with: {rerun}"
    )
    assert raised.value.exit_code == ExitCode.WORKERS_LOST

    # A trial whose worker Ray kills so: its record says the same, not Tune's traceback.
    with pytest.raises(ray.exceptions.OutOfMemoryError) as killed:
        ray.get(_a_stage_that_runs_a_while.remote())
    traceback_end = f"ray.exceptions.{type(killed.value).__name__}: {killed.value}"
    base = load_config(None, ["module3.batch_size=512"]).to_dict()
    assert memory_kill_sentence(traceback_end, base, {"method": "no_anchor"}) == (
        "Ray killed the trial's worker for want of memory (Module 1: module1.batch_size=64; "
        "encoder adaptation: encoder_adapt.batch_size=64; Module 3: module3.batch_size=512); "
        "lower that batch size or max_concurrent (fewer trials at once), then resume the search"
    )
    assert memory_kill_sentence("ValueError: a bug", base, {}) is None


@pytest.fixture
def plain_ray():
    ray.init(address="local", num_cpus=1, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@ray.remote(max_retries=0)
def _a_stage_the_kernel_kills() -> dict:
    os.kill(os.getpid(), signal.SIGKILL)  # how the kernel's OOM killer ends a process
    return {}


def test_a_stage_worker_killed_by_sigkill_runs_again_then_ends_naming_its_keys(plain_ray):
    config = load_config(None)
    submitted: list[float] = []

    def submit():
        submitted.append(time.time())
        return _a_stage_the_kernel_kills.remote()

    job = StageJob("shared-stage (seed 0)", submit, sizes_of(config, True, False, False))
    with pytest.raises(WorkersLostError) as raised:
        gather([job], retries=1, rerun="python search.py --name s")
    assert len(submitted) == 2  # stage_retries=1: once more, then the sentence
    assert str(raised.value) == (
        "The shared-stage (seed 0) task lost its worker 2 times (stage_retries=1), the last "
        "time because its worker process died (the kernel kills one that runs out of memory; "
        "Module 1: module1.batch_size=64); the stages it finished stay cached, so continue the "
        "search with: python search.py --name s"
    )


# -- an address where no Ray listens ---------------------------------------------------------


def test_an_address_where_no_ray_listens_ends_with_exit_2_and_one_sentence(tmp_path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env["OMP_NUM_THREADS"] = "1"
    run = subprocess.run(
        [sys.executable, str(ROOT / "search.py"), "--smoke-test", "--space", "digits",
         "--address", f"127.0.0.1:{port}", "--storage", str(tmp_path / "runs"),
         "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}"],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300,  # safety only
    )  # fmt: skip
    assert run.returncode == ExitCode.BAD_INPUT, run.stderr[-2000:]
    assert run.stderr.strip() == (
        f"error: --address 127.0.0.1:{port}: no Ray cluster answers there (connection "
        "refused); start one with `ray start --head` and pass the address it prints, or leave "
        "out --address (and $RAY_ADDRESS) to run a local Ray."
    )


def test_an_address_where_another_server_listens_is_not_taken_for_ray():
    server = http.server.HTTPServer(("127.0.0.1", 0), _Quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        address = f"127.0.0.1:{server.server_port}"
        with pytest.raises(ConfigError, match="a server listens there, but not Ray's"):
            check_reachable(address, "--address", wait_s=2)
    finally:
        server.shutdown()


class _Quiet(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


def test_an_address_that_is_not_host_and_port_is_named():
    with pytest.raises(ConfigError, match=r"^--address 'nowhere' is not auto or HOST:PORT"):
        check_reachable("nowhere", "--address")


# -- printed commands quote their paths ------------------------------------------------------


def test_printed_commands_survive_a_space_in_a_path(tmp_path):
    storage = tmp_path / "my runs"
    uri = f"sqlite:///{tmp_path / 'my store' / 'mlflow.db'}"
    options = SearchOptions(space="digits", overrides=["module3.lr=0.01"])
    again = resume_command(options, "digits-1", str(storage), uri, program="search.py")
    argv = shlex.split(again)
    assert argv[argv.index("--storage") + 1] == str(storage)
    assert argv[argv.index("--tracking-uri") + 1] == uri
    assert shlex.split(mlflow_ui_command(uri)) == ["mlflow", "ui", "--backend-store-uri", uri]


def test_the_printed_study_commands_open_a_journal_under_a_path_with_a_space(tmp_path):
    """The printed Python command, run by a shell, opens a real study in a folder whose name
    holds a space and a quote."""
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    from augkd.search.run.study import journal_path, study_name

    search = tmp_path / "it's my search" / "digits-1"
    search.mkdir(parents=True)
    storage = JournalStorage(JournalFileBackend(str(journal_path(str(search)))))
    study = optuna.create_study(study_name=study_name(str(search)), storage=storage)
    study.add_trial(optuna.trial.create_trial(params={}, distributions={}, value=1.0))
    dashboard, load = open_commands(str(search))
    assert shlex.split(dashboard) == ["optuna-dashboard", str(journal_path(str(search)))]
    env = {**os.environ, "PATH": f"{os.path.dirname(sys.executable)}:{os.environ['PATH']}"}
    printed = subprocess.run(
        ["bash", "-c", load], capture_output=True, text=True, env=env, timeout=120
    )  # timeout: safety only
    assert printed.returncode == 0, printed.stderr[-2000:]
    assert "COMPLETE" in printed.stdout

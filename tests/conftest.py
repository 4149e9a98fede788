"""Shared fixtures: a tiny but real configuration, a session-wide stage cache, and one
tiny real search (Ray Tune + Optuna + ASHA + MLflow) that several modules read."""

from __future__ import annotations

import importlib.util
import signal
from collections import Counter
from pathlib import Path

import pytest

from augkd.basics.config import Config, load_config
from tests.paths import REPO as ROOT

TINY = [
    "teacher.epochs=12",
    "module1.epochs=1",
    "module1.iters_per_epoch=4",
    "module1.student_steps=2",
    "encoder_adapt.epochs=1",
    "module2.epochs=2",
    "module3.epochs=3",
]


def sigint_as_from_a_terminal() -> None:
    """preexec_fn of a child that a test interrupts: a test run in the background (`pytest &`)
    starts children with SIGINT ignored, and a CI runner may start them with it blocked;
    either way Python would never turn the test's SIGINT into Ctrl-C."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGINT])


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test that reads the session's tiny search is slow (it waits for a real search,
    about 45 s here, before it starts), whatever it does then: the quick tier stays free of
    Ray searches. Then files with the most slow tests first, each file's tests in their own
    order. The two xdist workers take whole files from the front of this list (`--dist
    loadfile --no-loadscope-reorder`), so the long files start early and the short ones fill
    the end, rather than one worker finishing a cluster file alone while the other sits
    idle."""
    for item in items:
        if "tiny_search" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.slow)

    def file_of(item: pytest.Item) -> str:
        return item.nodeid.split("::")[0]

    slow_in_file = Counter(file_of(item) for item in items if item.get_closest_marker("slow"))
    items.sort(key=lambda item: -slow_in_file[file_of(item)])


def free_port() -> int:
    """A loopback port free right now (servers the tests start bind to loopback only)."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="session", autouse=True)
def node_copies_folder(tmp_path_factory: pytest.TempPathFactory):
    """Node copies of S3 artifacts (augkd.storage.node_cache) go to a test folder, not ~/.cache; set
    before any Ray starts, so its nodes inherit it."""
    from augkd.storage.locations import NODE_CACHE_ENV

    folder = tmp_path_factory.mktemp("node_copies")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(NODE_CACHE_ENV, str(folder))
        yield folder


@pytest.fixture(scope="session")
def cache_home(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(tmp_path_factory.mktemp("augkd_cache"))


@pytest.fixture
def tiny_config(cache_home: str) -> Config:
    return load_config(None, [*TINY, f"teacher.cache_dir={cache_home}"])


@pytest.fixture(scope="session")
def search_main():
    """search.py's main(), run in-process: `python search.py` exits with what it returns."""
    spec = importlib.util.spec_from_file_location("search_script", ROOT / "search.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


TINY_SEARCH = ["teacher.epochs=5", "module2.epochs=1", "module3.epochs=3"]


@pytest.fixture(scope="session")
def tiny_search(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> dict:
    """One real smoke-size search (3 trials of up to 3 epochs, ASHA rungs at 1 and 2), in
    a Ray of its own that is shut down again. Tests read it; none may change it. Run once
    per test session, not once per xdist worker: the first worker to need it runs it under
    a file lock in the folder the workers share, the other reads what it wrote."""
    import json

    from filelock import FileLock

    from augkd.search.records.results import load_results

    base = tmp_path_factory.getbasetemp()
    shared = base if worker_id == "master" else base.parent
    written = shared / "tiny_search.json"
    with FileLock(str(shared / "tiny_search.lock")):
        if not written.exists():
            written.write_text(json.dumps(_run_tiny_search(shared / "tiny_search")))
        found = json.loads(written.read_text())
    return {**found, "root": Path(found["root"]), "rows": load_results(found["path"])}


def _run_tiny_search(root: Path) -> dict:
    import ray

    from augkd.search.run.runner import SearchOptions, run_search

    root.mkdir()
    # address="local": never join another process's Ray (runner.init_ray tries "auto").
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        outcome = run_search(
            SearchOptions(
                space="digits",
                storage=str(root),
                tracking_uri=f"sqlite:///{root}/mlflow.db",
                smoke_test=True,
                num_samples=3,
                # a fresh worker process per trial, as Tune does by default (pinned in
                # tests/search/test_evaluate.py); the other searches reuse them
                overrides=[*TINY_SEARCH, "reuse_actors=false"],
            ),
            echo=lambda *_: None,
        )
    finally:
        ray.shutdown()
    return {"path": outcome.search_path, "uri": outcome.tracking_uri, "root": str(root)}


class S3Server:
    """A real S3-compatible server (moto's) on 127.0.0.1, reached through AWS_ENDPOINT_URL."""

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint

    def bucket(self, name: str) -> str:
        import boto3

        client = boto3.client("s3", endpoint_url=self.endpoint, region_name="us-east-1")
        if name not in {b["Name"] for b in client.list_buckets().get("Buckets", [])}:
            client.create_bucket(Bucket=name)
        return f"s3://{name}"


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory):
    """moto's server in a subprocess, with dummy credentials and AWS_ENDPOINT_URL in this
    process's environment (so Ray nodes started later inherit them)."""
    import subprocess
    import sys
    import time

    import requests

    port = free_port()
    log = tmp_path_factory.mktemp("moto") / "server.log"
    with log.open("w") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    endpoint = f"http://127.0.0.1:{port}"
    settings = {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    with pytest.MonkeyPatch.context() as patch:
        for key, value in settings.items():
            patch.setenv(key, value)
        try:
            for _ in range(200):
                try:
                    requests.get(endpoint, timeout=1)
                    break
                except requests.ConnectionError:
                    assert server.poll() is None, log.read_text()
                    time.sleep(0.1)
            yield S3Server(endpoint)
        finally:
            server.terminate()
            server.wait()

"""Ray's job path: `ray job submit --runtime-env-json '{"working_dir": "."}' -- python
search.py ...` against a head whose job server listens on 127.0.0.1. The job's driver and
its trials run the uploaded checkout, not whatever is installed on the nodes."""

from __future__ import annotations

import shutil
import tempfile
import time

import pytest
import ray
from ray.cluster_utils import Cluster
from ray.job_submission import JobStatus, JobSubmissionClient

from augkd.search.records.results import load_results
from tests.conftest import free_port
from tests.paths import REPO as ROOT

pytestmark = pytest.mark.slow

SAFETY_S = 600.0
"""Only keeps a broken run from hanging the suite; no assert is about speed."""


@pytest.fixture
def job_server():
    """A head that is alone on this machine as far as its job's driver can tell.

    Two things are shared between Ray instances on one machine, and the suite runs one per
    xdist worker: the dashboard agent's default port (a second head's agent cannot bind it, so
    no job is ever accepted) and the default address file, through which the job's driver
    resolves RAY_ADDRESS=auto (it names whichever Cluster another test started last, and in CI
    the job joined that cluster, whose GCS lacked the uploaded checkout). A free agent port
    and a private temp dir holding this head's address pin both."""
    if ray.is_initialized():
        ray.shutdown()
    temp_dir = tempfile.mkdtemp(prefix="augkd-job-", dir="/tmp")  # short: socket paths
    cluster = Cluster(
        initialize_head=True,
        head_node_args={
            "num_cpus": 2, "object_store_memory": 512 * 1024**2, "include_dashboard": True,
            "dashboard_host": "127.0.0.1", "dashboard_port": free_port(),
            "dashboard_agent_listen_port": None, "temp_dir": temp_dir,
        },
    )  # fmt: skip
    ray._private.utils.write_ray_address(cluster.address, temp_dir)
    try:
        yield cluster
    finally:
        cluster.shutdown()
        shutil.rmtree(temp_dir, ignore_errors=True)


def test_search_submitted_as_a_ray_job_runs_the_uploaded_checkout(job_server, tmp_path):
    checkout = tmp_path / "checkout"  # what `--runtime-env-json '{"working_dir": "."}'` uploads
    for name in ("augkd", "search_spaces"):
        shutil.copytree(ROOT / name, checkout / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "search.py", checkout / "search.py")
    small = [
        "teacher.epochs=3", "module1.iters_per_epoch=2", "module2.epochs=1", "module3.epochs=2",
        "scheduler.grace_period=1",
    ]  # fmt: skip
    entrypoint = (
        "python -c \"import augkd; print('augkd from', augkd.__file__)\" && "
        f"python search.py --space digits --smoke-test --num-samples 2 --storage {tmp_path / 'runs'} "
        f"--name job --tracking-uri sqlite:///{tmp_path / 'mlflow.db'} "
        + " ".join(f"--set {item}" for item in small)
    )
    client = JobSubmissionClient(f"http://{job_server.webui_url}")
    deadline = time.monotonic() + SAFETY_S
    job = _submit_when_an_agent_is_up(client, entrypoint, str(checkout), deadline)
    while not client.get_job_status(job).is_terminal():
        assert time.monotonic() < deadline, client.get_job_logs(job)[-3000:]
        time.sleep(1)
    logs = client.get_job_logs(job)
    assert client.get_job_status(job) == JobStatus.SUCCEEDED, logs[-3000:]
    assert f"[search] joined the Ray cluster at {job_server.address}" in logs  # $RAY_ADDRESS
    imported = next(line for line in logs.splitlines() if line.startswith("augkd from"))
    assert "working_dir_files" in imported and str(ROOT) not in imported
    rows = load_results(str(tmp_path / "runs" / "job"))
    assert len(rows) == 2 and {r["status"] for r in rows} <= {"completed", "pruned"}


def _submit_when_an_agent_is_up(
    client: JobSubmissionClient, entrypoint: str, working_dir: str, deadline: float
) -> str:
    """A freshly started head's job agent can come up after its dashboard on a loaded machine
    ("No available agent to submit job, please try again later"); try again, as it says."""
    while True:
        try:
            return client.submit_job(
                entrypoint=entrypoint, runtime_env={"working_dir": working_dir}
            )
        except RuntimeError as error:
            if "No available agent" not in str(error) or time.monotonic() > deadline:
                raise
            time.sleep(2)

"""clusters/start_once.sh, run twice as a re-run of `ray up` runs the start commands: the
second run keeps what the first started, so a search on the cluster goes on.

Real processes on loopback (a Ray head with its own temp folder and free ports, a Python
HTTP server); each is ended by the ids of the processes it started, never by name, since
other Ray clusters may run on this machine."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from tests.conftest import free_port
from tests.paths import REPO

SCRIPT = REPO / "clusters" / "start_once.sh"
SETTLE_S = 5.0
"""How long an ended process may take to go before it is killed: cleanup, not a speed limit."""


def _start_once(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "AUGKD_NODE_IP": "127.0.0.1"}
    return subprocess.run(
        ["bash", str(SCRIPT), *args], env=env, capture_output=True, text=True, check=False
    )


def _processes_mentioning(text: str) -> set[int]:
    """Live processes whose command line contains ``text`` (a folder or port of this test)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            state = (entry / "stat").read_text().split(") ")[-1].split()[0]
        except OSError:
            continue
        if text in cmdline and state != "Z" and "pytest" not in cmdline:
            found.add(int(entry.name))
    return found


def _end(pids: set[int]) -> None:
    for pid in pids:
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + SETTLE_S
    while time.monotonic() < deadline and any(_alive(pid) for pid in pids):
        time.sleep(0.2)
    for pid in pids:
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)


def _listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[-1].split()[0] != "Z"
    except OSError:
        return False


def test_a_second_run_keeps_the_ray_head_the_first_one_started():
    # a short folder of its own: Ray's socket paths inside it must stay under 108 bytes
    temp_dir = Path(tempfile.mkdtemp(prefix="augkd_start_once_", dir="/tmp"))
    port, object_manager = free_port(), free_port()
    command = [
        "ray", str(port), "--", "ray", "start", "--head", f"--port={port}",
        f"--object-manager-port={object_manager}", f"--temp-dir={temp_dir}", "--num-cpus=0",
        "--include-dashboard=false", "--disable-usage-stats",
    ]  # fmt: skip
    try:
        first = _start_once(*command)
        assert first.returncode == 0, first.stderr
        head = _processes_mentioning(str(temp_dir))
        assert any("gcs_server" in Path(f"/proc/{p}/cmdline").read_text() for p in head)

        again = _start_once(*command)
        assert again.returncode == 0, again.stderr
        assert again.stdout == (
            f"augkd: ray already runs on this node (127.0.0.1:{port}); kept it running, so a "
            "search using it goes on.\n"
        )
        assert head <= _processes_mentioning(str(temp_dir))  # the same head, still running
        assert len(list(temp_dir.glob("session_2*"))) == 1  # and no second one
    finally:
        _end(_processes_mentioning(str(temp_dir)))
        shutil.rmtree(temp_dir, ignore_errors=True)


def test_a_server_starts_in_the_background_once(tmp_path):
    port = free_port()
    log = tmp_path / "logs" / "server.log"
    command = [
        "web", str(port), "--log", str(log), "--",
        "python3", "-m", "http.server", str(port), "--bind", "127.0.0.1",
    ]  # fmt: skip
    marker = f"http.server {port}"
    try:
        first = _start_once(*command)
        assert first.returncode == 0, first.stderr
        assert first.stdout.startswith("augkd: started web in the background (pid ")
        # Until it listens; one that died fails the test. (Until the background child has
        # exec'd, its command line is the script's own, with this test's pytest folder in it.)
        started = int(first.stdout.split("(pid ", 1)[1].split(",", 1)[0])
        while not _listening(port):
            assert _alive(started) or _processes_mentioning(marker), "the server died"
            time.sleep(0.1)
        [server] = _processes_mentioning(marker)
        again = _start_once(*command)
        assert again.returncode == 0 and "web already runs on this node" in again.stdout
        assert _processes_mentioning(marker) == {server}
        assert log.exists()
    finally:
        _end(_processes_mentioning(marker))


@pytest.mark.parametrize(
    "args", [(), ("ray", "6379"), ("ray", "6379", "ray", "start"), ("ray", "6379", "--")]
)
def test_a_malformed_call_says_how_to_call_it(args):
    result = _start_once(*args)
    assert result.returncode == 2
    assert result.stderr == "usage: start_once.sh NAME PORT [--log FILE] -- COMMAND [ARG...]\n"

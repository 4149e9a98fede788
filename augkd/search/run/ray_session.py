"""Which Ray a command runs on: the cluster it is told to join (--address, or $RAY_ADDRESS,
which `ray job submit` sets), else a local Ray of its own. Never a cluster found by
chance: joining another process's Ray on the same machine ties the search to that
process's life."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any

from augkd.basics.errors import ConfigError

LOCAL = "local"
REACH_SECONDS = 5.0
"""How long a Ray address may take to answer before the command ends with one sentence
(ray.init itself waits for ever, printing Ray's GCS warnings)."""


def requested_address(address: str | None) -> str | None:
    """The cluster to join (--address, else $RAY_ADDRESS); None for a local Ray."""
    target = address or os.environ.get("RAY_ADDRESS") or None
    return None if target == LOCAL else target


@dataclass(frozen=True)
class RayStart:
    started_here: bool
    """This process started Ray: a local cluster that cannot grow."""
    summary: str
    """One line: which Ray, with its CPUs and GPUs."""


def init_ray(address: str | None) -> RayStart:
    """Join the requested cluster or start a local Ray (nothing when Ray already runs in
    this process, as in tests and `search.py --evaluate`)."""
    import ray

    from augkd.basics.entry import quiet_libraries

    quiet_libraries()  # before Ray logs its token-authentication notice
    if ray.is_initialized():
        return RayStart(False, "using the Ray this process already runs")
    quiet: dict[str, Any] = {"log_to_driver": False, "logging_level": logging.WARNING}
    target = requested_address(address)
    if target is not None:
        check_address(address)
        try:
            ray.init(address=target, **quiet)
        except ConnectionError as error:  # e.g. auto, and no `ray start` on this machine
            raise ConfigError(
                f"{'--address' if address else '$RAY_ADDRESS'} {target}: {error} Start a "
                "cluster with `ray start --head`, or leave out --address to run a local Ray."
            ) from None
        which = f"joined the Ray cluster at {ray.get_runtime_context().gcs_address}"
    else:
        ray.init(address=LOCAL, include_dashboard=False, **quiet)
        which = "started a local Ray (--address auto or HOST:PORT joins a cluster)"
    resources = ray.cluster_resources()
    return RayStart(
        target is None,
        f"{which}: {resources.get('CPU', 0):g} CPUs, {resources.get('GPU', 0):g} GPUs",
    )


def check_address(address: str | None) -> None:
    """The cluster to join (--address, else $RAY_ADDRESS), when there is one, answers."""
    target = requested_address(address)
    if target is not None:
        check_reachable(target, "--address" if address else "$RAY_ADDRESS")


def check_reachable(target: str, flag: str, wait_s: float = REACH_SECONDS) -> None:
    """A HOST:PORT where no Ray listens ends in one sentence within ``wait_s``, not in
    ray.init's endless wait: the port must accept a connection and speak gRPC (Ray's GCS
    does; a free port or another server does not). ``auto`` is left to ray.init."""
    import socket
    import time

    import grpc

    address = target.removeprefix("ray://")
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        if target != "auto":
            raise ConfigError(
                f"{flag} '{target}' is not auto or HOST:PORT; pass e.g. --address auto or "
                "--address 10.0.0.5:6379."
            )
        return
    deadline = time.monotonic() + wait_s
    why = "nothing answered"
    while True:
        try:
            with socket.create_connection((host, int(port)), timeout=2):
                break
        except OSError as error:
            why = error.strerror or type(error).__name__
        if time.monotonic() >= deadline:
            raise _unreachable(flag, target, why.lower())
        time.sleep(0.5)
    channel = grpc.insecure_channel(f"{host}:{port}")
    try:
        grpc.channel_ready_future(channel).result(timeout=max(1.0, deadline - time.monotonic()))
    except grpc.FutureTimeoutError:
        raise _unreachable(flag, target, "a server listens there, but not Ray's") from None
    finally:
        channel.close()


def _unreachable(flag: str, target: str, why: str) -> ConfigError:
    return ConfigError(
        f"{flag} {target}: no Ray cluster answers there ({why}); start one with "
        "`ray start --head` and pass the address it prints, or leave out --address (and "
        "$RAY_ADDRESS) to run a local Ray."
    )

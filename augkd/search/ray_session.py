"""Which Ray a command runs on: the cluster it is told to join (--address, or $RAY_ADDRESS,
which `ray job submit` sets), else a local Ray of its own. Never a cluster found by
chance: joining another process's Ray on the same machine ties the search to that
process's life."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any

LOCAL = "local"


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

    from augkd.entry import quiet_libraries

    quiet_libraries()  # before Ray logs its token-authentication notice
    if ray.is_initialized():
        return RayStart(False, "using the Ray this process already runs")
    quiet: dict[str, Any] = {"log_to_driver": False, "logging_level": logging.WARNING}
    target = requested_address(address)
    if target is not None:
        ray.init(address=target, **quiet)
        which = f"joined the Ray cluster at {ray.get_runtime_context().gcs_address}"
    else:
        ray.init(address=LOCAL, include_dashboard=False, **quiet)
        which = "started a local Ray (--address auto or HOST:PORT joins a cluster)"
    resources = ray.cluster_resources()
    return RayStart(
        target is None,
        f"{which}: {resources.get('CPU', 0):g} CPUs, {resources.get('GPU', 0):g} GPUs",
    )

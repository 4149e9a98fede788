"""What a run depends on beyond its settings, pinned into its config so that an exported
config re-runs exactly: torch's thread count, the device, and the stage cache it read."""

from __future__ import annotations

import torch

from augkd.basics.config import Config, with_overrides
from augkd.hardware.runtime import resolve_device


def pin_run_settings(config: Config, cache_root: str, device: torch.device | None = None) -> Config:
    """The config as this process will run it: threads and the device type resolved
    (``device``: the one Ray assigned, if any), and the stage cache recorded
    (``teacher.cache_dir``) so that a re-run loads the same artifacts. The device is
    recorded as 'cpu' or 'cuda', which means the assigned GPU inside Ray and GPU 0 outside."""
    device = device or resolve_device(config.device)
    return with_overrides(
        config,
        {
            "threads": config.threads or torch.get_num_threads(),
            "device": device.type,
            "teacher.cache_dir": cache_root,
        },
    )

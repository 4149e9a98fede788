"""What a run depends on beyond its settings, pinned into its config so that an exported
config re-runs exactly: torch's thread count, the device, and the stage cache it read."""

from __future__ import annotations

import torch

from augkd.config import Config, with_overrides
from augkd.runtime import resolve_device


def pin_run_settings(config: Config, cache_root: str) -> Config:
    """The config as this process will run it: threads and device resolved, and the stage
    cache recorded (``teacher.cache_dir``) so that a re-run loads the same artifacts."""
    device = resolve_device(config.device)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    return with_overrides(
        config,
        {
            "threads": config.threads or torch.get_num_threads(),
            "device": str(device),
            "teacher.cache_dir": cache_root,
        },
    )

"""Memory layout of the convolutional networks.

Channels-last ("NHWC") runs the convolutions of every network here faster than the default
layout, on the CPU (oneDNN) and on GPUs under autocast: measured on this project's 2-core CPU,
one Module-1 iteration took 0.60-0.75x the time (benchmarks/module1_overhead.py --layouts). The
layout changes no result beyond floating-point rounding, and `Module.to(device)` and
`load_state_dict` keep it, so each network is converted once, where it is built.
"""

from __future__ import annotations

import torch
from torch import nn


def fast_layout(model: nn.Module) -> nn.Module:
    """``model`` with its 4-D weights in channels-last layout (in place; returned)."""
    return model.to(memory_format=torch.channels_last)

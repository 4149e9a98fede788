"""Peak memory of a trial or a stage (augkd.hardware.peaks)."""

from __future__ import annotations

import json
import subprocess
import sys

import torch

from augkd.hardware.peaks import PEAK_RSS, peak_memory

CPU = torch.device("cpu")

# In a fresh process: a long-lived test worker may hold freed memory that is still resident,
# which a new block can reuse without raising the peak.
MEASURE = """
import json, numpy as np, torch
from augkd.hardware.peaks import PEAK_RSS, peak_memory, reset_peak
cpu = torch.device("cpu")
reset_peak(cpu)
before = peak_memory(cpu)[PEAK_RSS]
block = np.ones(128 * 1024 * 1024 // 8)  # 128 MiB, touched
during = peak_memory(cpu)[PEAK_RSS]
del block
reset_peak(cpu)
after = peak_memory(cpu)[PEAK_RSS]
print(json.dumps({"before": before, "during": during, "after": after}))
"""


def test_the_peak_counts_from_the_last_reset_not_from_the_process_start():
    run = subprocess.run([sys.executable, "-c", MEASURE], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-2000:]
    peaks = json.loads(run.stdout.strip().splitlines()[-1])
    assert peaks["during"] >= peaks["before"] + 96  # most of the block was resident
    assert peaks["after"] < peaks["during"]  # the reset forgot it
    assert set(peak_memory(CPU)) == {PEAK_RSS}  # no GPU peaks on CPU

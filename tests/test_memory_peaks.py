"""Peak memory of a trial or a stage (augkd.memory_peaks)."""

from __future__ import annotations

import torch

from augkd.memory_peaks import PEAK_RSS, peak_memory, reset_peak

CPU = torch.device("cpu")


def test_the_peak_counts_from_the_last_reset_not_from_the_process_start():
    reset_peak(CPU)
    before = peak_memory(CPU)[PEAK_RSS]
    block = torch.ones(64 * 1024 * 1024 // 4)  # 64 MiB, touched
    during = peak_memory(CPU)[PEAK_RSS]
    assert during >= before + 48  # most of it resident
    del block
    reset_peak(CPU)
    assert peak_memory(CPU)[PEAK_RSS] < during
    assert set(peak_memory(CPU)) == {PEAK_RSS}  # no GPU peaks on CPU

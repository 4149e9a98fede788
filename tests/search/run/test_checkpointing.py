"""Checkpoint cadence: ASHA's rungs, the last report, and at most every N minutes."""

from augkd.search.run.checkpointing import CheckpointCadence


def test_a_checkpoint_comes_with_the_first_report_at_or_past_each_rung_and_the_last():
    # Reports every 6 optimizer steps; rungs at 4, 8 and 16 steps (grace 4, factor 2).
    cadence = CheckpointCadence([4.0, 8.0, 16.0], minutes=60)
    steps = [6 * k for k in range(1, 6)]
    assert [s for s in steps if cadence.due(s, final=s == 30)] == [6, 12, 18, 30]


def test_a_report_past_two_rungs_checkpoints_once():
    cadence = CheckpointCadence([4.0, 8.0], minutes=60)
    assert [cadence.due(s, final=False) for s in (10, 20)] == [True, False]


def test_zero_minutes_checkpoints_every_report():
    cadence = CheckpointCadence([], minutes=0)
    assert [s for s in range(1, 6) if cadence.due(s, final=s == 5)] == [1, 2, 3, 4, 5]

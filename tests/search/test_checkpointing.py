"""Checkpoint cadence: ASHA's rungs, the last epoch, and at most every N minutes."""

from augkd.search.checkpointing import CheckpointCadence, judged_epochs
from augkd.search.space import SchedulerSettings


def _judged(grace: int, factor: float, max_epochs: int) -> list[int]:
    settings = SchedulerSettings(grace_period=grace, reduction_factor=factor)
    return judged_epochs(settings.milestones(max_epochs))


def test_checkpoint_epochs_are_where_asha_judges_a_trial():
    assert _judged(4, 2, 20) == [4, 8, 16]
    assert _judged(20, 3, 200) == [20, 60, 180]
    assert _judged(2, 1.5, 10) == [2, 3, 5, 7]  # first epoch at or past 2, 3, 4.5, 6.75
    assert _judged(30, 3, 20) == []


def test_checkpoints_only_at_rungs_and_the_last_epoch_within_the_interval():
    cadence = CheckpointCadence([4, 8], minutes=60)
    assert [e for e in range(1, 11) if cadence.due(e, 10)] == [4, 8, 10]


def test_zero_minutes_checkpoints_every_epoch():
    cadence = CheckpointCadence([], minutes=0)
    assert [e for e in range(1, 6) if cadence.due(e, 5)] == [1, 2, 3, 4, 5]

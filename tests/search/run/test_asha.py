import json
from types import SimpleNamespace

from ray.tune.schedulers import TrialScheduler

from augkd.search.records.results import ResultsTable
from augkd.search.run.asha import ResumableASHA


def _decision(scheduler, trial_id: str, epoch: int, value: float) -> str:
    """What the scheduler decides for a new trial's report at ``epoch``."""
    trial = SimpleNamespace(trial_id=trial_id)
    scheduler.on_trial_add(None, trial)
    return scheduler.on_trial_result(None, trial, {"epoch": epoch, "best_val_acc1": value})


def _history(values):
    return json.dumps([{"epoch": e + 1, "best_val_acc1": v} for e, v in enumerate(values)])


def test_restored_asha_rebuilds_its_rungs_from_the_results_table(tmp_path):
    table = ResultsTable(str(tmp_path))
    table.update("good", history_json=_history([50, 60, 70, 80]), status="completed")
    table.update("weak", history_json=_history([10]), status="pruned")
    table.write()
    scheduler = ResumableASHA(
        time_attr="epoch", metric="best_val_acc1", mode="max", max_t=4,
        grace_period=1, reduction_factor=2, brackets=1, search_path=str(tmp_path),
    )  # fmt: skip
    # rung 1 holds both restored trials (its cut-off, their median 30, lies between them),
    # rung 2 the one that reached it: each cuts a new trial below its cut-off
    assert _decision(scheduler, "low", epoch=1, value=20) == TrialScheduler.STOP
    assert _decision(scheduler, "mid", epoch=1, value=40) == TrialScheduler.CONTINUE
    assert _decision(scheduler, "new", epoch=2, value=20) == TrialScheduler.STOP


def test_new_search_starts_with_empty_rungs(tmp_path):
    scheduler = ResumableASHA(
        time_attr="epoch", metric="best_val_acc1", mode="max", max_t=4,
        grace_period=1, reduction_factor=2, brackets=1, search_path=str(tmp_path / "none"),
    )  # fmt: skip
    # nothing restored: the first trial's first report is not cut
    assert _decision(scheduler, "first", epoch=1, value=1) == TrialScheduler.CONTINUE

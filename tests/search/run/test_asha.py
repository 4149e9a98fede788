import json
from types import SimpleNamespace

from ray.tune.schedulers import TrialScheduler

from augkd.search.records.results import ResultsTable
from augkd.search.run.asha import ResumableASHA


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
    scheduler.on_trial_add(None, SimpleNamespace(trial_id="new"))
    rungs = dict(scheduler.rung_snapshot())
    assert rungs[1.0] == {"good": 50, "weak": 10}
    assert rungs[2.0] == {"good": 60}
    # the rebuilt rung cuts a new trial that is below its cut-off at epoch 2
    decision = scheduler.on_trial_result(
        None, SimpleNamespace(trial_id="new"), {"epoch": 2, "best_val_acc1": 20}
    )
    assert decision == TrialScheduler.STOP


def test_new_search_starts_with_empty_rungs(tmp_path):
    scheduler = ResumableASHA(
        time_attr="epoch", metric="best_val_acc1", mode="max", max_t=4,
        grace_period=1, reduction_factor=2, brackets=1, search_path=str(tmp_path / "none"),
    )  # fmt: skip
    scheduler.on_trial_add(None, SimpleNamespace(trial_id="first"))
    assert all(not recorded for _, recorded in scheduler.rung_snapshot())

from types import SimpleNamespace

from ray.tune import Callback

from augkd.search.progress import ProgressView


def _trial(trial_id, status, step, value):
    return SimpleNamespace(
        trial_id=trial_id, status=status, config={"module3.a": 0.25},
        last_result={"step": step, "steps": 20, "best_val_acc1": value},
    )  # fmt: skip


def test_live_view_lists_running_trials_on_tunes_step_hook(capsys):
    assert "on_step_end" in vars(Callback)  # the hook Tune really calls
    view = ProgressView(["module3.a"], "best_val_acc1", interval_s=0)
    trials = [_trial("aaa", "RUNNING", 3, 61.1), _trial("bbb", "TERMINATED", 20, 80.0)]
    view.on_step_end(iteration=1, trials=trials)
    printed = capsys.readouterr().out
    assert "2 trials: 1 running, 1 terminated" in printed
    assert "aaa step 3/20 best_val_acc1 61.1  a=0.25" in printed
    assert "bbb" not in printed


def test_live_view_waits_for_its_interval(capsys):
    view = ProgressView(["module3.a"], "best_val_acc1", interval_s=3600)
    view.on_step_end(iteration=1, trials=[_trial("aaa", "RUNNING", 1, 10.0)])
    view.on_step_end(iteration=2, trials=[_trial("aaa", "RUNNING", 2, 20.0)])
    assert capsys.readouterr().out.count("trials:") == 1

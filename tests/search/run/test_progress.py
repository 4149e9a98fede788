from types import SimpleNamespace

from ray.tune import Callback

from augkd.search.run.progress import ProgressView


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


def test_the_live_view_gives_the_searchs_eta_from_the_expected_trial_steps(capsys):
    view = ProgressView(["module3.a"], "best_val_acc1", interval_s=0, expected_steps=100)
    view.on_step_end(iteration=1, trials=[_trial("aaa", "RUNNING", 0, 0.0)])
    assert "search 0/100 expected trial-steps, timing" in capsys.readouterr().out
    view.started -= 10  # ten seconds later, 20 trial-steps done
    trials = [_trial("aaa", "RUNNING", 12, 50.0), _trial("bbb", "TERMINATED", 8, 40.0)]
    view.on_step_end(iteration=2, trials=trials)
    line = capsys.readouterr().out.splitlines()[0]
    assert line.startswith("[search] 2 trials: 1 running, 1 terminated; search 20/100 expected")
    assert "trial-steps/s, ETA" in line


def test_a_search_past_its_expected_trial_steps_says_so_rather_than_done(capsys):
    view = ProgressView(["module3.a"], "best_val_acc1", interval_s=0, expected_steps=10)
    view.on_step_end(iteration=1, trials=[_trial("aaa", "RUNNING", 0, 0.0)])
    view.on_step_end(iteration=2, trials=[_trial("aaa", "RUNNING", 12, 50.0)])
    assert "search 12 trial-steps, past the 10 expected" in capsys.readouterr().out

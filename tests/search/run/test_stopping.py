"""A search stops when its first trials all fail with the same error, and only then."""

from augkd.search.run.stopping import SameFailureStopper

BAD = {"failed": 1.0, "error": "Data path 's3://b/office' does not exist; check data.root."}


def _feed(stopper: SameFailureStopper, results: list[tuple[str, dict]]) -> list[bool]:
    seen = []
    for trial_id, result in results:
        stopper(trial_id, result)
        seen.append(stopper.stop_all())
    return seen


def test_first_three_trials_failing_alike_stop_the_search():
    stopper = SameFailureStopper(3)
    assert _feed(stopper, [("a", BAD), ("b", BAD), ("c", BAD)]) == [False, False, True]
    assert stopper.shared_error == BAD["error"]


def test_a_trial_that_trains_or_a_different_error_keeps_the_search_going():
    other = {"failed": 1.0, "error": "Module 3 training loss became nan."}
    stopper = SameFailureStopper(3)
    assert not any(_feed(stopper, [("a", BAD), ("b", {"epoch": 1.0}), ("c", BAD), ("d", BAD)]))
    assert not any(_feed(SameFailureStopper(2), [("a", BAD), ("b", other), ("c", BAD)]))
    assert not any(_feed(SameFailureStopper(0), [("a", BAD), ("b", BAD)]))


def test_failed_result_ends_its_own_trial():
    stopper = SameFailureStopper(3)
    assert stopper("a", BAD) is True and stopper("b", {"epoch": 1.0}) is False

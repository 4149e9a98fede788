"""What a search space is: ASHA's rungs, the objective and the rung metric, and the space
recorded beside the results."""

import pytest
import ray

from augkd.basics.errors import ConfigError
from augkd.search.prepare.space_file import load_space


def test_asha_milestones_are_where_ray_puts_each_brackets_rungs():
    from ray.tune.schedulers import AsyncHyperBandScheduler

    from augkd.search.prepare.space import SchedulerSettings

    for grace, factor, top in ((2, 3, 20), (4, 2, 16), (1, 2, 3), (3, 3.0, 20)):
        settings = SchedulerSettings(grace_period=grace, reduction_factor=factor, brackets=2)
        asha = AsyncHyperBandScheduler(
            time_attr="step", max_t=top, grace_period=grace, reduction_factor=factor, brackets=2
        )
        for index, bracket in enumerate(asha._brackets):
            assert settings.milestones(top, bracket=index) == sorted(m for m, _ in bracket._rungs)


def test_the_rung_metric_must_be_a_val_metric_trials_report():
    import pytest

    from augkd.search.prepare.space_file import load_space

    assert load_space("digits", {"scheduler": {"rung_metric": "val_acc1"}}).scheduler.brackets == 1
    with pytest.raises(ConfigError, match="rung_metric"):
        load_space("digits", {"scheduler": {"rung_metric": "test_acc1"}})


@pytest.mark.parametrize(
    ("metric", "sentence"),
    [
        ("val_acc7", "'val_acc7' is not a metric every epoch reports; choose one of"),
        ("test_acc1", "'test_acc1' is measured once, on test data, and never chooses anything"),
    ],
)
def test_an_objective_trials_cannot_be_ranked_by_exits_2_naming_the_key(
    search_main, tmp_path, capsys, metric, sentence
):
    code = search_main(
        ["--set", f"objective.metric={metric}", "--storage", str(tmp_path / "runs"),
         "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}"]
    )  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1, err
    assert f"--set objective.metric: {sentence}" in err
    assert not ray.is_initialized()


def test_the_rung_metric_is_compared_in_its_own_direction():
    from augkd.search.prepare.space import Objective

    space = load_space(
        "digits",
        {"objective": {"metric": "train_loss", "mode": "min"},
         "scheduler": {"rung_metric": "val_acc1"}},
    )  # fmt: skip
    assert space.rung_objective() == Objective(metric="val_acc1", mode="max")
    assert space.tracked_metrics() == ("train_loss", "val_acc1")
    assert load_space("digits").rung_objective() == Objective()  # best_val_acc1, max


def test_a_recorded_tracking_uri_keeps_no_credentials():
    from augkd.search.prepare.space import without_credentials

    assert without_credentials("http://alice:s3cret@10.0.0.5:5000") == "http://10.0.0.5:5000"
    assert without_credentials("sqlite:////tmp/x/mlflow.db") == "sqlite:////tmp/x/mlflow.db"
    assert without_credentials("http://10.0.0.5:5000/path") == "http://10.0.0.5:5000/path"

import pytest
import ray
import yaml

from augkd.basics.errors import ConfigError
from augkd.search.prepare.overrides import prepare_space
from augkd.search.prepare.space import build_sampler, load_space
from augkd.search.run.runner import SearchOptions, run_search


def _space_file(tmp_path, **changes):
    space = yaml.safe_load(open("search_spaces/digits.yaml"))
    for key, value in changes.items():
        space[key] = value
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump(space))
    return str(path)


@pytest.mark.parametrize("name", ["digits", "fonts", "forms", "office31", "officehome", "visda"])
def test_shipped_spaces_validate(name):
    space = load_space(f"search_spaces/{name}.yaml")
    assert space.params and space.num_samples >= 1
    build_sampler(space)


def test_unknown_param_key_is_refused_naming_it(tmp_path):
    path = _space_file(
        tmp_path, params={"module2.anchor_wait": {"type": "float", "low": 0, "high": 1}}
    )
    with pytest.raises(ConfigError, match="'module2.anchor_wait' is not a config key"):
        prepare_space(SearchOptions(space=path))
    assert not ray.is_initialized()


def test_range_with_low_above_high_is_refused_naming_the_key(tmp_path):
    path = _space_file(tmp_path, params={"module3.a": {"type": "float", "low": 0.9, "high": 0.2}})
    with pytest.raises(ConfigError, match=r"params.module3.a.*low \(0.9\) is greater than high"):
        prepare_space(SearchOptions(space=path))


def test_range_outside_the_schema_is_refused(tmp_path):
    path = _space_file(tmp_path, params={"module3.a": {"type": "float", "low": 0.5, "high": 2.0}})
    with pytest.raises(ConfigError, match="'module3.a' allows a bad value"):
        prepare_space(SearchOptions(space=path))


def test_unknown_sampler_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="sampler.name"):
        prepare_space(SearchOptions(space="digits", overrides=["sampler.name=annealing"]))


def test_unknown_space_key_is_refused(tmp_path):
    path = _space_file(tmp_path, num_sample=3)
    with pytest.raises(ConfigError, match="unknown search-space key 'num_sample'"):
        prepare_space(SearchOptions(space=path))


def test_grid_sampler_needs_grid_values(tmp_path):
    with pytest.raises(ConfigError, match="grid"):
        prepare_space(SearchOptions(space="digits", overrides=["sampler.name=grid"]))


def test_set_routes_space_and_config_keys():
    space = prepare_space(
        SearchOptions(space="digits", overrides=["sampler.name=random", "module3.epochs=7"])
    )
    assert space.sampler.name == "random"
    assert space.base_resolved["module3"]["epochs"] == 7
    assert space.max_steps(train_images=720) == 7 * 6  # 6 optimizer steps an epoch


def test_unreachable_tracking_server_is_refused_at_start(tmp_path):
    options = SearchOptions(storage=str(tmp_path), tracking_uri="http://127.0.0.1:9")
    with pytest.raises(ConfigError, match="cannot be reached"):
        run_search(options)
    assert not ray.is_initialized()


def test_missing_space_file_points_at_the_flag(tmp_path):
    with pytest.raises(ConfigError, match="does not exist; pass --space"):
        prepare_space(SearchOptions(space=str(tmp_path / "nowhere" / "space.yaml")))


def test_booleans_are_not_numbers_in_a_space(tmp_path):
    path = _space_file(tmp_path, num_samples=True)
    with pytest.raises(ConfigError, match="search-space key 'num_samples': must be a number"):
        prepare_space(SearchOptions(space=path))


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

    from augkd.basics.errors import ConfigError
    from augkd.search.prepare.space import load_space

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


def test_a_when_value_outside_the_choices_is_refused_naming_both_keys(tmp_path):
    """It used to pass, and the conditional key was never sampled."""
    space = yaml.safe_load(open("search_spaces/digits.yaml"))
    space["params"]["module3.teacher_fade"]["when"] = {"module3.teacher_term": "mixd"}
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump(space))
    choices = space["params"]["module3.teacher_term"]["choices"]
    with pytest.raises(ConfigError) as refused:
        prepare_space(SearchOptions(space=str(path)))
    assert str(refused.value) == (
        "Search space param 'module3.teacher_fade' is conditional on module3.teacher_term = "
        f"'mixd', which is not among its choices {choices}, so 'module3.teacher_fade' would "
        "never be sampled; use a value 'module3.teacher_term' can take."
    )


def test_set_of_a_searched_key_fixes_it_and_says_so_in_one_line():
    """It used to be ignored: the sampled value replaced the --set one in every trial."""
    said: list[str] = []
    space = prepare_space(
        SearchOptions(space="digits", overrides=["module3.teacher_term=both"]), said.append
    )
    assert "module3.teacher_term" not in space.params
    assert "module3.teacher_fade" not in space.params  # searched only when the term is mixed
    assert space.base_resolved["module3"]["teacher_term"] == "both"
    assert said == [
        "[search] note: --set module3.teacher_term='both' fixes a key the space searches; "
        "every trial uses it and 'module3.teacher_term' is no longer searched.",
        "[search] note: 'module3.teacher_fade' is searched only when module3.teacher_term = "
        "'mixed', and module3.teacher_term is fixed at 'both', so 'module3.teacher_fade' is no "
        "longer searched either.",
    ]


def test_set_of_a_searched_key_to_its_condition_keeps_the_conditional_key_searched():
    said: list[str] = []
    space = prepare_space(
        SearchOptions(space="digits", overrides=["module3.teacher_term=mixed"]), said.append
    )
    assert space.params["module3.teacher_fade"].when is None
    assert len(said) == 1


def test_set_added_on_resume_for_a_searched_key_is_refused(tmp_path):
    """The restored searcher would sample the key and override the --set value; a key the
    search fixed from its start stays fixed on resume."""
    from augkd.search.prepare.checks import check_fixed_keys_on_resume
    from augkd.search.prepare.space import write_recorded_space

    started = prepare_space(SearchOptions(space="digits"), lambda _: None)
    write_recorded_space(str(tmp_path), started)
    again = prepare_space(SearchOptions(space="digits", overrides=["module3.a=0.5"]), print)
    with pytest.raises(ConfigError) as refused:
        check_fixed_keys_on_resume(again, str(tmp_path))
    assert str(refused.value) == (
        "--set module3.a: the search being resumed samples this key, and a resumed search "
        "keeps its space; drop the --set, or start a new search to fix it."
    )
    write_recorded_space(str(tmp_path), again)  # fixed from the start: resumes as it ran
    check_fixed_keys_on_resume(again, str(tmp_path))


def test_a_recorded_tracking_uri_keeps_no_credentials():
    from augkd.search.prepare.space import without_credentials

    assert without_credentials("http://alice:s3cret@10.0.0.5:5000") == "http://10.0.0.5:5000"
    assert without_credentials("sqlite:////tmp/x/mlflow.db") == "sqlite:////tmp/x/mlflow.db"
    assert without_credentials("http://10.0.0.5:5000/path") == "http://10.0.0.5:5000/path"

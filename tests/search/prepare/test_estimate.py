"""`search.py --estimate`: the stages a search would run, timed and priced before it runs."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import torch

from augkd.search.prepare.estimate import estimate_search, format_forecast
from augkd.search.run.runner import SearchOptions
from augkd.storage.locations import stage_cache_root
from tests.conftest import TINY_SEARCH

TRAINED = ("module1", "encoder", "module2")
"""The stages a search trains from the teacher on (the teacher itself aside)."""


def _options(storage: Path) -> SearchOptions:
    """The tiny_search fixture's search, on ``storage``."""
    return SearchOptions(
        space="digits", storage=str(storage), smoke_test=True, num_samples=3,
        overrides=[*TINY_SEARCH, "reuse_actors=false"],
    )  # fmt: skip


def _artifacts(storage: Path) -> set[tuple[str, str]]:
    cache = Path(stage_cache_root(str(storage)))
    return {(stage, p.stem) for stage in TRAINED for p in (cache / stage).glob("*.pt")}


@pytest.fixture(scope="module")
def with_teacher_only(tiny_search, tmp_path_factory) -> Path:
    """A fresh storage holding the tiny search's teacher alone (as a user's checkpoint would
    be): every stage after it is still to train."""
    storage = tmp_path_factory.mktemp("estimate") / "storage"
    source = Path(stage_cache_root(str(tiny_search["root"]))) / "teacher"
    shutil.copytree(source, Path(stage_cache_root(str(storage))) / "teacher")
    return storage


@pytest.mark.slow
def test_the_forecast_names_exactly_the_stages_the_search_ran(tiny_search, with_teacher_only):
    forecast = estimate_search(_options(with_teacher_only), echo=lambda _: None)
    named = {(c.stage, c.key) for c in forecast.stages if c.stage in TRAINED}
    assert named == _artifacts(tiny_search["root"])
    assert all(not c.cached and c.seconds > 0 for c in forecast.stages if c.stage in TRAINED)
    shared, trials = forecast.phases
    assert shared.wall_s > 0 and trials.wall_s > 0
    grid = [c for c in forecast.stages if c.stage == "module2"]
    if len(grid) > 1 and len(os.sched_getaffinity(0)) > 1:
        # The seed's task (every CPU) makes the first point; the rest are tasks with a
        # trial's CPUs, priced at a rate timed with a trial's threads.
        assert len({c.seconds_per_unit for c in grid[1:]}) == 1
        assert grid[0].seconds_per_unit != grid[1].seconds_per_unit


def test_a_step_is_priced_by_its_teacher_term_and_whether_it_builds_x_mix(tiny_search):
    """digits searches module3.teacher_term: each term's step is timed while it builds x_mix
    and after s reached 1, and a trial-step is the two means weighed by the share of the
    trial-steps that build x_mix (a step after it took a third as long on fonts)."""
    forecast = estimate_search(_options(tiny_search["root"]), echo=lambda _: None)
    mixing, plain = forecast.step_s_by_teacher_term, forecast.plain_step_s_by_teacher_term
    assert list(mixing) == list(plain) == ["both", "mixed", "none"]
    assert all(seconds > 0 for seconds in [*mixing.values(), *plain.values()])
    share = forecast.mixing_share
    assert 0 < share < 1
    expected = share * sum(mixing.values()) / 3 + (1 - share) * sum(plain.values()) / 3
    assert forecast.step_s == pytest.approx(expected)
    assert "of the trial-steps build x_mix" in format_forecast(forecast, None)


def test_queued_tasks_take_the_first_slot_to_free_up():
    """The Module-2 grid's points of 40, 120 and 360 steps, two at a time: about their sum
    over the slots, not a round per pair at the longest (which forecast fonts' shared
    stages 1.28 times what they took)."""
    from augkd.search.prepare.estimate import makespan

    assert makespan([36, 4, 12, 36, 4, 12], 2) == 52  # 36+4+12 | 4+12+36
    assert makespan([18.0] * 3, 2) == 36.0
    assert makespan([5.0, 7.0], 4) == 7.0
    assert makespan([], 2) == 0.0


@pytest.mark.slow
def test_a_cached_stage_costs_nothing(tiny_search):
    forecast = estimate_search(_options(tiny_search["root"]), echo=lambda _: None)
    assert {(c.stage, c.key) for c in forecast.stages if c.stage in TRAINED} == _artifacts(
        tiny_search["root"]
    )
    assert all(c.cached and c.seconds == 0 for c in forecast.stages)
    assert forecast.phases[0].wall_s == 0 and forecast.phases[1].wall_s > 0
    assert forecast.trial_steps.upper == 3 * forecast.trial_steps.max_steps


@pytest.mark.slow
def test_the_estimate_prints_phases_trial_steps_and_cost(search_main, capsys, tmp_path):
    args = ["--estimate", "--smoke-test", "--space", "digits", "--storage", str(tmp_path)]
    args += ["--num-samples", "2", "--price-per-hour", "1.5"]
    assert search_main([*args, *_tiny()]) == 0
    out = capsys.readouterr().out
    assert "teacher    built-in" in out  # not cached: its training is timed
    for heading in ("shared stages", "trials", "total", "trial-steps expected", "$1.5/h"):
        assert heading in out
    assert not (tmp_path / "digits").exists()  # nothing of a search was started


def _tiny() -> list[str]:
    return [arg for override in TINY_SEARCH for arg in ("--set", override)]


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a GPU")
def test_a_gpu_the_machine_lacks_is_refused_in_one_sentence(search_main, capsys, tmp_path):
    args = ["--estimate", "--smoke-test", "--storage", str(tmp_path)]
    code = search_main([*args, "--set", "resources.gpu=1"])
    assert code == 2
    assert "resources.gpu=1" in capsys.readouterr().err


def _office31_like(root: Path) -> tuple[Path, Path]:
    """Synthetic Office-31-shaped folders (31 classes in amazon, webcam and dslr; 2 noise
    images a class, 32 px RGB) and an untrained resnet34 teacher checkpoint for them."""
    from PIL import Image

    from augkd.models import build_classifier
    from augkd.storage.teacher_checkpoint import CHECKPOINT_FORMAT, save_teacher

    classes = [f"class{k:02d}" for k in range(31)]
    noise = torch.Generator().manual_seed(0)
    for domain in ("amazon", "webcam", "dslr"):
        for name in classes:
            (root / "data" / domain / name).mkdir(parents=True)
            for i in range(2):
                pixels = torch.randint(0, 256, (32, 32, 3), generator=noise, dtype=torch.uint8)
                Image.fromarray(pixels.numpy()).save(root / "data" / domain / name / f"{i}.png")
    checkpoint = {
        "format": CHECKPOINT_FORMAT, "arch": "resnet34", "class_names": classes,
        "image_size": 32, "mean": [0.5] * 3, "std": [0.25] * 3, "small_input": True,
        "state_dict": build_classifier("resnet34", 31).state_dict(),
    }  # fmt: skip
    save_teacher(checkpoint, root / "teacher.pt")
    return root / "data", root / "teacher.pt"


@pytest.mark.slow
def test_the_release_space_is_forecast_in_full_before_anything_ran(tmp_path):
    """office31's space (resnet34 teacher, mobilenet_v3_small student, bf16, the 18-point
    Module-2 grid) on Office-31-shaped folders, at batch 8: with a teacher checkpoint every
    stage's key is known before anything ran, and each one is still to pay for."""
    data, teacher = _office31_like(tmp_path)
    overrides = [
        f"data.root={data}", f"teacher.checkpoint={teacher}", "resources.gpu=0",
        "module1.batch_size=8", "module2.batch_size=8", "module3.batch_size=8",
        "data.train_per_class=1", "data.min_eval_images=2",  # 2 images a class
    ]  # fmt: skip
    options = SearchOptions(space="office31", storage=str(tmp_path / "runs"), overrides=overrides)
    forecast = estimate_search(options, echo=lambda _: None)
    stages = [cost.stage for cost in forecast.stages]
    assert stages.count("module1") == stages.count("encoder") == 1
    assert stages.count("module2") == 3 * 3 * 2  # anchor_weight x temperature x invariant
    assert "teacher" not in stages  # a checkpoint: read, never trained
    assert all(cost.key and not cost.cached and cost.seconds > 0 for cost in forecast.stages)
    assert all(cost.peak_mib > 0 for cost in forecast.stages) and forecast.trial_peak_mib > 0
    assert forecast.precision == "bf16"
    assert forecast.trial_steps.rungs and forecast.max_concurrent == 8
    assert forecast.workers == 1  # a CPU search
    assert "$" in format_forecast(forecast, 1.006)


@pytest.mark.slow
def test_a_local_search_is_forecast_at_the_trials_its_ray_fits_at_once(tmp_path):
    """max_concurrent 8, but a local Ray fits only its CPUs over a trial's resources.cpu:
    the trials' wall time (and the Module-2 grid's) is spread over that many, not 8."""
    import os

    from augkd.search.prepare.request import requested_space

    options = _options(tmp_path / "runs")
    options.overrides = [*options.overrides, "max_concurrent=8", "resources.cpu=1"]
    forecast = estimate_search(options, echo=lambda _: None)
    fits = len(os.sched_getaffinity(0)) // int(requested_space(options).resources.cpu)
    assert forecast.max_concurrent == 8 and forecast.slots == fits
    assert forecast.concurrent == min(8, fits)
    _, trials = forecast.phases
    assert trials.wall_s == pytest.approx(trials.device_s / forecast.concurrent)
    if forecast.concurrent < 8:
        assert f"{fits} at a time (max_concurrent 8; this machine's Ray fits {fits})" in (
            format_forecast(forecast, None)
        )


def test_every_stage_task_is_forecast_with_its_loading_and_each_anchornet_its_diagnostics():
    """The shared stages' wall time: the seed's task (its loading, Module 1, the encoder, the
    first grid point and its diagnostics), then the rest of the grid, each a task that loads
    the teacher and the data and diagnoses its AnchorNet, `concurrent` at a time; a cached
    grid point costs nothing."""
    from augkd.search.prepare.calibration import StageCost
    from augkd.search.prepare.estimate import project
    from augkd.search.prepare.request import requested_space

    space = requested_space(_options(Path("unused")), echo=lambda _: None)
    stage = {"key": "k", "cached": False, "units": 10, "seconds_per_unit": 1.0}
    stages = [
        StageCost("module1", "seed 0", **stage),
        StageCost("encoder", "seed 0", **stage),
        *(StageCost("module2", f"seed 0 point={n}", **stage) for n in range(4)),
        StageCost("module2", "seed 0 point=cached", "k", True, 10, 1.0),
    ]
    measured = {
        "stages": [vars(cost) for cost in stages], "train_images": 150, "step_s": 0.1,
        "val_s": 0.1, "trial_peak_mib": 1.0, "setup_s": 2.0, "val_every": 2,
        "device": "cpu", "precision": "fp32", "calibration_s": 1.0,
        "task_setup_s": 3.0, "stage_diagnostics_s": 5.0,
    }  # fmt: skip
    forecast = project(space, measured, 1, slots=2)
    shared, _ = forecast.phases
    first_task = 3.0 + 10 + 10 + 10 + 5.0
    rest = 3 * [3.0 + 10 + 5.0]  # three uncached grid points after the first, two at a time
    assert forecast.concurrent == 2
    assert shared.wall_s == pytest.approx(first_task + 2 * rest[0])
    assert shared.device_s == pytest.approx((first_task + sum(rest)) * space.resources.cpu)


@pytest.mark.parametrize(
    ("durations", "rate"),
    [
        ([0.1, 0.2, 0.2, 0.2], 0.2),  # fast: a warm-up, then TIMED's few calls
        ([6.5, 0.3], 0.3),  # a slow first call is set-up: one more call is the rate
        ([70.0], 70.0),  # minutes a call: the warm-up itself is the rate
    ],
)
def test_a_slow_first_call_is_timed_as_warm_up_unless_it_takes_a_minute(
    monkeypatch, durations, rate
):
    """The fonts space's first Module-1 iteration took 6.5 s on a loaded CPU and the next
    ones well under one; taken as the rate, it forecast Module 1 at 1h48m. A clock that the
    calls themselves advance stands for the time they take."""
    from types import SimpleNamespace

    from augkd.search.prepare import step_timer

    clock = {"now": 0.0}
    monkeypatch.setattr(step_timer, "time", SimpleNamespace(perf_counter=lambda: clock["now"]))
    calls = iter(durations)

    def step() -> None:
        clock["now"] += next(calls)

    timer = step_timer.StepTimer(torch.device("cpu"))
    assert timer("module1", step, 3) == pytest.approx(rate)
    assert next(calls, None) is None  # every call it made was timed as above


@pytest.mark.slow
def test_an_evaluation_asked_is_forecast_at_fresh_seeds_for_every_candidate(tiny_search):
    """Every stage of seed 0 is cached, yet the evaluation's fresh seeds must make their own:
    the evaluation phase pays them, for as many candidates as the evaluation would plan."""
    from augkd.search.answer.candidates import plan
    from augkd.search.prepare.estimate import EvaluationAsk

    ask = EvaluationAsk(top_k=2, first_seeds=2, max_seeds=4, baselines=("ce", "dfkd"))
    forecast = estimate_search(_options(tiny_search["root"]), lambda _: None, evaluation=ask)
    cost = forecast.evaluation
    shared, trials, evaluation = forecast.phases
    assert shared.wall_s == 0 and evaluation.name == "evaluation" and evaluation.wall_s > 0
    assert cost.candidates == 2 + 1 + 2 * 2  # the top 2, the defaults, 2 recipes a baseline
    planned, _seeds = plan(tiny_search["path"], 2, 2, ["ce", "dfkd"])
    assert cost.candidates >= len(planned)  # never fewer than it would run
    assert (cost.first_runs, cost.most_runs) == (cost.candidates * 2, cost.candidates * 4)
    assert cost.most_device_s == pytest.approx(2 * cost.first_device_s)
    assert cost.seed_stages_s > 0  # Module 1, the encoder and Module 2 at each fresh seed
    runs_alone = cost.first_runs * forecast.setup_s
    assert cost.first_device_s > 2 * cost.seed_stages_s + runs_alone
    assert "at most 28 runs" in format_forecast(forecast, None)

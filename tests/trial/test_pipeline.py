"""One real trial end to end on tiny settings: reporting, selection, resume, bad input."""

from __future__ import annotations

import re

import pytest
import torch

from augkd.basics.config import with_overrides
from augkd.basics.errors import DataError, DivergedError, ModelError
from augkd.method import mixup
from augkd.storage.cache import StageCache
from augkd.storage.teacher_checkpoint import save_teacher
from augkd.trial.pipeline import run_trial
from augkd.trial.teacher import load_teacher


class _Arbitrary:
    """Any pickled object: weights_only loading must refuse it."""


def _quiet(_line: str) -> None:
    pass


def test_augkd_trial_reports_every_epoch_and_tests_once(tiny_config, monkeypatch):
    seen_test_calls = []
    original = mixup._test_at_best
    monkeypatch.setattr(
        mixup, "_test_at_best", lambda *a: seen_test_calls.append(1) or original(*a)
    )
    reports = []
    result = run_trial(tiny_config, on_epoch=lambda m, _s: reports.append(m), log=_quiet)
    assert [m["epoch"] for m in reports] == [1.0, 2.0, 3.0]
    assert len(seen_test_calls) == 1
    assert all("test_acc1" not in m for m in reports[:-1]) and "test_acc1" in reports[-1]
    best = max(reports, key=lambda m: m["val_acc1"])
    assert reports[-1]["best_val_acc1"] == best["val_acc1"]
    assert 0.0 <= result.metrics["test_acc1"] <= 100.0
    assert reports[0]["mixup_share"] == pytest.approx(tiny_config.module3.b)


def test_a_step_budget_takes_its_steps_whatever_the_data_size(tiny_config):
    # 720 train images in batches of 128: 6 steps an epoch, so 20 steps are 4 epochs, the
    # last one cut to 2 steps; a val pass 8 steps after the last one falls at epoch 2 (step
    # 12); epoch 3 is 6 steps after it, so the next pass is the last epoch's.
    budget = {"module3.epochs": None, "module3.steps": 20, "module3.val_every": 8}
    reports = []
    run_trial(with_overrides(tiny_config, budget), on_epoch=lambda m, _s: reports.append(m),
              log=_quiet)  # fmt: skip
    assert [(m["epoch"], m["step"]) for m in reports] == [(2.0, 12.0), (4.0, 20.0)]
    assert {m["epochs"] for m in reports} == {4.0} and {m["steps"] for m in reports} == {20.0}
    # A tiny split (20 train images, 2 per class, one step an epoch) still gets its 20 steps.
    tiny = with_overrides(tiny_config, {**budget, "data.train_per_class": 2})
    result = run_trial(tiny, log=_quiet)
    assert (result.metrics["epochs"], result.metrics["step"]) == (20.0, 20.0)


@pytest.mark.slow
def test_best_epoch_is_chosen_on_val_not_test(tiny_config):
    reports = []
    run_trial(tiny_config, on_epoch=lambda m, _s: reports.append(m), log=_quiet)
    val = [m["val_acc1"] for m in reports]
    assert reports[-1]["best_epoch"] == float(val.index(max(val)) + 1)


@pytest.mark.parametrize(
    "method",
    [
        "ce",
        *(pytest.param(m, marks=pytest.mark.slow) for m in ("kd", "dfkd", "no_anchor", "no_mixup")),
    ],
)
def test_every_baseline_runs_on_the_same_runner(tiny_config, method):
    result = run_trial(with_overrides(tiny_config, {"method": method}), log=_quiet)
    assert result.metrics["epoch"] == 3.0 and "test_acc1" in result.metrics


@pytest.mark.slow
def test_second_trial_reuses_stage_artifacts(tiny_config, tmp_path):
    cache = StageCache(str(tmp_path))
    first = run_trial(tiny_config, cache=cache, log=_quiet)
    assert first.metrics["module1_cache_hit"] == 0.0
    again = run_trial(
        with_overrides(tiny_config, {"module3.a": 0.3}), cache=StageCache(str(tmp_path)), log=_quiet
    )
    assert again.metrics["module1_cache_hit"] == 1.0 and again.metrics["module2_cache_hit"] == 1.0
    other = run_trial(
        with_overrides(tiny_config, {"module2.temperature": 3.0}),
        cache=StageCache(str(tmp_path)),
        log=_quiet,
    )
    assert other.metrics["module1_cache_hit"] == 1.0 and other.metrics["module2_cache_hit"] == 0.0


@pytest.mark.slow
def test_resume_mid_module3_matches_an_uninterrupted_run(tiny_config, tmp_path):
    config = with_overrides(tiny_config, {"module3.epochs": 4})
    full = run_trial(config, cache=StageCache(str(tmp_path)), log=_quiet)
    states = {}

    def keep(metrics, make_state):
        states[int(metrics["epoch"])] = make_state()

    run_trial(config, on_epoch=keep, cache=StageCache(str(tmp_path)), log=_quiet)
    saved = tmp_path / "state.pt"
    torch.save(states[2], saved)
    state = torch.load(saved, weights_only=True)
    resumed = run_trial(config, resume_state=state, cache=StageCache(str(tmp_path)), log=_quiet)
    assert [h["epoch"] for h in resumed.history] == [1.0, 2.0, 3.0, 4.0]
    assert resumed.metrics["val_acc1"] == pytest.approx(full.metrics["val_acc1"])
    assert resumed.metrics["test_acc1"] == pytest.approx(full.metrics["test_acc1"])


def saved_teacher(config, path, edit=None) -> str:
    """The built-in teacher written as a checkpoint file, optionally edited first."""
    teacher = load_teacher(config, torch.device("cpu"))
    state = {k: v.clone() for k, v in teacher.model.state_dict().items()}
    checkpoint = {**teacher.metadata, "state_dict": state}
    if edit is not None:
        edit(checkpoint)
    save_teacher(checkpoint, path)
    return str(path)


def nan_teacher(config, path) -> str:
    """A teacher checkpoint whose classifier weights are NaN: distilling from it diverges."""
    return saved_teacher(
        config, path, lambda c: c["state_dict"]["classifier.weight"].fill_(float("nan"))
    )


def test_diverging_training_names_the_stage_and_the_knob(tiny_config, tmp_path):
    path = nan_teacher(tiny_config, tmp_path / "nan_teacher.pt")
    config = with_overrides(tiny_config, {"method": "kd", "teacher.checkpoint": path})
    with pytest.raises(DivergedError, match=r"Module 3 training loss .* lower module3.lr"):
        run_trial(config, log=_quiet)


def test_teacher_with_other_classes_is_refused(tiny_config, tmp_path):
    def rename_last_class(checkpoint):
        checkpoint["class_names"] = [*checkpoint["class_names"][:-1], "eleven"]

    path = saved_teacher(tiny_config, tmp_path / "teacher.pt", rename_last_class)
    config = with_overrides(tiny_config, {"teacher.checkpoint": path})
    with pytest.raises(DataError, match=r"only in teacher: \['eleven'\]; only in data: \['9'\]"):
        run_trial(config, log=_quiet)


def test_missing_teacher_checkpoint_is_named(tiny_config, tmp_path):
    config = with_overrides(tiny_config, {"teacher.checkpoint": str(tmp_path / "none.pt")})
    with pytest.raises(ModelError, match="cannot be read"):
        run_trial(config, log=_quiet)


def test_pickled_teacher_is_refused_by_safe_loading(tiny_config, tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"format": "augkd-teacher-v1", "payload": _Arbitrary()}, path)
    config = with_overrides(tiny_config, {"teacher.checkpoint": str(path)})
    where = re.escape(f"{_Arbitrary.__module__}._Arbitrary")
    with pytest.raises(ModelError, match=rf"holds Python objects \({where}\)"):
        run_trial(config, log=_quiet)


def test_real_dataset_without_teacher_checkpoint_is_refused(tiny_config, tmp_path):
    config = with_overrides(
        tiny_config,
        {"data.source": "folders", "data.root": str(tmp_path), "data.student_domain": "dslr"},
    )
    with pytest.raises(ModelError, match="teacher.checkpoint' is required"):
        run_trial(config, log=_quiet)


def test_missing_data_root_is_named(tiny_config, tmp_path):
    path = saved_teacher(tiny_config, tmp_path / "teacher.pt")
    config = with_overrides(
        tiny_config,
        {"data.source": "folders", "data.root": str(tmp_path / "absent"),
         "data.student_domain": "dslr", "teacher.checkpoint": path},
    )  # fmt: skip
    with pytest.raises(DataError, match="does not exist"):
        run_trial(config, log=_quiet)


def test_teacher_for_another_image_size_is_refused(tiny_config, tmp_path):
    path = saved_teacher(tiny_config, tmp_path / "teacher.pt")
    config = with_overrides(tiny_config, {"teacher.checkpoint": path, "data.image_size": 24})
    with pytest.raises(DataError, match=r"expects 16px images .* set data.image_size=16"):
        run_trial(config, log=_quiet)


def test_checkpoint_that_is_not_a_teacher_is_refused(tiny_config, tmp_path):
    path = tmp_path / "weights.pt"
    torch.save({"state_dict": {}}, path)
    config = with_overrides(tiny_config, {"teacher.checkpoint": str(path)})
    with pytest.raises(
        ModelError, match="is not an augkd teacher; create one with `augkd teacher`"
    ):
        run_trial(config, log=_quiet)


def test_a_trial_over_seeds_reports_their_mean_and_each_seed_as_alone(tiny_config, tmp_path):
    config = with_overrides(tiny_config, {"method": "ce"})
    alone = {seed: run_trial(with_overrides(config, {"seed": seed}), log=_quiet) for seed in (0, 1)}
    reports, states = [], {}

    def keep(metrics, make_state):
        reports.append(metrics)
        states[int(metrics["epoch"])] = make_state()

    both = run_trial(config, on_epoch=keep, seeds=[0, 1], log=_quiet)
    for seed, result in alone.items():
        assert both.metrics[f"best_val_acc1_seed{seed}"] == result.metrics["best_val_acc1"]
        assert both.metrics[f"test_acc1_seed{seed}"] == result.metrics["test_acc1"]
    mean = (alone[0].metrics["best_val_acc1"] + alone[1].metrics["best_val_acc1"]) / 2
    assert both.metrics["best_val_acc1"] == pytest.approx(mean)
    assert [m["epoch"] for m in reports] == [1.0, 2.0, 3.0] and both.metrics["seeds"] == 2.0
    # Resumed after epoch 2 (a lost node), it ends exactly where the whole run ended.
    saved = tmp_path / "state.pt"
    torch.save(states[2], saved)
    state = torch.load(saved, weights_only=True)
    resumed = run_trial(config, resume_state=state, seeds=[0, 1], log=_quiet)
    assert [h["epoch"] for h in resumed.history] == [1.0, 2.0, 3.0]
    assert resumed.metrics["test_acc1"] == both.metrics["test_acc1"]

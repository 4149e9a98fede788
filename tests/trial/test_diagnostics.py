"""Diagnostics of Modules 1-2 on a tiny real run: every metric recomputed by hand,
the stage part cached once per stage-2 artifact, pictures written, `augkd diagnose`."""

from __future__ import annotations

import io
import json

import matplotlib.image
import pytest
import torch

from augkd.basics.config import with_overrides
from augkd.cli import main
from augkd.data import as_unit_float
from augkd.method.diagnostics import GRID_FILE, ROWS_FILE
from augkd.method.losses import energy_score
from augkd.method.mixup import mix_batch
from augkd.storage.cache import StageCache
from augkd.trial.pipeline import prepare_trial, run_trial, trial_diagnostics
from tests.conftest import TINY


def _quiet(_line: str) -> None:
    pass


def _picture_shape(png: bytes) -> tuple[int, ...]:
    return matplotlib.image.imread(io.BytesIO(png), format="png").shape


@pytest.mark.slow
def test_each_diagnostic_on_a_tiny_run_matches_the_networks(tiny_config, cache_home):
    cache = StageCache(cache_home)
    trial = prepare_trial(tiny_config, cache, _quiet)
    result = trial_diagnostics(trial, cache)
    metrics = result.metrics
    teacher, normalize = trial.teacher.model, trial.teacher.normalize
    nets, y = trial.stages.frozen_nets, trial.splits.val_y
    x = as_unit_float(trial.splits.val_x)

    def acc(images: torch.Tensor) -> float:
        with torch.no_grad():
            return 100.0 * (teacher(normalize(images)).argmax(1) == y).float().mean().item()

    with torch.no_grad():
        z = nets.encoder(x, y)[0]
        anchors, mask = nets.anchor_net(z, y)
        reconstructions = nets.generator(z)
        anchor_images = nets.generator(anchors)
        mixed = mix_batch(nets, x, y, tiny_config.module3.b)
        energy = energy_score(teacher(normalize(anchor_images)), 1.0).mean().item()
    assert metrics["x_acc1"] == pytest.approx(acc(x))
    assert metrics["recon_acc1"] == pytest.approx(acc(reconstructions))
    assert metrics["anchor_acc1"] == pytest.approx(acc(anchor_images))
    assert metrics["anchor_energy"] == pytest.approx(energy, rel=1e-4)
    assert metrics["mix_acc1"] == pytest.approx(acc(mixed))
    assert metrics["mix_share"] == tiny_config.module3.b
    assert metrics["mask_mean"] == pytest.approx(mask.mean().item(), rel=1e-5)
    assert metrics["mask_std_samples"] == pytest.approx(mask.std(0).mean().item(), rel=1e-4)
    assert metrics["mask_std_dims"] == pytest.approx(mask.std(1).mean().item(), rel=1e-4)
    for kind in ("gz", "recon", "anchor"):
        assert 0.0 < metrics[f"{kind}_largest_class_share"] <= 1.0
        assert 0.0 <= metrics[f"{kind}_class_entropy"] <= 1.0
        assert 1 / 10 <= metrics[f"{kind}_confidence"] <= 1.0
    assert _picture_shape(result.pictures[GRID_FILE])[0] > 100
    assert _picture_shape(result.pictures[ROWS_FILE])[0] > 100


def test_stage_part_is_cached_once_and_x_mix_follows_b(tiny_config, cache_home):
    config = with_overrides(tiny_config, {"diagnostics.seed": 11})  # a key no other test uses
    cache = StageCache(cache_home)
    first = trial_diagnostics(prepare_trial(config, cache, _quiet), cache)
    other_b = with_overrides(config, {"module3.b": 0.6})
    second = trial_diagnostics(prepare_trial(other_b, cache, _quiet), cache)
    assert [e.hit for e in cache.events if e.stage == "diagnostics"] == [False, True]
    assert second.metrics["gz_confidence"] == first.metrics["gz_confidence"]
    assert second.metrics["mix_share"] == 0.6 and first.metrics["mix_share"] == 0.2


def test_no_anchor_has_no_anchor_or_mask_metrics(tiny_config, cache_home):
    config = with_overrides(tiny_config, {"method": "no_anchor"})
    cache = StageCache(cache_home)
    metrics = trial_diagnostics(prepare_trial(config, cache, _quiet), cache).metrics
    assert "recon_acc1" in metrics and "mix_acc1" in metrics
    assert not [key for key in metrics if key.startswith(("anchor_", "mask_"))]


@pytest.mark.slow
def test_trial_reports_diagnostics_each_epoch_unless_switched_off(tiny_config, cache_home):
    seen, reports = [], []
    run_trial(tiny_config, on_epoch=lambda m, _s: reports.append(m),
              cache=StageCache(cache_home), log=_quiet, on_diagnostics=seen.append)  # fmt: skip
    assert len(seen) == 1 and set(seen[0].pictures) == {GRID_FILE, ROWS_FILE}
    assert all(m["diag_recon_acc1"] == seen[0].metrics["recon_acc1"] for m in reports)
    off = with_overrides(tiny_config, {"diagnostics.enabled": False})
    quiet = run_trial(off, cache=StageCache(cache_home), log=_quiet)
    assert quiet.diagnostics is None and not any(k.startswith("diag_") for k in quiet.metrics)
    # Diagnostics draw no random numbers from the trial's streams: training is unchanged.
    assert [h["val_acc1"] for h in quiet.history] == [m["val_acc1"] for m in reports]


def test_diagnose_command_writes_metrics_and_pictures(tmp_path, cache_home):
    out = tmp_path / "diag"
    args = ["diagnose", "--method", "no_mixup", "--out", str(out)]
    for override in [*TINY, f"teacher.cache_dir={cache_home}"]:
        args += ["--set", override]
    assert main(args) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert "anchor_acc1" in metrics and "mix_acc1" not in metrics  # no_mixup: s = 1
    assert (out / GRID_FILE).read_bytes()[:4] == b"\x89PNG"
    assert (out / ROWS_FILE).read_bytes()[:4] == b"\x89PNG"


def test_diagnose_refuses_a_method_without_a_generator(tmp_path, cache_home, capsys):
    args = ["diagnose", "--method", "ce", "--out", str(tmp_path / "d")]
    for override in [*TINY, f"teacher.cache_dir={cache_home}"]:
        args += ["--set", override]
    assert main(args) == 2
    assert "method 'ce' trains no generator" in capsys.readouterr().err

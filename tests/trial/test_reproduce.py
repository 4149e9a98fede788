"""Exact re-runs: a trial of a real search, exported and re-run by `augkd train`."""

from __future__ import annotations

import json

import pytest
import torch
import yaml

from augkd.basics.config import load_config
from augkd.cli import main as cli_main
from augkd.storage.locations import stage_cache_root


@pytest.fixture
def own_threads():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def test_an_exported_trial_reruns_to_the_same_val_and_test(tiny_search, tmp_path, own_threads):
    assert cli_main(["export", "--search", tiny_search["path"], "--out", str(tmp_path)]) == 0
    exported = yaml.safe_load((tmp_path / "rank1.yaml").read_text())
    assert exported["threads"] == 1  # Ray ran the trial with OMP_NUM_THREADS=1
    assert exported["device"] == "cpu"
    assert exported["teacher"]["cache_dir"] == stage_cache_root(str(tiny_search["root"]))
    rank1 = [r for r in tiny_search["rows"] if r["status"] == "completed"]
    rank1 = max(rank1, key=lambda r: r["best_val_acc1"])

    out = tmp_path / "rerun.json"
    assert cli_main(["train", "--config", str(tmp_path / "rank1.yaml"), "--out", str(out)]) == 0
    rerun = json.loads(out.read_text())["runs"][0]
    assert rerun["best_val_acc1"] == rank1["best_val_acc1"]
    assert rerun["test_acc1"] == rank1["test_acc1"]


def test_the_cache_location_is_not_part_of_any_cache_key(tmp_path):
    here = load_config(None, [f"teacher.cache_dir={tmp_path / 'a'}"])
    there = load_config(None, [f"teacher.cache_dir={tmp_path / 'b'}"])
    assert here.digest("teacher") == there.digest("teacher")
    assert here.digest() == there.digest()
    assert here.digest("teacher") != load_config(None, ["teacher.epochs=3"]).digest("teacher")

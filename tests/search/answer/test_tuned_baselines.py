"""--tune-baselines: each baseline's own search, at the same compute, over the searched keys
its method reads; its best races as a third recipe."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pyarrow.parquet as pq
import pytest
import yaml

from augkd.method.plans import METHOD_PLANS
from augkd.search.answer.candidates import search_record
from augkd.search.answer.tuned_baselines import baseline_space, reads
from augkd.search.records.results import load_results


def test_each_method_reads_only_the_keys_its_plan_uses():
    ce, kd, dfkd = (METHOD_PLANS[m] for m in ("ce", "kd", "dfkd"))
    shared = ("module3.lr", "module3.weight_decay", "module3.steps")
    assert all(reads(plan, key) for plan in (ce, kd, dfkd) for key in shared)
    # the labels alone: the teacher's share and temperature never matter (u = 1 everywhere)
    assert not any(reads(ce, k) for k in ("module3.ce_share", "module3.kd_temperature"))
    assert reads(kd, "module3.ce_share") and reads(kd, "module3.kd_temperature")
    # only AuG-KD's own plans read the teacher term, the mixup schedule and Module 2
    for key in ("module3.teacher_term", "module3.a", "module2.anchor_weight"):
        assert not any(reads(plan, key) for plan in (ce, kd, dfkd))
        assert reads(METHOD_PLANS["augkd"], key)
    assert reads(dfkd, "module1.balance_weight") and not reads(kd, "module1.balance_weight")


def test_a_baselines_space_keeps_the_search_but_its_keys_and_method(tiny_search):
    recorded = search_record(tiny_search["path"])
    space = baseline_space(recorded, "kd")
    assert set(space["params"]) == {"module3.ce_share", "module3.kd_temperature"}
    assert space["base"]["method"] == "kd" and space["name"] == f"{recorded['name']}-kd"
    for same in ("num_samples", "scheduler", "sampler", "objective", "resources"):
        assert space[same] == recorded[same]  # the same compute, judged the same way
    assert baseline_space(recorded, "ce") is None  # the tiny space searches nothing ce reads


@pytest.fixture(scope="module")
def tuned(tiny_search, tmp_path_factory):
    """`augkd evaluate --tune-baselines` on a copy of the tiny search, twice (the second
    time reads the baseline searches, never runs them again)."""
    storage = tmp_path_factory.mktemp("tuned") / "storage"
    shutil.copytree(tiny_search["root"], storage)
    args = ["evaluate", "--search", str(storage), "--top-k", "1", "--seeds", "1"]
    args += ["--max-seeds", "1", "--baselines", "kd,ce", "--tune-baselines"]
    args += ["--tracking-uri", f"sqlite:///{storage}/mlflow.db"]
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    command = [sys.executable, "-m", "augkd.cli", *args]
    first = subprocess.run(command, capture_output=True, text=True, env=env)
    again = subprocess.run(command, capture_output=True, text=True, env=env)
    name = tiny_search["path"].rsplit("/", 1)[-1]
    return {"first": first, "again": again, "search": storage / name,
            "kd_search": storage / f"{name}-tuned-kd"}  # fmt: skip


@pytest.mark.slow
def test_a_tuned_baseline_races_its_own_searchs_best(tuned, tiny_search):
    first = tuned["first"]
    assert first.returncode == 0, first.stderr[-3000:]
    rows = load_results(str(tuned["kd_search"]))
    assert len(rows) == len(tiny_search["rows"])  # as many trials as the evaluated search
    ran = [yaml.safe_load(r["config_yaml"]) for r in rows if r.get("config_yaml")]
    assert ran and {config["method"] for config in ran} == {"kd"}
    assert all(k.removeprefix("param:").startswith("module3.") for r in rows for k in r
               if k.startswith("param:") and r[k] is not None)  # fmt: skip
    assert "ce reads none of the searched keys" in first.stderr
    evaluation = pq.read_table(tuned["search"] / "evaluation.parquet").to_pylist()
    kd_rows = [r for r in evaluation if r["method"] == "kd"]
    # one row per recipe that stayed; the tuned one was in the first round (or merged into
    # a recipe it equals)
    assert "kd@tuned" in first.stderr or "its own search's best" in first.stdout
    assert kd_rows and all(r["error"] is None for r in kd_rows)


@pytest.mark.slow
def test_the_same_command_again_reads_the_baseline_searches(tuned):
    again = tuned["again"]
    assert again.returncode == 0, again.stderr[-3000:]
    assert "kd's search ran before" in again.stderr and "tuning kd" not in again.stderr
    # a storage root still means the evaluated search, not the baseline search started later
    assert f"using the latest search under {tuned['search'].parent}: {tuned['search']}\n" in (
        again.stderr
    )

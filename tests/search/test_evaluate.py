"""`augkd evaluate`: a search's top-k configs and the baselines over fresh seeds."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import statistics

import pyarrow.parquet as pq
import pytest
import ray
from mlflow.tracking import MlflowClient

from augkd import report
from augkd.cli import main as cli_main
from augkd.config import Config
from augkd.search.evaluate import (
    EVALUATION_TAG,
    Candidate,
    fresh_seeds,
    paired_difference,
    parse_baselines,
)
from augkd.search.tracking import TRIAL_TAG


@pytest.fixture(scope="module")
def evaluated(tiny_search, tmp_path_factory):
    """`augkd evaluate` on a copy of the tiny search's storage root (the fixture stays
    as it was): its best config and `ce`, over 2 fresh seeds, as Ray tasks."""
    storage = tmp_path_factory.mktemp("evaluate") / "storage"
    shutil.copytree(tiny_search["root"], storage)
    uri = f"sqlite:///{storage}/mlflow.db"
    args = ["evaluate", "--search", str(storage), "--top-k", "1", "--seeds", "2"]
    args += ["--baselines", "ce", "--tracking-uri", uri]
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    printed = io.StringIO()
    try:
        with contextlib.redirect_stdout(printed):
            code = cli_main(args)
    finally:
        ray.shutdown()
    name = tiny_search["path"].rsplit("/", 1)[-1]
    return {"code": code, "search": storage / name, "uri": uri, "out": printed.getvalue()}


def test_evaluate_writes_one_row_per_method_and_fresh_seed(evaluated, capsys):
    assert evaluated["code"] == 0
    rows = pq.read_table(evaluated["search"] / "evaluation.parquet").to_pylist()
    # the search ran seed 0 only: the fresh seeds are 1 and 2, shared by every method
    assert sorted((r["label"], r["seed"]) for r in rows) == [
        ("ce", 1), ("ce", 2), ("rank1", 1), ("rank1", 2)
    ]  # fmt: skip
    assert all(r["error"] is None and 0 <= r["test_acc1"] <= 100 for r in rows)
    assert {r["method"] for r in rows} == {"augkd", "ce"}
    assert [r["winner"] for r in rows if r["label"] == "rank1"] == [True, True]


def test_evaluate_writes_the_baselines_file_the_report_draws(evaluated):
    rows = pq.read_table(evaluated["search"] / "evaluation.parquet").to_pylist()
    payload = json.loads((evaluated["search"] / "baselines.json").read_text())
    for label, method in (("rank1", "augkd"), ("ce", "ce")):
        expected = [r["test_acc1"] for r in sorted(rows, key=lambda r: r["seed"])
                    if r["label"] == label]  # fmt: skip
        assert payload["methods"][method]["test_acc1"] == expected
    data = report.load_search(str(evaluated["search"]), evaluated["uri"])
    assert report.plot_baselines(data).figure is not None


def test_evaluate_logs_its_runs_under_the_searchs_parent(evaluated):
    client = MlflowClient(evaluated["uri"])
    experiment = client.get_experiment_by_name("augkd-digits")
    runs = client.search_runs(
        [experiment.experiment_id], filter_string=f"tags.`{EVALUATION_TAG}` != ''"
    )
    parent = client.search_runs(
        [experiment.experiment_id], filter_string=f"tags.`{TRIAL_TAG}` = 'parent'"
    )[0]
    assert len(runs) == 4
    assert {r.data.tags["mlflow.parentRunId"] for r in runs} == {parent.info.run_id}
    assert all("test_acc1" in r.data.metrics and r.info.status == "FINISHED" for r in runs)
    assert all(r.data.params["seed"] in ("1", "2") for r in runs)


def test_evaluate_prints_a_paired_table_against_the_best_baseline(evaluated):
    rows = pq.read_table(evaluated["search"] / "evaluation.parquet").to_pylist()
    by = {(r["label"], r["seed"]): r["test_acc1"] for r in rows}
    diffs = [by[("rank1", s)] - by[("ce", s)] for s in (1, 2)]
    mean = statistics.fmean(diffs)
    error = statistics.stdev(diffs) / 2**0.5
    ours = Candidate(
        "rank1", Config(), "t", [{"seed": s, "test_acc1": by[("rank1", s)]} for s in (1, 2)]
    )
    theirs = Candidate(
        "ce", Config(), None, [{"seed": s, "test_acc1": by[("ce", s)]} for s in (1, 2)]
    )
    assert paired_difference(ours, theirs) == pytest.approx((mean, error, 2))
    header, rank1, ce, note = evaluated["out"].strip().splitlines()[-4:]
    assert "Δ Acc@1 vs ce (± s.e.)" in header and "fresh seeds [1, 2]" in note
    assert rank1.startswith("rank1") and f"{mean:+.1f} ± {error:.1f}" in rank1
    assert f"{statistics.fmean(by[('ce', s)] for s in (1, 2)):.1f} ±" in ce


def test_fresh_seeds_skip_the_searchs_and_bad_baselines_are_refused():
    assert fresh_seeds({0, 2}, 3) == [1, 3, 4]
    assert parse_baselines("ce, kd") == ["ce", "kd"]
    with pytest.raises(Exception, match="unknown methods"):
        parse_baselines("ce,bogus")

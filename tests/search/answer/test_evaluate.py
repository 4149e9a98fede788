"""`augkd evaluate`: a search's top-k configs and the baselines over fresh seeds."""

from __future__ import annotations

import json
import os
import re
import shutil
import statistics
import subprocess
import sys

import pyarrow.parquet as pq
import pytest
import yaml
from mlflow.tracking import MlflowClient

from augkd import report
from augkd.basics.config import Config
from augkd.basics.dotted import get_dotted
from augkd.search.answer.candidates import DEFAULTS, Candidate
from augkd.search.answer.evaluation_mlflow import EVALUATION_TAG
from augkd.search.records.tracking import TRIAL_TAG
from augkd.storage.locations import EVALUATION_RUNS_FOLDER
from tests.search.conftest import trial_worker_pids


@pytest.fixture(scope="module")
def evaluated(tiny_search, tmp_path_factory):
    """`augkd evaluate` as a user runs it (its own local Ray) on a copy of the tiny search's
    storage root (the fixture stays as it was): its best config, the defaults and `ce`,
    raced over 2 fresh seeds, then a round of 1 up to 3 (unless decided sooner), as Ray
    tasks."""
    storage = tmp_path_factory.mktemp("evaluate") / "storage"
    shutil.copytree(tiny_search["root"], storage)
    uri = f"sqlite:///{storage}/mlflow.db"
    args = ["evaluate", "--search", str(storage), "--top-k", "1", "--seeds", "2"]
    args += ["--max-seeds", "3", "--baselines", "ce", "--tracking-uri", uri]
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    run = subprocess.run(
        [sys.executable, "-m", "augkd.cli", *args], capture_output=True, text=True, env=env
    )
    name = tiny_search["path"].rsplit("/", 1)[-1]
    rows = pq.read_table(storage / name / "evaluation.parquet").to_pylist()
    # Stopped part-way, as a run lost at the end of a machine's lease: one finished run's
    # record gone, the same command again.
    records = sorted((storage / name / EVALUATION_RUNS_FOLDER).glob("*.json"))
    records[0].unlink()
    again = subprocess.run(
        [sys.executable, "-m", "augkd.cli", *args], capture_output=True, text=True, env=env
    )
    rows_again = pq.read_table(storage / name / "evaluation.parquet").to_pylist()
    return {
        "run": run, "search": storage / name, "uri": uri, "out": run.stdout, "rows": rows,
        "records": len(records), "again": again, "rows_again": rows_again,
    }  # fmt: skip


def _labels(rows) -> list[str]:
    return list(dict.fromkeys(r["label"] for r in rows))


def _verdict(evaluated) -> dict:
    schema = pq.read_schema(evaluated["search"] / "evaluation.parquet")
    return json.loads(schema.metadata[b"augkd.verdict"])


@pytest.mark.slow
def test_evaluate_writes_one_row_per_method_and_fresh_seed(evaluated):
    assert evaluated["run"].returncode == 0, evaluated["run"].stderr[-3000:]
    rows = evaluated["rows"]
    labels = _labels(rows)
    seeds = _verdict(evaluated)["seeds"]
    assert labels[0] == "rank1" and labels[-1] == "ce"
    # the search ran seed 0 only: the fresh seeds are 1, 2, ..., shared by every method
    assert seeds in ([1, 2], [1, 2, 3])
    assert sorted((r["label"], r["seed"]) for r in rows) == sorted(
        (label, seed) for label in labels for seed in seeds
    )
    assert all(r["error"] is None and 0 <= r["test_acc1"] <= 100 for r in rows)
    assert {r["method"] for r in rows} == {"augkd", "ce"}
    assert all(r["winner"] for r in rows if r["label"] == "rank1")


@pytest.mark.slow
def test_racing_adds_seeds_until_resolved_or_max_seeds(evaluated):
    """Round 1 ran 2 seeds; a second round ran exactly when round 1 left the verdict
    unresolved, and the race stopped at --max-seeds 3 whatever it found then."""
    verdict = _verdict(evaluated)
    err = evaluated["run"].stderr
    assert "[evaluate] round 1: " in err and "x seeds [1, 2]:" in err
    if verdict["seeds"] == [1, 2]:
        assert verdict["decision"] != "unresolved" and "round 2" not in err
    else:
        assert "[evaluate] after 2 seeds: not resolved after 2 seeds" in err
        assert "[evaluate] round 2: " in err and "x seeds [3]:" in err
        assert "round 3" not in err
    assert verdict["runs"] == len(evaluated["rows"]) and verdict["compute_seconds"] > 0
    assert f"verdict: {verdict['sentence']}" in evaluated["out"]
    assert verdict["sentence"].endswith(
        ("keep the defaults", "keep the defaults until then")
    ) or verdict["sentence"].split(": ")[-1].startswith("take rank1")


@pytest.mark.slow
def test_a_stopped_evaluation_runs_again_only_what_it_had_not_finished(evaluated):
    """Every finished run is kept as it ends; the same command reads those and runs only the
    one whose record is gone, and comes to the same rows and verdict."""
    again = evaluated["again"]
    assert again.returncode == 0, again.stderr[-3000:]
    assert evaluated["records"] == len(evaluated["rows"])
    assert again.stderr.count("(finished earlier: read, not run)") == len(evaluated["rows"]) - 1
    assert again.stderr.count("[evaluate] progress: 1/1 runs") == 1, again.stderr[-3000:]
    key = ("label", "seed", "best_val_acc1", "test_acc1", "config_yaml")
    assert [{k: r[k] for k in key} for r in evaluated["rows_again"]] == [
        {k: r[k] for k in key} for r in evaluated["rows"]
    ]
    assert f"verdict: {_verdict(evaluated)['sentence']}" in again.stdout
    # MLflow holds the latest evaluation once: the first one's runs are in the deleted stage
    from mlflow.entities import ViewType

    client = MlflowClient(evaluated["uri"])
    experiment = client.get_experiment_by_name("augkd-digits")
    replaced = client.search_runs(
        [experiment.experiment_id],
        filter_string=f"tags.`{EVALUATION_TAG}` != ''",
        run_view_type=ViewType.DELETED_ONLY,
    )
    assert len(replaced) == len(evaluated["rows"])


@pytest.mark.slow
def test_the_defaults_are_evaluated_once_on_the_same_seeds(evaluated, tiny_search):
    rows = evaluated["rows"]
    defaults = [r for r in rows if r["defaults"]]
    seeds = _verdict(evaluated)["seeds"]
    assert len(defaults) == len(seeds) and len({r["label"] for r in defaults}) == 1
    rank1_is_defaults = defaults[0]["label"] == "rank1"
    assert _labels(rows) == ["rank1", *([] if rank1_is_defaults else [DEFAULTS]), "ce"]
    # they run the space's base config (the first trial's values of every searched key)
    config = yaml.safe_load(defaults[0]["config_yaml"])
    space = json.loads((evaluated["search"] / "search_space.json").read_text())
    for key in space["params"]:
        assert get_dotted(config, key) == get_dotted(space["base_resolved"], key)
    header, *lines, note, _verdict_line = (
        evaluated["out"].strip().splitlines()[-(len(_labels(rows)) + 3) :]
    )
    assert "Δ Acc@1 vs ce (95%)" in header and "Δ Acc@1 vs defaults (95%)" in header
    by = {(r["label"], r["seed"]): r["test_acc1"] for r in rows}
    label = defaults[0]["label"]
    winner_vs_defaults = Candidate(
        "rank1", Config(), "t", [{"seed": s, "test_acc1": by[("rank1", s)]} for s in seeds]
    ).difference_to(
        Candidate(label, Config(), None, [{"seed": s, "test_acc1": by[(label, s)]} for s in seeds])
    )
    rank1 = next(line for line in lines if line.startswith("rank1"))
    if rank1_is_defaults:
        assert " -  " in rank1  # no difference to itself
    else:
        assert winner_vs_defaults.with_interval() in rank1, rank1
    assert "defaults: the base config's values of the searched keys" in note


@pytest.mark.slow
def test_evaluate_starts_its_own_ray_and_prints_no_library_noise(evaluated):
    err = evaluated["run"].stderr
    assert "[evaluate] started a local Ray (--address auto or HOST:PORT joins a cluster)" in err
    for noise in ("Token authentication", "Started a local Ray instance", "alembic"):
        assert noise not in err, err[-3000:]


@pytest.mark.slow
def test_evaluate_counts_its_runs_down_with_an_eta_in_a_log(evaluated):
    """Not a terminal: per round, a line before its first run ends, then one per run."""
    runs = len(evaluated["rows"])
    rounds = 1 if _verdict(evaluated)["seeds"] == [1, 2] else 2
    first_round = 2 * len(_labels(evaluated["rows"]))
    lines = [
        line
        for line in evaluated["run"].stderr.splitlines()
        if line.startswith("[evaluate] progress:")
    ]
    assert lines[0] == f"[evaluate] progress: 0/{first_round} runs, timing"
    assert "ETA" in lines[1]
    assert re.fullmatch(
        rf"\[evaluate\] progress: {first_round}/{first_round} runs, done in .+",
        lines[first_round],
    )
    assert len(lines) == runs + rounds


@pytest.mark.slow
def test_evaluate_shows_the_stage_each_run_is_in_with_an_eta_in_a_log(evaluated):
    """The fresh seeds' runs train Module 1 (the search cached seed 0's alone): each run's
    stages come as lines naming the stage and the run, step/total with a rate and ETA, and a
    line when each ends; Module 3's at its val passes."""
    stage_line = re.compile(
        r"\[evaluate\] (teacher|module1|encoder|module2|module3) \((\S+) seed (\d+)\): "
        r"(\d+)/(\d+) (?:steps|iterations), (.+)"
    )
    lines = evaluated["run"].stderr.splitlines()
    shown = [match.groups() for match in map(stage_line.fullmatch, lines) if match]
    ran = {(row["label"], str(row["seed"])) for row in evaluated["rows"]}
    assert {(label, seed) for _, label, seed, *_ in shown} == ran
    assert {(label, seed) for stage, label, seed, *_ in shown if stage == "module3"} == ran
    # Module 1 of each fresh seed is trained (by a run of a method with a generator, not ce;
    # runs of the same seed then read it from the cache), shown to its end
    module1_ended = [
        (label, seed)
        for stage, label, seed, done, total, _ in shown
        if stage == "module1" and done == total
    ]
    assert {seed for _, seed in module1_ended} == {seed for _, seed in ran}
    assert not any(label.startswith("ce") for label, _ in module1_ended)
    for *_, done, total, rest in shown:
        assert rest.startswith("done in ") if done == total else ("ETA" in rest or rest == "timing")


@pytest.mark.slow
def test_evaluate_writes_the_baselines_file_the_report_draws(evaluated):
    rows = pq.read_table(evaluated["search"] / "evaluation.parquet").to_pylist()
    payload = json.loads((evaluated["search"] / "baselines.json").read_text())
    defaults = next(r["label"] for r in rows if r["defaults"])
    for label, method in (("rank1", "augkd"), ("ce", "ce"), (defaults, DEFAULTS)):
        expected = [r["test_acc1"] for r in sorted(rows, key=lambda r: r["seed"])
                    if r["label"] == label]  # fmt: skip
        assert payload["methods"][method]["test_acc1"] == expected
    data = report.load_search(str(evaluated["search"]), evaluated["uri"])
    section = report.plot_baselines(data)
    assert section.figure is not None
    assert f"Verdict: {payload['verdict']['sentence']}." in section.note
    assert (
        payload["recipes"]["ce"].startswith("own defaults") and "ce at own defaults" in section.note
    )


@pytest.mark.slow
def test_evaluate_logs_its_runs_under_the_searchs_parent(evaluated):
    client = MlflowClient(evaluated["uri"])
    experiment = client.get_experiment_by_name("augkd-digits")
    runs = client.search_runs(
        [experiment.experiment_id], filter_string=f"tags.`{EVALUATION_TAG}` != ''"
    )
    parent = client.search_runs(
        [experiment.experiment_id], filter_string=f"tags.`{TRIAL_TAG}` = 'parent'"
    )[0]
    verdict = _verdict(evaluated)
    seeds = verdict["seeds"]
    assert len(runs) == len(evaluated["rows"]) == len(seeds) * len(_labels(evaluated["rows"]))
    assert {r.data.tags["mlflow.parentRunId"] for r in runs} == {parent.info.run_id}
    assert all("test_acc1" in r.data.metrics and r.info.status == "FINISHED" for r in runs)
    # each run's peak memory, in MLflow and in evaluation.parquet (issue 25)
    assert all(r.data.metrics["peak_rss_mb"] > 0 for r in runs)
    assert all(row["peak_rss_mb"] > 0 for row in evaluated["rows"])
    assert {r.data.params["seed"] for r in runs} == {str(s) for s in seeds}
    # the verdict, its seeds and the compute it cost are on the search's parent run
    assert parent.data.tags["augkd.verdict"] == verdict["sentence"]
    assert parent.data.tags["augkd.verdict_decision"] == verdict["decision"]
    assert parent.data.metrics["evaluation_seeds"] == len(seeds)
    assert parent.data.metrics["evaluation_compute_seconds"] == pytest.approx(
        verdict["compute_seconds"]
    )


@pytest.mark.slow
def test_evaluate_prints_a_paired_table_against_the_best_baseline(evaluated):
    rows = evaluated["rows"]
    seeds = _verdict(evaluated)["seeds"]
    by = {(r["label"], r["seed"]): r["test_acc1"] for r in rows}
    diffs = [by[("rank1", s)] - by[("ce", s)] for s in seeds]
    mean = statistics.fmean(diffs)
    error = statistics.stdev(diffs) / len(seeds) ** 0.5
    ours = Candidate(
        "rank1", Config(), "t", [{"seed": s, "test_acc1": by[("rank1", s)]} for s in seeds]
    )
    theirs = Candidate(
        "ce", Config(), None, [{"seed": s, "test_acc1": by[("ce", s)]} for s in seeds]
    )
    difference = ours.difference_to(theirs)
    assert (difference.mean, difference.error, difference.seeds) == pytest.approx(
        (mean, error, len(seeds))
    )
    header, *lines, note, verdict = (
        evaluated["out"].strip().splitlines()[-(len(_labels(rows)) + 3) :]
    )
    assert "Δ Acc@1 vs ce (95%)" in header and f"fresh seeds {seeds}" in note
    assert verdict.startswith("verdict: ")
    rank1 = next(line for line in lines if line.startswith("rank1"))
    ce = next(line for line in lines if line.startswith("ce"))
    width = difference.half_width()
    assert f"{mean:+.1f} ± {width:.1f}" in rank1 and "judged at step" in rank1
    assert f"{statistics.fmean(by[('ce', s)] for s in seeds):.1f} ±" in ce
    assert "recipe: own defaults" in ce


def test_without_actor_reuse_every_trial_gets_a_fresh_worker_process(tiny_search):
    """tiny_search sets reuse_actors=false (the other searches reuse; test_objective.py)."""
    pids = trial_worker_pids(tiny_search["path"])
    assert len(pids) == 3 and all(len(of_trial) == 1 for of_trial in pids.values())
    assert len(set().union(*pids.values())) == 3, pids


def test_ctrl_c_during_search_py_evaluate_names_the_augkd_evaluate_that_continues_it():
    """Re-running `python search.py --evaluate` would start a new search; the line names the
    `augkd evaluate` of the finished search with the same race settings instead."""
    import importlib.util
    import shlex
    from types import SimpleNamespace

    from augkd.cli import build_parser
    from tests.paths import REPO

    spec = importlib.util.spec_from_file_location("search_script_line", REPO / "search.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    args = script.parse_args(["--evaluate", "2", "--eval-seeds", "4", "--max-seeds", "6",
                              "--margin", "0.3", "--baselines", "ce,kd", "--address", "auto",
                              "--tune-baselines"])  # fmt: skip
    outcome = SimpleNamespace(search_path="/runs/fonts-1", tracking_uri="sqlite:////runs/m.db")
    line = script._continue_evaluation(args, outcome)
    assert line.startswith("interrupted during the evaluation: the search is complete")
    command = shlex.split(line.split("continue it with: ", 1)[1])
    assert command[:2] == ["augkd", "evaluate"]
    parsed = build_parser().parse_args(command[1:])
    assert (parsed.search, parsed.top_k, parsed.seeds, parsed.max_seeds, parsed.margin) == (
        "/runs/fonts-1",
        2,
        4,
        6,
        0.3,
    )
    assert (parsed.baselines, parsed.tracking_uri, parsed.address) == (
        "ce,kd",
        "sqlite:////runs/m.db",
        "auto",
    )
    assert parsed.tune_baselines  # the baseline searches it ran are read, not run again

"""Cluster deployment: a real search on a local multi-node Ray cluster, a worker node
lost mid-search, and the driver killed mid-search then resumed.

One ``ray.cluster_utils.Cluster`` serves the module: a head with no CPU (no trial
lands there) and 1-CPU worker nodes with one logical GPU each; trials ask for half
a CPU and half a GPU. Each trial reports the Ray node id that ran each epoch
(``node_id``), which tells nodes apart on one host where hostname and IP are equal.

torch has no CUDA here, so a worker given one of those GPUs would refuse it (a GPU that cannot
be used is an error: tests/search/test_cluster_failures.py); these nodes opt in to running
``device: auto`` on CPU with their logical GPUs (LOGICAL_NODE), which keeps Ray's scheduling of
GPU shares under test.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
import ray
from mlflow.tracking import MlflowClient
from ray.cluster_utils import Cluster
from ray.tune import ExperimentAnalysis

from augkd.basics.errors import ConfigError
from augkd.hardware.gpu_check import LOGICAL_GPUS_ENV
from augkd.search.records.results import load_results
from augkd.search.records.tracking import MLFLOW_STATUS, SEARCH_TAG, TRIAL_TAG
from augkd.search.run.optuna_bridge import LOST_ATTR
from augkd.search.run.runner import SearchOptions, run_search
from augkd.search.run.study import load_study
from tests.paths import REPO as ROOT
from tests.search.conftest import local_cluster, trial_results

EXPERIMENT = "augkd-digits"
ENDED = {"completed", "pruned"}
OPTUNA_STATE = {"completed": "COMPLETE", "pruned": "PRUNED"}
EPOCHS = 4
SMALL = [
    "resources.cpu=0.5",
    "resources.gpu=0.5",
    "teacher.epochs=5",
    "module1.iters_per_epoch=4",
    "module2.epochs=1",
    f"module3.epochs={EPOCHS}",
]
PRINT_PATCH = {"RAY_TQDM_PATCH_PRINT": "0"}
"""Works around the ProgressView pickling bug (see test_progress_view_pickles_after_ray_patches_print):
once a worker's log line reaches a log_to_driver driver, Ray replaces builtins.print, and
every later Tuner in that process fails to pickle ProgressView(echo=print)."""
LOGICAL_NODE = {"num_cpus": 1, "num_gpus": 1, "env_vars": {LOGICAL_GPUS_ENV: "1"}}
"""A worker node whose one GPU is logical, opted in to CPU training (augkd.hardware.gpu_check)."""
SAFETY_S = 1800.0  # a hang guard for a loaded machine, not a speed limit
"""Only keeps a broken run from hanging the suite; no assert is about speed."""


@pytest.fixture(scope="module")
def cluster(s3_server):
    """Started after the S3 server, so every node inherits AWS_ENDPOINT_URL and credentials."""
    with local_cluster(PRINT_PATCH) as local:
        for _ in range(2):
            local.add_node(**LOGICAL_NODE)
        local.wait_for_nodes()
        yield local


@pytest.fixture(scope="module")
def shared_storage(tmp_path_factory) -> Path:
    """One storage for the module's local searches (each under its own name), as a team shares
    one: the teacher and Modules 1-2 come from its stage cache after the first search, and
    these tests are about what happens to trials."""
    return tmp_path_factory.mktemp("runs")


def _ensure_workers(cluster: Cluster, count: int = 2) -> None:
    """Another test may have removed a node; every test starts with ``count`` workers."""
    while len(cluster.worker_nodes) < count:
        cluster.add_node(**LOGICAL_NODE)
    cluster.wait_for_nodes()


def _worker_ids(cluster: Cluster) -> set[str]:
    return {node.node_id for node in cluster.worker_nodes}


def _rows(search_path: str) -> list[dict]:
    try:
        return load_results(search_path)
    except (ConfigError, OSError):
        return []  # not written yet (or being replaced)


def _check_accounts(search_path: str, tracking_uri: str, name: str, num_samples: int) -> list:
    """Every trial once in the table and once in MLflow, each ended, histories unduplicated."""
    rows = load_results(search_path)
    ids = [row["trial_id"] for row in rows]
    assert len(ids) == num_samples, ids
    assert len(set(ids)) == num_samples, Counter(ids)
    for row in rows:
        assert row["status"] in ENDED, (row["trial_id"], row["status"], row.get("error"))
        epochs = [int(h["epoch"]) for h in json.loads(row["history_json"])]
        assert epochs == list(range(1, len(epochs) + 1)), (row["trial_id"], epochs)
        assert epochs[-1] == row["epochs_run"]
        if row["status"] == "completed":
            assert row["epochs_run"] == EPOCHS

    # Ray's own record of the experiment: the same trials, each once, each terminated
    tune_trials = ExperimentAnalysis(search_path).trials
    assert sorted(t.trial_id for t in tune_trials) == sorted(ids)
    assert {t.status for t in tune_trials} == {"TERMINATED"}

    client = MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name(EXPERIMENT)
    runs = client.search_runs(
        [experiment.experiment_id], filter_string=f"tags.`{SEARCH_TAG}` = '{name}'"
    )
    parents = [run for run in runs if run.data.tags.get(TRIAL_TAG) == "parent"]
    children = [run for run in runs if run.data.tags.get(TRIAL_TAG) != "parent"]
    assert len(parents) == 1
    assert parents[0].info.status == "FINISHED"
    child_ids = [run.data.tags[TRIAL_TAG] for run in children]
    assert sorted(child_ids) == sorted(ids), (child_ids, ids)
    by_trial = {run.data.tags[TRIAL_TAG]: run for run in children}
    for row in rows:
        run = by_trial[row["trial_id"]]
        assert run.info.run_id == row["mlflow_run_id"]
        assert run.data.tags["mlflow.parentRunId"] == parents[0].info.run_id
        assert run.info.status == MLFLOW_STATUS[row["status"]], (row["trial_id"], run.info.status)
        assert run.data.tags["augkd.status"] == row["status"]
        assert run.data.metrics["epoch"] == row["epochs_run"]
    return rows


@pytest.mark.slow
def test_search_spreads_over_worker_nodes_and_shares_stage_artifacts(
    cluster, shared_storage, tmp_path
):
    storage, name, samples = shared_storage, "multinode", 4
    tracking_uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    _ensure_workers(cluster)
    outcome = run_search(
        SearchOptions(
            space="digits", storage=str(storage), name=name, tracking_uri=tracking_uri, smoke_test=True,
            num_samples=samples, address=cluster.address,
            # four half-CPU half-GPU trials at once fill both 1-CPU 1-GPU workers
            overrides=[*SMALL, f"max_concurrent={samples}"],
        ),
        echo=lambda *a, **k: None,
    )  # fmt: skip
    assert ray.get_runtime_context().gcs_address == cluster.address

    rows = _check_accounts(outcome.search_path, tracking_uri, name, samples)
    nodes_of = {
        trial: {r["node_id"] for r in results}
        for trial, results in trial_results(outcome.search_path).items()
    }
    assert set(nodes_of) == {row["trial_id"] for row in rows}
    for trial, nodes in nodes_of.items():
        assert len(nodes) == 1, (trial, nodes)  # nothing failed: one node per trial
    used = set().union(*nodes_of.values())
    assert used == _worker_ids(cluster), (used, _worker_ids(cluster))
    assert cluster.head_node.node_id not in used

    # Stage 1 (and the teacher) depend on nothing the search varies: computed once (by this
    # search, or an earlier one in the same storage) and loaded from there by every trial.
    cache = storage / "stage_cache"
    assert len(list((cache / "teacher").glob("*.pt"))) == 1
    assert len(list((cache / "module1").glob("*.pt"))) == 1
    assert [row["module1_cache_hit"] for row in rows] == [1.0] * samples
    # Stage 2 depends on the sampled module2.* settings, which sit on a grid (two points under
    # --smoke-test): one AnchorNet per point, trained before the trials and read by each.
    assert len(list((cache / "module2").glob("*.pt"))) == SMOKE_GRID_POINTS
    assert [row["module2_cache_hit"] for row in rows] == [1.0] * samples


@pytest.mark.slow
def test_lost_worker_node_trials_resume_from_checkpoint_elsewhere(
    cluster, shared_storage, tmp_path
):
    storage, name, samples = shared_storage, "nodeloss", 4
    search_path = str(storage / name)
    tracking_uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    _ensure_workers(cluster)
    worker = {node.node_id: node for node in cluster.worker_nodes}
    lost: dict = {}
    done = threading.Event()

    def remove_a_busy_node() -> None:
        """Crash the node of the first trial that has reported an epoch and has more to run."""
        while not done.is_set():
            for trial, results in trial_results(search_path).items():
                last = results[-1]
                if 1 <= last["epoch"] < EPOCHS - 1 and last["node_id"] in worker:
                    victim = last["node_id"]
                    lost["node_id"], lost["trial"], lost["epoch"] = victim, trial, last["epoch"]
                    cluster.remove_node(worker[victim], allow_graceful=False)
                    return
            time.sleep(0.2)

    watcher = threading.Thread(target=remove_a_busy_node, daemon=True)
    watcher.start()
    try:
        run_search(
            SearchOptions(
                space="digits", storage=str(storage), name=name, tracking_uri=tracking_uri, smoke_test=True,
                num_samples=samples, address=cluster.address,
                # slower epochs and no early stopping (rungs count optimizer steps, so even a
                # grace of a few epochs' steps can stop the victim before its node goes);
                # a checkpoint every epoch
                overrides=[*SMALL, "module3.batch_size=16", "scheduler.name=fifo",
                           "checkpoint_minutes=0"],
            ),
            echo=lambda *a, **k: None,
        )  # fmt: skip
    finally:
        done.set()
        watcher.join()
    assert lost, "no trial was seen mid-training on a worker node"
    assert lost["node_id"] not in _worker_ids(cluster)

    _check_accounts(search_path, tracking_uri, name, samples)
    reports = trial_results(search_path)
    victim = reports[lost["trial"]]
    story = [(r["epoch"], r["node_id"], r["iterations_since_restore"]) for r in victim]
    on_lost = [r["epoch"] for r in victim if r["node_id"] == lost["node_id"]]
    elsewhere = [r for r in victim if r["node_id"] != lost["node_id"]]
    assert elsewhere, f"trial {lost['trial']} never ran again after its node was removed: {story}"
    # Every epoch is checkpointed: the new node goes on from the lost node's last checkpoint,
    # in a restored actor. That checkpoint is the last epoch the driver
    # recorded; or the one after it, when the node died with that epoch's report in flight
    # (its checkpoint in storage, its result not yet at the driver); or the one before it,
    # when the node died after the driver took the result but before Tune's second call to
    # the actor handed over its checkpoint. Only then is an epoch run twice, and the records
    # keep it once (_check_accounts: every history 1, 2, ... without a repeat).
    assert max(on_lost) <= elsewhere[0]["epoch"] <= max(on_lost) + 2, story
    assert elsewhere[0]["iterations_since_restore"] == 1, story
    epochs = [r["epoch"] for r in victim]
    assert epochs == sorted(epochs) and epochs[0] == 1, story
    assert len(epochs) - len(set(epochs)) <= 1, story


@pytest.mark.slow
def test_killed_driver_resumes_without_loss_or_duplicates(cluster, shared_storage, tmp_path):
    storage, name, samples = shared_storage, "driverkill", 4
    search_path = str(storage / name)
    tracking_uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    # As `ray submit` does: search.py alone in an empty folder, the package installed.
    alone = tmp_path / "alone"
    alone.mkdir()
    shutil.copy(ROOT / "search.py", alone / "search.py")
    command = [
        sys.executable, str(alone / "search.py"), "--space", "digits", "--smoke-test",
        "--storage", str(storage),
        "--name", name, "--tracking-uri", tracking_uri, "--address", cluster.address,
        "--num-samples", str(samples), *(f"--set={item}" for item in SMALL),
    ]  # fmt: skip
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    first_log = tmp_path / "first.log"
    with first_log.open("w") as out:
        driver = subprocess.Popen(command, cwd=alone, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + SAFETY_S
            while not any((row.get("epochs_run") or 0) >= 1 for row in _rows(search_path)):
                assert driver.poll() is None, (
                    "search ended before it could be killed:\n" + (first_log.read_text()[-3000:])
                )
                assert time.monotonic() < deadline, first_log.read_text()[-3000:]
                time.sleep(0.3)
            driver.send_signal(signal.SIGKILL)
        finally:
            if driver.poll() is None:
                driver.kill()
            driver.wait()
    before = _rows(search_path)
    assert len(before) < samples or any(row["status"] not in ENDED for row in before)

    resumed = subprocess.run(
        [*command[:2], "--resume", *command[2:]], cwd=alone, env=env,
        capture_output=True, text=True, timeout=SAFETY_S,
    )  # fmt: skip
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    rows = _check_accounts(search_path, tracking_uri, name, samples)
    # nothing that was recorded before the kill went missing or changed its run
    after = {row["trial_id"]: row for row in rows}
    for row in before:
        assert row["trial_id"] in after
        assert after[row["trial_id"]]["mlflow_run_id"] == row["mlflow_run_id"]
    # the Optuna study, reopened from its journal by the resumed driver: every trial once.
    # A trial Optuna proposed after Tune's last save of its state never ran: the resumed
    # searcher ends it as FAIL, saying why, and it is no trial of the search.
    study = load_study(search_path)
    lost = [t for t in study.trials if LOST_ATTR in t.user_attrs]
    assert all(t.state.name == "FAIL" for t in lost), lost
    kept = [t for t in study.trials if LOST_ATTR not in t.user_attrs]
    told = Counter(t.user_attrs["tune_trial_id"] for t in kept)
    assert told == Counter(list(after)), told
    states = {t.user_attrs["tune_trial_id"]: t.state.name for t in kept}
    assert states == {k: OPTUNA_STATE[row["status"]] for k, row in after.items()}


def _dataset_and_teacher_on_s3(root: str) -> tuple[str, str]:
    """A tiny Office-like domain (3 classes of 6 PNGs) and an augkd teacher, on S3 only."""
    import io

    import numpy as np
    import torch
    from PIL import Image

    from augkd.models import build_classifier
    from augkd.storage.files import write_bytes
    from augkd.storage.teacher_checkpoint import CHECKPOINT_FORMAT

    rng = np.random.default_rng(0)
    classes = ["bike", "cup", "pen"]
    for label, name in enumerate(classes):
        for i in range(6):
            pixels = rng.integers(0, 80, (16, 16, 3)) + 80 * label
            buffer = io.BytesIO()
            Image.fromarray(pixels.astype("uint8")).save(buffer, format="PNG")
            write_bytes(f"{root}/office/dslr/{name}/{i}.png", buffer.getvalue())
    torch.manual_seed(0)
    teacher = build_classifier("small_cnn", len(classes))
    checkpoint = {
        "format": CHECKPOINT_FORMAT, "arch": "small_cnn", "class_names": classes,
        "image_size": 16, "mean": [0.5] * 3, "std": [0.25] * 3,
        "state_dict": teacher.state_dict(),
    }  # fmt: skip
    buffer = io.BytesIO()
    torch.save(checkpoint, buffer)
    write_bytes(f"{root}/teachers/office.pt", buffer.getvalue())
    return f"{root}/office", f"{root}/teachers/office.pt"


def _s3_files(uri: str) -> dict[str, float]:
    """Every file under ``uri`` on S3 with its modification time (epoch seconds)."""
    from pyarrow import fs as pafs

    from augkd.storage.files import resolve_filesystem

    filesystem, path = resolve_filesystem(uri)
    infos = filesystem.get_file_info(pafs.FileSelector(path, recursive=True))
    return {i.path[len(path) + 1 :]: i.mtime.timestamp() for i in infos if i.is_file}


SHARED_STAGES = ("domain", "module1", "encoder", "module2", "diagnostics")
"""What the tasks before the search produce: Module 2 and its diagnostics once per point
of the space's Module-2 grid."""
SMOKE_GRID_POINTS = 2
"""--smoke-test trims the Module-2 grid to two points (augkd.search.prepare.request)."""


@pytest.mark.slow
def test_search_with_data_storage_and_teacher_only_on_s3(cluster, s3_server, tmp_path, monkeypatch):
    """Nothing on local paths but MLflow's database: the nodes read the dataset and the teacher
    from S3, the shared stages are produced there once, before the first trial, and the
    trials (zero-GPU, on nodes with a GPU) run on CPU and checkpoint at ASHA's rungs."""
    from augkd.storage.files import read_bytes

    monkeypatch.chdir(tmp_path)
    _ensure_workers(cluster)
    root = f"{s3_server.bucket('augkd-cluster')}/search"
    data_root, teacher_uri = _dataset_and_teacher_on_s3(root)
    tracking_uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    samples = 3
    outcome = run_search(
        SearchOptions(
            space="digits", storage=f"{root}/runs", name="s3", tracking_uri=tracking_uri, smoke_test=True,
            num_samples=samples, address=cluster.address,
            overrides=[
                "resources.cpu=0.5", "resources.gpu=0", f"max_concurrent={samples}",
                "data.source=folders", f"data.root={data_root}", "data.student_domain=dslr",
                "data.split=[0.5, 0.25, 0.25]", "data.min_eval_images=4",
                f"teacher.checkpoint={teacher_uri}",
                "module1.iters_per_epoch=2", "module2.epochs=1", f"module3.epochs={EPOCHS}",
                "scheduler.grace_period=2",
                "module3.batch_size=4",
            ],
        ),
        echo=lambda *a, **k: None,
    )  # fmt: skip
    assert outcome.search_path == f"{root}/runs/s3"
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "augkd_exports",
        "mlartifacts",
        "mlflow.db",
    ]
    rows = load_results(outcome.search_path)
    assert len(rows) == samples and {r["status"] for r in rows} <= ENDED
    assert any(r["status"] == "completed" and r["test_acc1"] is not None for r in rows)

    # produced exactly once each, by the tasks before the search, and only read by trials
    produced = [(stage, hit) for stage, _, hit, _ in outcome.shared.produced]
    grid_stages = ["module2", "diagnostics"] * SMOKE_GRID_POINTS
    assert [stage for stage, hit in produced if not hit] == [
        "domain",
        "module1",
        "encoder",
        *grid_stages,
    ]
    cache = _s3_files(f"{root}/runs/stage_cache")
    artifacts = {name: t for name, t in cache.items() if name.endswith(".pt") and "/." not in name}
    assert sorted(name.split("/")[0] for name in artifacts) == sorted(
        ["domain", "encoder", "module1", *grid_stages]
    )  # nothing written by a trial: every stage was produced before the first one
    assert [r["module1_cache_hit"] for r in rows] == [1.0] * samples
    assert [r["module2_cache_hit"] for r in rows] == [1.0] * samples
    client = MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name(EXPERIMENT)
    runs = client.search_runs(
        [experiment.experiment_id], filter_string=f"tags.`{SEARCH_TAG}` = 's3'"
    )
    first_trial = min(r.info.start_time for r in runs if r.data.tags[TRIAL_TAG] != "parent")
    shared = [t for name, t in artifacts.items() if name.split("/")[0] in SHARED_STAGES]
    assert max(shared) <= first_trial / 1000, "a shared stage was written after a trial started"

    # zero-GPU trials on nodes with a (logical) GPU ran on CPU; checkpoints at rungs and end
    results = [n for n in _s3_files(outcome.search_path) if n.endswith("/result.json")]
    assert len(results) == samples
    for name in results:
        reports = [
            json.loads(line)
            for line in read_bytes(f"{outcome.search_path}/{name}").decode().splitlines()
        ]
        assert {r["device"] for r in reports} == {"cpu"}
        steps = [r["step"] for r in reports]
        saved = [r["step"] for r in reports if r.get("checkpoint_dir_name")]
        assert saved == _first_reports_past_rungs(steps, grace=2, factor=2) + steps[-1:]


def _first_reports_past_rungs(steps: list[float], grace: float, factor: float) -> list[float]:
    """The reports where ASHA judges a trial: the first at or past each rung (grace, grace *
    factor, ...), the last report excluded (it is checkpointed anyway)."""
    judged, rung = [], grace
    for step in steps[:-1]:
        if step >= rung:
            judged.append(step)
            while rung <= step:
                rung *= factor
    return judged


def _on_fake_gpu_node(num_gpus: float, device: str) -> tuple[list, str]:
    """A Ray task scheduled like a trial with ``num_gpus``, on a node whose GPU is logical:
    what Ray assigned it, and the device augkd picks (as if CUDA worked there)."""
    from augkd.hardware.runtime import resolve_device

    @ray.remote(num_cpus=0.5, num_gpus=num_gpus)
    def place() -> tuple[list, str]:
        ids = ray.get_gpu_ids()
        return ids, str(resolve_device(device, ids, cuda_available=True))

    return ray.get(place.remote())


@pytest.mark.slow
def test_zero_gpu_trial_on_a_gpu_node_runs_on_cpu(cluster):
    _ensure_workers(cluster)
    ray.init(address=cluster.address, log_to_driver=False, ignore_reinit_error=True)
    assert _on_fake_gpu_node(0, "auto") == ([], "cpu")
    ids, device = _on_fake_gpu_node(0.5, "auto")
    assert len(ids) == 1 and device == "cuda:0"  # the GPU Ray assigned, as torch numbers it
    assert _on_fake_gpu_node(0.5, "cuda")[1] == "cuda:0"
    with pytest.raises(ConfigError, match="Ray gave this trial no GPU"):
        _on_fake_gpu_node(0, "cuda")
    with pytest.raises(ConfigError, match="inside a Ray trial the GPU is the one Ray assigned"):
        _on_fake_gpu_node(0.5, "cuda:1")


def test_progress_view_pickles_after_ray_patches_print(monkeypatch):
    import builtins

    from ray import cloudpickle
    from ray.experimental.tqdm_ray import safe_print

    from augkd.search.run.progress import ProgressView

    monkeypatch.setattr(builtins, "print", safe_print)  # what tqdm_ray.instance() does
    view = ProgressView(["module3.a"], "best_val_acc1")
    assert cloudpickle.loads(cloudpickle.dumps(view)).metric == "best_val_acc1"

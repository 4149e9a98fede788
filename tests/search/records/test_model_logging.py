"""MLflow as its users expect: full configs on every child run, the best student as a
loadable pytorch model that takes raw images, the registry, and source tags."""

from __future__ import annotations

import io

import mlflow
import mlflow.models
import mlflow.pytorch
import pytest
import torch
import yaml
from mlflow.tracking import MlflowClient

from augkd.basics.config import config_from_dict, config_keys
from augkd.cli import main as cli_main
from augkd.data import as_unit_float, load_student_splits
from augkd.models import build_student
from augkd.search.records.source_tags import COMMIT_ENV, source_tags
from augkd.search.records.tracking import SEARCH_TAG
from augkd.trial.teacher import load_teacher


@pytest.fixture(scope="module")
def runs(tiny_search):
    client = MlflowClient(tiny_search["uri"])
    experiment = client.get_experiment_by_name("augkd-digits")
    found = client.search_runs([experiment.experiment_id])
    name = tiny_search["path"].rsplit("/", 1)[-1]
    return {r.data.tags["augkd.trial_id"]: r for r in found if r.data.tags[SEARCH_TAG] == name}


def test_every_child_run_holds_the_full_config(tiny_search, runs):
    for row in tiny_search["rows"]:
        params = runs[row["trial_id"]].data.params
        assert set(config_keys()) <= set(params), set(config_keys()) - set(params)
        assert params["threads"] == "1" and params["device"] == "cpu"
        assert float(params["module2.anchor_weight"]) == row["param:module2.anchor_weight"]


def test_runs_carry_mlflows_source_commit_tag(runs, monkeypatch):
    assert all(len(r.data.tags["mlflow.source.git.commit"]) == 40 for r in runs.values())
    monkeypatch.setenv(COMMIT_ENV, "abc123")  # what a launcher without .git sets
    assert source_tags()["mlflow.source.git.commit"] == "abc123"


def test_the_logged_model_classifies_raw_images_as_the_trial_did(tiny_search, runs):
    row = max(
        (r for r in tiny_search["rows"] if r["status"] == "completed"),
        key=lambda r: r["best_val_acc1"],
    )
    mlflow.set_tracking_uri(tiny_search["uri"])  # a models:/ URI is read from this store
    model = mlflow.pytorch.load_model(row["model_uri"], map_location="cpu")
    config = config_from_dict(yaml.safe_load(row["config_yaml"]))
    splits = load_student_splits(config.data, config.seed, torch.device("cpu"))
    raw = as_unit_float(splits.val_x)
    assert raw.min() >= 0 and raw.max() <= 1
    with torch.no_grad():
        predicted = model(raw).argmax(1)

    # the trial's own student: its weights artifact behind the teacher's normalisation
    client = MlflowClient(tiny_search["uri"])
    folder = client.download_artifacts(row["mlflow_run_id"], "weights")
    weights = torch.load(f"{folder}/best_student.pt", weights_only=True)
    student = build_student(config.student, len(splits.class_names), pretrained=False).eval()
    student.load_state_dict(weights)
    teacher = load_teacher(config, torch.device("cpu"))
    with torch.no_grad():
        expected = student(teacher.normalize(raw)).argmax(1)
    assert torch.equal(predicted, expected)
    accuracy = 100.0 * (predicted == splits.val_y).float().mean().item()
    assert accuracy == pytest.approx(row["best_val_acc1"])
    info = mlflow.models.get_model_info(row["model_uri"])
    assert info.metadata["class_names"] == splits.class_names
    assert tuple(info.signature.inputs.to_dict()[0]["tensor-spec"]["shape"]) == (-1, 3, 16, 16)


def test_export_registers_the_winner(tiny_search, runs, tmp_path, capsys):
    args = ["export", "--search", tiny_search["path"], "--out", str(tmp_path)]
    args += ["--register", "digits-student", "--tracking-uri", tiny_search["uri"]]
    assert cli_main(args) == 0
    assert "registered digits-student version 1" in capsys.readouterr().out
    client = MlflowClient(tiny_search["uri"])
    version = client.get_model_version("digits-student", "1")
    best = max(
        (r for r in tiny_search["rows"] if r["status"] == "completed"),
        key=lambda r: r["best_val_acc1"],
    )
    assert version.run_id == best["mlflow_run_id"]
    mlflow.set_tracking_uri(tiny_search["uri"])
    loaded = mlflow.pytorch.load_model("models:/digits-student/1", map_location="cpu")
    buffer = io.BytesIO()
    torch.save(loaded.state_dict(), buffer)
    assert buffer.tell() > 0

"""The best student of a trial as an MLflow model (mlflow.pytorch), and registering a
search's winner in the model registry."""

from __future__ import annotations

import io
import logging
import warnings
from pathlib import Path

import torch

log = logging.getLogger(__name__)

MODEL_NAME = "model"


def deployable_student(config_yaml: str, weights: dict, meta: dict):
    """The RawImageClassifier of a trial's best student, on the CPU, in eval mode."""
    import yaml

    from augkd.basics.config import config_from_dict
    from augkd.models import build_student
    from augkd.models.deployable import RawImageClassifier

    config = config_from_dict(yaml.safe_load(config_yaml))
    student = build_student(config.student, len(meta["class_names"]), pretrained=False)
    student.load_state_dict(weights)
    model = RawImageClassifier(student, meta["mean"], meta["std"], meta["class_names"])
    return model.eval()


def log_student_model(tracking_uri: str, run_id: str, folder: Path) -> str | None:
    """Log the checkpoint folder's best student as an MLflow pytorch model of ``run_id``;
    returns its model URI (None when the folder lacks the files)."""
    import mlflow
    from mlflow.models import infer_signature

    from augkd.search.run.trainable import BEST_STUDENT_FILE, CONFIG_FILE, STUDENT_META_FILE

    paths = [folder / name for name in (BEST_STUDENT_FILE, STUDENT_META_FILE, CONFIG_FILE)]
    if not all(path.exists() for path in paths):
        return None
    weights, meta = (
        torch.load(io.BytesIO(p.read_bytes()), map_location="cpu", weights_only=True)
        for p in paths[:2]
    )
    model = deployable_student(paths[2].read_text(), weights, meta)
    example = meta["example"].numpy()
    with torch.no_grad():
        signature = infer_signature(example, model(meta["example"]).numpy())
    mlflow.set_tracking_uri(tracking_uri)
    with warnings.catch_warnings(), mlflow.start_run(run_id=run_id):
        warnings.simplefilter("ignore")
        info = mlflow.pytorch.log_model(
            model,
            name=MODEL_NAME,
            signature=signature,
            input_example=example,
            pip_requirements=[f"torch=={torch.__version__.split('+')[0]}", "augkd"],
            metadata={"class_names": meta["class_names"], "input": "raw [0, 1] RGB images"},
        )
    return info.model_uri


def register_model(tracking_uri: str, model_uri: str, name: str) -> str:
    """Register ``model_uri`` under ``name``; returns 'name version N'."""
    import mlflow

    mlflow.set_tracking_uri(tracking_uri)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        version = mlflow.register_model(model_uri, name)
    return f"{name} version {version.version}"

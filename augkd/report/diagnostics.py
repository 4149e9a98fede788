"""Diagnostics of Modules 1-2 of the best trials: their ``diag_*`` metrics from the
results table, and the best one's pictures from MLflow (artifacts under diagnostics/)."""

from __future__ import annotations

import io
import tempfile
import warnings
from pathlib import Path
from typing import Any

import matplotlib.image
import pandas as pd
from matplotlib.figure import Figure

from augkd.report.loading import TOP_K, SearchData, error_line, finished, missing_store, num
from augkd.report.section import Section

PREFIX = "diag_"
ARTIFACTS = "diagnostics"
"""Artifact folder of a trial's child run (augkd.search.run.trainable.DIAGNOSTICS_DIR)."""


def _diagnosed(row: dict[str, Any]) -> bool:
    return any(k.startswith(PREFIX) and num(v) is not None for k, v in row.items())


def diagnostics_table(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """One row per diagnostic (its name without the prefix), one column per trial."""
    names = sorted({k for row in rows for k in row if k.startswith(PREFIX)})
    return pd.DataFrame(
        {
            "diagnostic": [name.removeprefix(PREFIX) for name in names],
            **{str(row.get("trial_id")): [num(row.get(name)) for name in names] for row in rows},
        }
    )


def trial_pictures(tracking_uri: str, run_id: str) -> dict[str, bytes]:
    """The PNGs a trial's child run holds under diagnostics/ (empty when none)."""
    import mlflow.artifacts

    with tempfile.TemporaryDirectory() as folder, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        local = mlflow.artifacts.download_artifacts(
            run_id=run_id, artifact_path=ARTIFACTS, dst_path=folder, tracking_uri=tracking_uri
        )
        return {path.name: path.read_bytes() for path in sorted(Path(local).glob("*.png"))}


def _stacked(pictures: dict[str, bytes]) -> Figure:
    images = [matplotlib.image.imread(io.BytesIO(png), format="png") for png in pictures.values()]
    width = max(image.shape[1] for image in images) / 90
    heights = [image.shape[0] / 90 for image in images]
    figure = Figure(figsize=(width, sum(heights)))
    axes = figure.subplots(len(images), 1, squeeze=False, height_ratios=heights)
    for ax, image in zip(axes[:, 0], images, strict=True):
        ax.imshow(image)
        ax.axis("off")
    figure.subplots_adjust(left=0, right=1, top=1, bottom=0, hspace=0.02)
    return figure


def plot_diagnostics(data: SearchData, top_k: int = TOP_K) -> Section:
    """Teacher metrics on x, G(z), G(E(x)), anchors and x_mix for the top trials, and
    the best diagnosed trial's pictures (G samples per class; rows through each module)."""
    key = "diagnostics"
    title = "Modules 1-2 diagnostics of the best trials (the teacher on x, G(z), G(E(x)), G(z_a), x_mix)"
    rows = [row for row in finished(data) if _diagnosed(row)][:top_k]
    if not rows:
        return Section(
            key,
            title,
            note="No trial logged diagnostics: they need a method that runs Module 1 and "
            "diagnostics.enabled=true.",
        )
    table = diagnostics_table(rows)
    best = rows[0]
    run_id = best.get("mlflow_run_id")
    note = f"Pictures of trial {best.get('trial_id')}, the best diagnosed trial by val."
    pictures: dict[str, bytes] = {}
    if run_id and missing_store(data.tracking_uri):
        note = f"The tracking store {data.tracking_uri} does not exist, so no pictures are shown."
    elif run_id:
        try:
            pictures = trial_pictures(data.tracking_uri, str(run_id))
        except Exception as error:
            note = (
                f"The pictures of trial {best.get('trial_id')} cannot be read from "
                f"{data.tracking_uri} ({type(error).__name__}: {error_line(error)})."
            )
    if not pictures and run_id and note.startswith("Pictures"):
        note = f"Trial {best.get('trial_id')} logged no pictures to MLflow."
    figure = _stacked(pictures) if pictures else None
    return Section(key, title, figure=figure, table=table, note=note)

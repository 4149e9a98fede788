"""The last step of a finished search: the best configs exported where `augkd train
--config` re-runs them, and the commands that open its results."""

from __future__ import annotations

import os
import shlex
from collections.abc import Callable
from pathlib import Path

from augkd.basics.errors import ConfigError
from augkd.search.records.results import export_best
from augkd.search.run.study import open_commands
from augkd.storage.files import join_uri
from augkd.storage.locations import RESULTS_FILE, local_folder

Echo = Callable[[str], None]


def export_best_configs(search_path: str, top_k: int, echo: Echo) -> list[Path]:
    """The top-k completed trials as configs beside the search (none when no trial
    completed: said, not raised, since the search itself did what was asked)."""
    try:
        exported = export_best(
            search_path, top_k, os.path.join(local_folder(search_path), "best_configs")
        )
    except ConfigError as error:
        echo(f"\n[search] nothing exported: {error}")
        return []
    rerun = shlex.join(["augkd", "train", "--config", str(exported[0])])
    echo(f"\n[search] best config: {exported[0]}  (re-run: {rerun})")
    return exported


def print_next_commands(search_path: str, tracking_uri: str, echo: Echo) -> None:
    """Where the results are, and the commands that open MLflow and the Optuna study."""
    echo(f"[search] results table: {join_uri(search_path, RESULTS_FILE)}")
    echo(f"[search] open MLflow: {mlflow_ui_command(tracking_uri)}")
    dashboard, load = open_commands(search_path)
    echo(f"[search] open the Optuna study: {dashboard}")
    echo(f"[search]   or in Python: {load}")


def mlflow_ui_command(tracking_uri: str) -> str:
    """The command that opens MLflow on the store, quoted for a shell (a path may hold a
    space)."""
    return shlex.join(["mlflow", "ui", "--backend-store-uri", tracking_uri])

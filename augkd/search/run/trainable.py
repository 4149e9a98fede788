"""The Ray Tune function that runs one trial through the search's one trial entry
(trial_entry.py): resume from Tune's checkpoint, report every Module-3 val pass (with a
checkpoint when the cadence says so), and end deterministic failures cleanly."""

from __future__ import annotations

import logging
import tempfile
from functools import partial
from pathlib import Path
from typing import Any

import ray
import torch
from ray import tune

from augkd.basics.config import Config, config_from_dict, with_overrides
from augkd.basics.errors import AugkdError
from augkd.basics.metric_names import EPOCH, EPOCHS, STEP
from augkd.search.run.checkpointing import CheckpointCadence
from augkd.search.run.trial_entry import run_search_trial, trial_stage_sizes

log = logging.getLogger("augkd.trial")

STATE_FILE = "trial_state.pt"
STUDENT_META_FILE = "student_meta.pt"
BEST_STUDENT_FILE = "best_student.pt"
CONFIG_FILE = "config.yaml"
DIAGNOSTICS_DIR = "diagnostics"
"""Checkpoint subfolder holding the diagnostics' PNGs (the recorder logs them to MLflow)."""


def run_tune_trial(
    params: dict[str, Any],
    base_config: dict[str, Any],
    cache_root: str,
    gpu_share: float = 0.0,
    checkpoint_steps: tuple[float, ...] = (),
    checkpoint_minutes: float = 0.0,
    seeds: int = 1,
) -> None:
    """Tune entry point; ``params`` maps dotted config keys to sampled values; ``seeds``:
    how many seeds (from the config's) the trial runs in lockstep (objective.seeds)."""
    reporting = partial(_tune_reporting, tuple(checkpoint_steps), checkpoint_minutes)
    end = run_search_trial(
        base_config, params, cache_root, gpu_share, seeds, log=log.info, hooks=reporting
    )
    if end.error is not None:
        # Bad input or divergence would fail again on every retry: end the trial here,
        # recorded as failed, and let the search go on.
        if end.ran:
            log.error("trial failed: %s", end.error)
        tune.report({"failed": 1.0, "error": end.error})


def _tune_reporting(
    checkpoint_steps: tuple[float, ...],
    checkpoint_minutes: float,
    config: Config,
    device: torch.device,
) -> dict[str, Any]:
    """run_trial's hooks under Tune: resume from Tune's checkpoint, report every Module-3
    val pass (with a checkpoint when the cadence says so), keep the diagnostics' pictures."""
    resume_state = None
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as folder:
            resume_state = torch.load(
                Path(folder) / STATE_FILE, map_location="cpu", weights_only=True
            )

    # Which Ray node ran each epoch (a string: Tune keeps it, MLflow logs only numbers);
    # it tells the nodes apart where hostname and node_ip are equal (one host).
    # (Asked only inside Ray: get_runtime_context() would start a local Ray otherwise.)
    node = {"node_id": ray.get_runtime_context().get_node_id()} if ray.is_initialized() else {}
    node["device"] = str(device)
    cadence = CheckpointCadence(list(checkpoint_steps), checkpoint_minutes)

    pictures: dict[str, bytes] = {}
    run_settings = {"threads": config.threads, "device": config.device}  # logged as params

    def on_epoch(metrics: dict[str, float], make_state) -> None:
        metrics = {**metrics, **node, **run_settings}
        if not cadence.due(metrics[STEP], metrics[EPOCH] == metrics[EPOCHS]):
            tune.report(metrics)
            return
        with tempfile.TemporaryDirectory() as folder:
            state = make_state()
            torch.save(state, Path(folder) / STATE_FILE)
            if pictures:  # in every checkpoint, so a pruned trial's last one has them too
                (Path(folder) / DIAGNOSTICS_DIR).mkdir()
                for name, png in pictures.items():
                    (Path(folder) / DIAGNOSTICS_DIR / name).write_bytes(png)
            if metrics[EPOCH] == metrics[EPOCHS]:
                torch.save(state["best_student"], Path(folder) / BEST_STUDENT_FILE)
                torch.save(state["student_meta"], Path(folder) / STUDENT_META_FILE)
                (Path(folder) / CONFIG_FILE).write_text(config.to_yaml())
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(folder))

    return {
        "on_epoch": on_epoch,
        "resume_state": resume_state,
        "on_diagnostics": lambda found: pictures.update(found.pictures),
    }


OOM_SIGNS = ("OutOfMemoryError", "running low on memory", "killed by SIGKILL by OOM killer")
"""How a trial's error says that Ray's OOM killer (or the kernel's) ended its worker."""


def memory_kill_sentence(
    error: str, base_config: dict[str, Any], params: dict[str, Any]
) -> str | None:
    """One sentence for a trial whose worker was killed for memory (Tune's traceback
    otherwise), naming the stages and the keys that set their size; None for another error."""
    from augkd.method.memory import KILLED_FOR_MEMORY

    if not any(sign in error for sign in OOM_SIGNS):
        return None
    try:
        config = with_overrides(config_from_dict(base_config), params)
    except AugkdError:
        return None
    return (
        f"Ray killed the trial's worker {KILLED_FOR_MEMORY} ({trial_stage_sizes(config)}); "
        "lower that batch size or max_concurrent (fewer trials at once), then resume the search"
    )

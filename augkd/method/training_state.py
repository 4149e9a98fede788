"""The state a stage carries between epochs, saved and restored one way for Modules 1-3.

A stage that resumes (from the stage cache's progress, or from a Tune checkpoint) must go on
exactly as if never stopped: the same networks, optimiser moments, schedules, loss scaler and
random streams, CUDA's included. Every stage builds one ``TrainingState`` over what it owns
and lets it take and give back the snapshot, so no stage can forget one of them.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any, Protocol

import torch


class Stateful(Protocol):
    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> Any: ...


def cpu_copy(value: Any) -> Any:
    """A detached copy on the CPU of a tensor, or of the tensors inside dicts and lists."""
    if isinstance(value, torch.Tensor):
        return value.detach().to("cpu", copy=True)
    if isinstance(value, dict):
        return {key: cpu_copy(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(cpu_copy(item) for item in value)
    return copy.deepcopy(value)


class TrainingState:
    """Snapshots of ``stateful`` objects (networks, optimisers, schedulers, a grad scaler:
    anything with state_dict/load_state_dict), named random generators, and the global torch
    random streams (CPU, and CUDA's on ``device`` when it is a GPU)."""

    def __init__(
        self,
        stateful: Mapping[str, Stateful],
        generators: Mapping[str, torch.Generator] | None = None,
        device: torch.device | None = None,
    ) -> None:
        self.stateful = dict(stateful)
        self.generators = dict(generators or {})
        self.device = device or torch.device("cpu")

    def capture(self, **extra: Any) -> dict[str, Any]:
        """Everything to go on from here, on the CPU; ``extra`` rides along (epoch, best ...)."""
        cuda = self.device.type == "cuda"
        return {
            "stateful": {name: cpu_copy(obj.state_dict()) for name, obj in self.stateful.items()},
            "generators": {name: rng.get_state() for name, rng in self.generators.items()},
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state(self.device) if cuda else None,
            **{name: cpu_copy(value) for name, value in extra.items()},
        }

    def restore(self, state: Mapping[str, Any]) -> None:
        """Load a snapshot ``capture`` made; the caller reads its own ``extra`` entries."""
        for name, obj in self.stateful.items():
            obj.load_state_dict(state["stateful"][name])
        for name, rng in self.generators.items():
            rng.set_state(state["generators"][name])
        torch.set_rng_state(state["torch_rng"])
        if self.device.type == "cuda" and state.get("cuda_rng") is not None:
            torch.cuda.set_rng_state(state["cuda_rng"], self.device)

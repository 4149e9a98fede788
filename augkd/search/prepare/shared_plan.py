"""Which stages every trial of a search shares, decided from the space alone: Module 1 per
seed unless a key it depends on is searched, the adapted encoder likewise, and Module 2 too
when none of its own keys is searched, or when its searched keys are all categorical (then
every point of that small grid is produced once, before the trials, instead of an AnchorNet
per trial before its first report, where ASHA cannot stop it)."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

from augkd.basics.seeds import trial_seeds
from augkd.method.plans import METHOD_PLANS
from augkd.search.prepare.space import SearchSpace

MODULE1_INPUTS = ("seed", "precision", "data.", "teacher.", "student.", "module1.")
"""Config keys a Module-1 artifact depends on (with the teacher, which data and teacher.* set)."""


ENCODER_INPUTS = (*MODULE1_INPUTS, "encoder_adapt.")


MODULE2_INPUTS = (*ENCODER_INPUTS, "module2.")


MAX_SEEDS = 16


MAX_SHARED_ANCHOR_NETS = 64
"""At most this many Module-2 artifacts (grid points x seeds) are produced before a search."""


@dataclass
class SharedStages:
    seeds: list[int]
    module1: bool
    module2: bool
    encoder: bool = False
    """The adapted encoder (encoder_adapt.epochs > 0 and none of its keys searched)."""
    module2_grid: list[dict[str, Any]] = field(default_factory=lambda: [{}])
    """The Module-2 settings produced per seed when ``module2``: ``[{}]`` is the base's alone."""
    notes: list[str] = field(default_factory=list)
    """What the plan could not share, and how to make it shareable (printed by the search)."""
    preflight: dict[str, Any] = field(default_factory=dict)
    produced: list[tuple[str, str, bool, float]] = field(default_factory=list)
    """(stage, key, was a cache hit, seconds) of every artifact the tasks touched."""
    downloads: list[tuple[str, str]] = field(default_factory=list)
    """(stage, key) of what the tasks fetched from object storage into a node's copies."""
    seconds: float = 0.0
    peak_memory: dict[str, dict[str, float]] = field(default_factory=dict)
    """Task name -> its peak memory in MiB (augkd.method.memory: process RSS, and CUDA's peaks)."""


def _depends_on(key: str, inputs: tuple[str, ...]) -> bool:
    return any(key == name or (name.endswith(".") and key.startswith(name)) for name in inputs)


def plan_shared_stages(space: SearchSpace) -> SharedStages:
    """Which stages every trial shares: Module 1 per seed unless a key it depends on is
    searched, and Module 2 too when none of its own keys is."""
    base = space.base_config_object()
    methods = [base.method]
    if "method" in space.params:
        methods = list(space.params["method"].choices or [])
    seeds = [base.seed]
    seed_param = space.params.get("seed")
    if seed_param is not None:
        if seed_param.type == "categorical":
            seeds = [int(s) for s in seed_param.choices or []]
        elif seed_param.high is not None and seed_param.low is not None:
            seeds = list(range(int(seed_param.low), int(seed_param.high) + 1))
    # Each trial also runs the next objective.seeds - 1 seeds: their stages are shared too.
    seeds = sorted({s for seed in seeds for s in trial_seeds(seed, space.objective.seeds)})
    searched = [key for key in space.params if key != "seed"]
    module1 = (
        any(METHOD_PLANS[m].module1 for m in methods)
        and not any(_depends_on(key, MODULE1_INPUTS) for key in searched)
        and len(seeds) <= MAX_SEEDS
    )
    upstream_of_module2 = [k for k in searched if _depends_on(k, ENCODER_INPUTS)]
    anchors = module1 and any(METHOD_PLANS[m].module2 for m in methods) and not upstream_of_module2
    grid, notes = _module2_grid(space, [k for k in searched if k.startswith("module2.")])
    module2 = anchors and grid is not None and len(grid) * len(seeds) <= MAX_SHARED_ANCHOR_NETS
    if anchors and grid is not None and not module2:
        notes.append(
            f"the Module-2 grid has {len(grid)} points x {len(seeds)} seeds, more than "
            f"{MAX_SHARED_ANCHOR_NETS} AnchorNets to train before the search: each trial trains "
            "its own before its first report; use fewer categorical choices to share them"
        )
    encoder = (
        module1
        and base.encoder_adapt.epochs > 0
        and not any(_depends_on(key, ENCODER_INPUTS) for key in searched)
    )
    return SharedStages(seeds, module1, module2, encoder, grid if module2 else [{}], notes)


def _module2_grid(
    space: SearchSpace, keys: list[str]
) -> tuple[list[dict[str, Any]] | None, list[str]]:
    """Every combination of the searched Module-2 keys, when all are unconditional
    categoricals (a grid the stage cache can hold); None, with a note, otherwise."""
    if not keys:
        return [{}], []
    continuous = [k for k in keys if space.params[k].type != "categorical" or space.params[k].when]
    if continuous:
        return None, [
            f"{', '.join(continuous)} {'is' if len(continuous) == 1 else 'are'} searched on a "
            "continuous (or conditional) scale, so each trial trains its own AnchorNet before "
            "its first report, where ASHA cannot stop it; search Module 2 on a small "
            "categorical grid to train each AnchorNet once, before the trials"
        ]
    choices = [space.params[k].choices or [] for k in keys]
    return [dict(zip(keys, values, strict=True)) for values in itertools.product(*choices)], []

"""``--tune-baselines``: each baseline gets a search of its own before the race, at the same
compute as the search being evaluated (its sampler, scheduler, ``num_samples``, budget and
seed) over the keys of that space which the baseline's method reads. Its best config joins
the race as a third recipe (``ce@tuned``) beside the baseline's own defaults and the
winner's recipe; after the first round each baseline keeps the recipe with the better val.

Without it a baseline runs at recipes tuned for nothing (its defaults) or for AuG-KD (the
winner's), so the race compares a tuned method against untuned ones.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from augkd.basics.config import Config
from augkd.basics.errors import ConfigError
from augkd.method.plans import METHOD_PLANS, MethodPlan

TUNED = "tuned"
"""The label suffix and recipe name of a baseline's own search's best config."""


def reads(plan: MethodPlan, key: str) -> bool:
    """Whether a method with ``plan`` reads config ``key`` (a dotted search key)."""
    section, _, name = key.partition(".")
    if section == "module1":
        return plan.module1
    if section == "module2":
        return plan.module2
    if section == "encoder_adapt":
        return plan.module2 or plan.batches == "mixup"
    if section == "module3" and name in ("teacher_term", "teacher_fade"):
        return plan.teacher_term is None
    if section == "module3" and name in ("a", "b", "schedule"):
        return plan.batches == "mixup" and plan.schedule is None
    if section == "module3" and name in ("ce_share", "kd_temperature"):
        return plan.teacher_term != "none"  # under `none` every sample's u is 1
    return True


def baseline_space(recorded: dict[str, Any], method: str) -> dict[str, Any] | None:
    """The evaluated search's space, for ``method``: its base config with the method
    changed, and only the searched keys the method reads (None: it reads none of them)."""
    plan = METHOD_PLANS[method]
    params = {key: spec for key, spec in recorded["params"].items() if reads(plan, key)}
    if not params:
        return None
    for spec in params.values():  # a condition on a key the method does not read is moot
        if spec.get("when") and not all(reads(plan, k) for k in spec["when"]):
            spec["when"] = None
    base = {**recorded["base_resolved"], "method": method}
    space = {k: v for k, v in recorded.items() if k not in ("base_resolved", "tracking_uri")}
    return {**space, "name": f"{recorded['name']}-{method}", "base": base,
            "base_config": None, "params": params}  # fmt: skip


def tune_baselines(
    search_path: str,
    methods: list[str],
    tracking_uri: str | None,
    echo: Callable[[str], None] = print,
) -> dict[str, Config]:
    """Run each baseline's search next to the evaluated one (same storage; named
    ``<search>-tuned-<method>``); returns each method's best config by the same objective."""
    from augkd.search.answer.candidates import search_record
    from augkd.search.records.results import load_results
    from augkd.search.run.runner import SearchOptions, run_search
    from augkd.storage.files import join_uri, uri_is_file
    from augkd.storage.locations import SPACE_FILE, TUNED_BASELINE

    recorded = search_record(search_path)
    storage, name = search_path.rstrip("/").rsplit("/", 1)
    tuned = {}
    with tempfile.TemporaryDirectory(prefix="augkd-tune-") as folder:
        for method in methods:
            space = baseline_space(recorded, method)
            if space is None:
                echo(f"[evaluate] {method} reads none of the searched keys "
                     f"({', '.join(recorded['params'])}): nothing to tune")  # fmt: skip
                continue
            path = Path(folder) / f"{method}.yaml"
            path.write_text(yaml.safe_dump(space, sort_keys=False))
            own = join_uri(storage, f"{name}{TUNED_BASELINE}{method}")
            if uri_is_file(join_uri(own, SPACE_FILE)) and load_results(own):
                # the same command again (after a stop, or to add seeds): not searched twice
                echo(f"[evaluate] {method}'s search ran before ({own}): its best is read, "
                     "not searched again; delete that folder to search it anew")  # fmt: skip
                tuned[method] = _best_config(own)
                continue
            echo(
                f"[evaluate] tuning {method}: {space['num_samples']} trials over "
                f"{', '.join(space['params'])}"
            )
            options = SearchOptions(
                space=str(path), storage=storage, name=f"{name}{TUNED_BASELINE}{method}",
                tracking_uri=tracking_uri,
            )  # fmt: skip
            outcome = run_search(options, echo=lambda line: echo(f"  {line}"))
            tuned[method] = _best_config(outcome.search_path)
    return tuned


def _best_config(search_path: str) -> Config:
    """The best trial's config of a finished search (the objective at its highest common
    step), as the evaluation ranks the searched configs."""
    from augkd.search.answer.candidates import ranked_configs

    ranked = ranked_configs(search_path, 1)
    if not ranked:
        raise ConfigError(
            f"--tune-baselines: the search '{search_path}' has no trial that reported a val "
            "pass; run it longer."
        )
    return ranked[0][0]

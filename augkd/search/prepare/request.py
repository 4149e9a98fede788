"""The first step of a search: what it was asked to do, the space it runs (validated with
every override), and where it writes (checked), all before Ray starts, so that bad input
costs seconds and leaves no half-made search behind."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from augkd.basics.config import parse_override
from augkd.basics.dotted import flatten_dotted, get_dotted, set_dotted
from augkd.basics.errors import ConfigError
from augkd.search.prepare.before_ray import (
    check_before_ray,
    check_fixed_keys_on_resume,
    check_memory_before_ray,
    check_resumable,
)
from augkd.search.prepare.space import SearchSpace
from augkd.search.prepare.space_file import load_space, read_space_file, resolve_space_path
from augkd.storage.files import join_uri
from augkd.storage.locations import (
    default_storage,
    latest_search,
    resolve_tracking_uri,
    storage_root,
)

SMOKE_TEST = {
    "num_samples": 4,
    "max_concurrent": 2,
    "base": {
        "teacher": {"epochs": 15},
        "module1": {"epochs": 1, "iters_per_epoch": 6, "student_steps": 2},
        "encoder_adapt": {"epochs": 1},
        "module2": {"epochs": 2},
        "module3": {"epochs": None, "steps": 8, "val_every": 2},
    },
    "scheduler": {"grace_period": 2, "reduction_factor": 2},
}
SPACE_KEYS = set(SearchSpace.model_fields)


@dataclass
class SearchOptions:
    space: str = "fonts"
    storage: str | None = None
    """None: $AUGKD_STORAGE, else augkd_runs in the working directory."""
    name: str | None = None
    tracking_uri: str | None = None
    num_samples: int | None = None
    time_budget: float | None = None
    resume: bool = False
    smoke_test: bool = False
    overrides: list[str] = field(default_factory=list)
    address: str | None = None
    """The Ray cluster to join (auto, or host:port); None: $RAY_ADDRESS, else a local Ray."""
    export_top_k: int = 1


@dataclass
class SearchPlace:
    """Where one search writes: its storage root, name, folder and tracking store."""

    storage: str
    name: str
    search_path: str
    tracking_uri: str


def _split_overrides(overrides: list[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """--set keys of the search space (sampler.name=random) vs of the trial config."""
    space_values: dict[str, Any] = {}
    config_values: dict[str, Any] = {}
    for text in overrides:
        key, value = parse_override(text)
        target = space_values if key.split(".")[0] in SPACE_KEYS else config_values
        set_dotted(target, key, value)
    return space_values, config_values


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def requested_space(options: SearchOptions, echo: Callable[[str], None] = print) -> SearchSpace:
    """Load and validate the space with every override; fails before Ray starts. A --set
    of a key the space searches fixes it (said on ``echo``): the base would lose to the
    sampled value otherwise, silently."""
    path = resolve_space_path(options.space)
    raw = read_space_file(path)
    space_values, config_values = _split_overrides(options.overrides)
    extra: dict[str, Any] = {}
    if options.smoke_test:
        extra = _merge(extra, SMOKE_TEST)
    extra = _merge(extra, space_values)
    if config_values:
        extra = _merge(extra, {"base": config_values})
    if options.num_samples is not None:
        extra["num_samples"] = options.num_samples
    merged = _merge(raw, extra)
    space = load_space(path, {k: merged[k] for k in merged}, set(space_values))
    for line in fix_searched_keys(space, flatten_dotted(config_values)):
        echo(f"[search] note: {line}")
    return _smoke_module2_grid(space) if options.smoke_test else space


def fix_searched_keys(space: SearchSpace, fixed: dict[str, Any]) -> list[str]:
    """Take the keys a --set fixed out of the searched params; what was conditional on one
    is searched when the fixed value meets its condition, else dropped. One line each."""
    lines = []
    for key in [key for key in fixed if key in space.params]:
        value = get_dotted(space.base_resolved, key)
        del space.params[key]
        lines.append(
            f"--set {key}={value!r} fixes a key the space searches; every trial uses it and "
            f"'{key}' is no longer searched."
        )
        lines += _settle_conditions(space, key, value)
    return lines


def _settle_conditions(space: SearchSpace, key: str, value: Any) -> list[str]:
    """Params conditional on a key that is now fixed at ``value``."""
    lines = []
    for other, param in list(space.params.items()):
        if param.when is None or key not in param.when:
            continue
        if param.when[key] == value:
            param.when = {k: v for k, v in param.when.items() if k != key} or None
            continue
        del space.params[other]
        because = "is no longer searched" if value is _DROPPED else f"is fixed at {value!r}"
        lines.append(
            f"'{other}' is searched only when {key} = {param.when[key]!r}, and {key} "
            f"{because}, so '{other}' is no longer searched either."
        )
        lines += _settle_conditions(space, other, _DROPPED)
    return lines


_DROPPED = object()
"""The value of a param taken out of the space: no condition on it ever holds."""


def _smoke_module2_grid(space: SearchSpace) -> SearchSpace:
    """--smoke-test trains two AnchorNets, not a whole grid: the first categorical Module-2
    param keeps its base value and one more; the others keep the base value alone."""
    trimmed = False
    for key, param in space.params.items():
        if not key.startswith("module2.") or param.type != "categorical" or param.when:
            continue
        value = get_dotted(space.base_resolved, key)
        others = [choice for choice in param.choices or [] if choice != value]
        keep = [value, *others[:1]] if not trimmed else [value]
        param.choices = keep if value in (param.choices or []) else (param.choices or [])[:2]
        trimmed = True
    return space


def place_search(options: SearchOptions, space: SearchSpace) -> SearchPlace:
    """The storage, name and tracking store of the search, each checked; --resume finds
    the search it continues."""
    tracking_uri = resolve_tracking_uri(options.tracking_uri)
    storage = storage_root(options.storage or default_storage())
    check_before_ray(space, storage, tracking_uri)
    check_memory_before_ray(space, options.address)
    name = options.name
    if options.resume and name is None:
        latest = latest_search(storage, space.name)
        name = latest.rsplit("/", 1)[-1] if latest else None
        if name is None:
            raise ConfigError(
                f"--resume found no earlier '{space.name}' search under {storage}; "
                "pass --name of the search to resume."
            )
    name = name or f"{space.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    search_path = join_uri(storage, name)
    if options.resume:
        check_resumable(search_path)
        check_fixed_keys_on_resume(space, search_path)
    return SearchPlace(storage, name, search_path, tracking_uri)

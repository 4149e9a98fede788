"""Who an evaluation re-runs: the top-k configs by the search's objective (compared at the
highest optimizer step that k trials reached: ASHA completes few, and a trial it stopped at
a rung is judged where it stood), the base config's defaults (the search's starting point),
and each baseline at its own defaults and at the search's best recipe (Module 3's lr,
weight decay and budget); and the fresh seeds (seeds the search never used) they run on.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from typing import Any, Literal

import yaml

from augkd.basics.config import Config, config_from_dict, with_overrides
from augkd.basics.dotted import flatten_dotted, get_dotted
from augkd.basics.errors import ConfigError
from augkd.basics.methods import METHODS
from augkd.basics.metric_names import BEST_EPOCH, REPORTED, TEST_ACC1, ranking_value
from augkd.basics.seed_stats import PairedDifference, paired_by_seed
from augkd.search.prepare.space import Objective, objective_of, recorded_space
from augkd.storage.locations import SPACE_FILE

BASELINES = ("ce", "kd", "dfkd")


DEFAULTS = "defaults"
"""The label of the base config's defaults, the search's starting point."""


IGNORED_WHEN_COMPARING = ("threads", "device", "teacher.cache_dir", "seed")
"""Keys a run pins for itself (augkd.trial.reproduce); two configs equal but for these run the
same method."""


SHARED_RECIPE = (
    "module3.lr",
    "module3.weight_decay",
    "module3.steps",
    "module3.epochs",
    "module3.batch_size",
)
"""What every method's Module 3 shares: a baseline also runs at the search's best values of
these, so that it is not judged at a recipe nobody tuned for it."""


OWN_DEFAULTS = "own defaults"


Kind = Literal["searched", "defaults", "baseline"]


@dataclass
class Candidate:
    """One method to evaluate: a top-k config of the search, the defaults, or a baseline."""

    label: str
    config: Config
    trial_id: str | None = None
    runs: list[dict[str, Any]] = field(default_factory=list)
    kind: Kind = "searched"
    is_defaults: bool = False
    """The base config's defaults: the defaults candidate, or a top-k trial that is them."""
    judged_at: float | None = None
    """Searched: the optimizer step at which the search ranked it among the top-k."""
    recipe: str | None = None
    """Baselines: whose Module-3 recipe it runs (its own defaults, or rankN's)."""
    dropped: str | None = None
    """Why it left the race (and in which round); None while it runs every round."""

    @property
    def is_baseline(self) -> bool:
        return self.kind == "baseline"

    @property
    def method(self) -> str:
        return self.config.method

    def values(self, metric: str) -> list[float]:
        return [r[metric] for r in sorted(self.runs, key=lambda r: r["seed"]) if metric in r]

    def by_seed(self, metric: str) -> dict[int, float]:
        return {r["seed"]: r[metric] for r in self.runs if metric in r}

    def mean(self, metric: str) -> float:
        values = self.values(metric)
        return statistics.fmean(values) if values else math.nan

    def difference_to(
        self, reference: Candidate, metric: str = TEST_ACC1
    ) -> PairedDifference | None:
        """The per-seed difference to ``reference`` (the seeds share splits: it is paired)."""
        return paired_by_seed(self.by_seed(metric), reference.by_seed(metric))

    def score(self, objective: Objective) -> float:
        """Higher is better: the mean of the objective over seeds, in its direction."""
        return ranking_value(self.mean(objective.metric), objective.mode)


def parse_baselines(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in METHODS or name == "augkd"]
    if unknown:
        raise ConfigError(
            f"--baselines names unknown methods {unknown}; choose from "
            f"{', '.join(m for m in METHODS if m != 'augkd')}."
        )
    return names


def fresh_seeds(used: set[int], count: int) -> list[int]:
    """The ``count`` smallest non-negative seeds the search did not use."""
    seeds, seed = [], 0
    while len(seeds) < count:
        if seed not in used:
            seeds.append(seed)
        seed += 1
    return seeds


def _same_method(one: Config, other: Config) -> bool:
    def comparable(config: Config) -> dict[str, Any]:
        flat = flatten_dotted(config.to_dict())
        return {k: v for k, v in flat.items() if k not in IGNORED_WHEN_COMPARING}

    return comparable(one) == comparable(other)


def search_record(search_path: str) -> dict[str, Any]:
    """The space a search recorded, with its resolved base config; a ConfigError naming
    --search when the folder holds none (it is not a search's folder)."""
    space = recorded_space(search_path)
    if space is None or not space.get("base_resolved"):
        raise ConfigError(
            f"Search '{search_path}' has no readable {SPACE_FILE} (the search writes it when "
            "it starts); pass --search a folder that `python search.py` wrote."
        )
    return space


def _trial_config(row: dict[str, Any], base: dict[str, Any]) -> Config:
    """The config a trial ran: its exported config when it completed, else the base with
    its sampled values (what a trial stopped at a rung ran, too)."""
    if row.get("config_yaml"):
        return config_from_dict(yaml.safe_load(row["config_yaml"]))
    from augkd.search.records.results import PARAM_PREFIX

    sampled = {k.removeprefix(PARAM_PREFIX): v for k, v in row.items()
               if k.startswith(PARAM_PREFIX) and v is not None}  # fmt: skip
    return with_overrides(config_from_dict(base), sampled)


def baseline_recipes(
    method: str, defaults: Config, best: Candidate, tuned: Config | None = None
) -> list[Candidate]:
    """``method`` at its own defaults, at the best config's shared recipe and, when its own
    search tuned it (``tuned``), at that search's best (one candidate per distinct config)."""
    own = with_overrides(defaults, {"method": method})
    recipe = {key: get_dotted(best.config.to_dict(), key) for key in SHARED_RECIPE}
    variants = [
        (method, own, OWN_DEFAULTS),
        (f"{method}@{best.label}", with_overrides(own, recipe), f"{best.label}'s"),
    ]
    if tuned is not None:
        variants.append((f"{method}@tuned", tuned, "its own search's best"))
    candidates: list[Candidate] = []
    for label, config, name in variants:
        same = next((c for c in candidates if _same_method(c.config, config)), None)
        if same is not None:
            same.recipe = f"{same.recipe} = {name}"
            continue
        candidates.append(Candidate(label, config, kind="baseline", recipe=name))
    return candidates


def ranked_configs(
    search_path: str, top_k: int, rows: list[dict[str, Any]] | None = None
) -> list[tuple[Config, dict[str, Any], float]]:
    """The search's top-k trials by its objective at the highest step k of them reached:
    (the config each ran, its results row, that step). ``rows``: its results, if read."""
    from augkd.search.records.results import load_results, ranked_at_common_step

    space = search_record(search_path)
    rows = load_results(search_path) if rows is None else rows
    ranked = ranked_at_common_step(rows, objective_of(space), top_k)
    return [(_trial_config(row, space["base_resolved"]), row, step) for row, step in ranked]


def plan(
    search_path: str,
    top_k: int,
    seeds: int,
    baselines: list[str],
    tuned: dict[str, Config] | None = None,
):
    """The candidates (top-k configs, the defaults once, each baseline at its recipes) and
    the first round's fresh seeds."""
    from augkd.search.records.results import load_results
    from augkd.storage.locations import stage_cache_root

    if top_k < 1 or seeds < 1:
        raise ConfigError("--top-k and --seeds must be at least 1.")
    space = search_record(search_path)
    rows = load_results(search_path)
    ranked = ranked_configs(search_path, top_k, rows)
    if not ranked:
        raise ConfigError(
            f"Search '{search_path}' has no trial that reported a val pass; let it run "
            "longer or resume it with --resume."
        )
    cache = {"teacher.cache_dir": stage_cache_root(search_path.rstrip("/").rsplit("/", 1)[0])}
    defaults = with_overrides(config_from_dict(space["base_resolved"]), cache)
    candidates = []
    for place, (config, row, step) in enumerate(ranked, start=1):
        config = with_overrides(config, cache)
        candidates.append(
            Candidate(f"rank{place}", config, row["trial_id"],
                      is_defaults=_same_method(config, defaults), judged_at=step)
        )  # fmt: skip
    if not any(c.is_defaults for c in candidates):
        candidates.append(Candidate(DEFAULTS, defaults, kind="defaults", is_defaults=True))
    for method in baselines:
        own_search = (tuned or {}).get(method)
        if own_search is not None:
            own_search = with_overrides(own_search, cache)
        candidates += baseline_recipes(method, defaults, candidates[0], own_search)
    used = {int(yaml.safe_load(r["config_yaml"]).get("seed", 0)) for r in rows
            if r.get("config_yaml")}  # fmt: skip
    used |= {c.config.seed for c in candidates}
    return candidates, fresh_seeds(used, seeds)


def top_k_shortfall(candidates: list[Candidate], top_k: int) -> str | None:
    """Why fewer searched configs than --top-k are evaluated, if so (fewer trials reported
    a val pass than asked)."""
    searched = sum(c.kind == "searched" for c in candidates)
    if searched >= top_k:
        return None
    return (
        f"top {top_k} asked, but only {searched} trial(s) of the search reported: evaluating those"
    )


def kept_metrics(objective: Objective) -> tuple[str, ...]:
    """What each run returns: the reported metrics, the best epoch, the objective and the
    run's peak memory (augkd.hardware.peaks)."""
    from augkd.hardware.peaks import PEAK_MEMORY_KEYS

    return tuple(dict.fromkeys((*REPORTED, BEST_EPOCH, objective.metric, *PEAK_MEMORY_KEYS)))

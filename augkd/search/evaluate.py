"""A search's final answer, as a paper reports it: the top-k configs by the search's
objective, the base config's defaults (the search's starting point) and the baselines,
each re-run over N fresh seeds (seeds the search never used), the same seeds for every
method so that differences are paired.

Every (config, seed) is one Ray task with the trial's resources, reading and filling
the search's stage cache. The winner is chosen by the mean of the search's objective
(val by default), never by test. Writes ``evaluation.parquet`` (one row per run) and
``baselines.json`` (what the report and the notebook draw) into the search folder, logs
one MLflow run per (config, seed) under the search's parent run, and returns a table of
mean ± std of test Acc@1/3/5 with the paired differences to the best baseline and to
the defaults.
"""

from __future__ import annotations

import io
import json
import math
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import yaml

from augkd.config import METHODS, Config, config_from_dict, with_overrides
from augkd.dotted import flatten_dotted
from augkd.errors import ConfigError
from augkd.eta import RunsProgress
from augkd.locations import BASELINES_FILE, EVALUATION_FILE, SPACE_FILE
from augkd.metric_names import (
    BEST_EPOCH,
    BEST_VAL_ACC1,
    REPORTED,
    TEST_ACC1,
    TEST_ACC3,
    TEST_ACC5,
    label,
    ranking_value,
)
from augkd.search.space import Objective, objective_of, recorded_space
from augkd.seed_stats import PairedDifference, format_mean_std, paired_by_seed
from augkd.storage import join_uri, write_bytes

EVALUATION_TAG = "augkd.evaluation"
BASELINES = ("ce", "kd", "dfkd")
DEFAULTS = "defaults"
"""The label of the base config's defaults, the search's starting point."""
WINNER_KEY = "augkd"
"""The winner's key in baselines.json (the report draws it as AuG-KD)."""
IGNORED_WHEN_COMPARING = ("threads", "device", "teacher.cache_dir", "seed")
"""Keys a run pins for itself (augkd.reproduce); two configs equal but for these run the
same method."""

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

    @property
    def is_baseline(self) -> bool:
        return self.kind == "baseline"

    def values(self, metric: str) -> list[float]:
        return [r[metric] for r in sorted(self.runs, key=lambda r: r["seed"]) if metric in r]

    def by_seed(self, metric: str) -> dict[int, float]:
        return {r["seed"]: r[metric] for r in self.runs if metric in r}

    def mean(self, metric: str) -> float:
        values = self.values(metric)
        return statistics.fmean(values) if values else math.nan

    def score(self, objective: Objective) -> float:
        """Higher is better: the mean of the objective over seeds, in its direction."""
        return ranking_value(self.mean(objective.metric), objective.mode)


@dataclass
class Evaluation:
    search_path: str
    seeds: list[int]
    candidates: list[Candidate]
    winner: Candidate | None
    best_baseline: Candidate | None
    objective: Objective = field(default_factory=Objective)

    @property
    def defaults(self) -> Candidate | None:
        return next((c for c in self.candidates if c.is_defaults), None)

    def table(self) -> str:
        return format_table(self)


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


def _recorded_space(search_path: str) -> dict[str, Any]:
    space = recorded_space(search_path)
    if space is None or not space.get("base_resolved"):
        raise ConfigError(
            f"Search '{search_path}' has no readable {SPACE_FILE} (the search writes it when "
            "it starts); pass --search a folder that `python search.py` wrote."
        )
    return space


def plan(search_path: str, top_k: int, seeds: int, baselines: list[str]):
    """The candidates (top-k configs, the defaults once, the baselines) and the fresh seeds."""
    from augkd.locations import stage_cache_root
    from augkd.search.results import load_results, ranked_completed

    if top_k < 1 or seeds < 1:
        raise ConfigError("--top-k and --seeds must be at least 1.")
    space = _recorded_space(search_path)
    ranked = ranked_completed(search_path)[:top_k]
    cache = {"teacher.cache_dir": stage_cache_root(search_path.rstrip("/").rsplit("/", 1)[0])}
    defaults = with_overrides(config_from_dict(space["base_resolved"]), cache)
    candidates = []
    for place, row in enumerate(ranked, start=1):
        config = with_overrides(config_from_dict(yaml.safe_load(row["config_yaml"])), cache)
        is_defaults = _same_method(config, defaults)
        candidates.append(
            Candidate(f"rank{place}", config, row["trial_id"], is_defaults=is_defaults)
        )
    if not any(c.is_defaults for c in candidates):
        candidates.append(Candidate(DEFAULTS, defaults, kind="defaults", is_defaults=True))
    for method in baselines:
        config = with_overrides(candidates[0].config, {"method": method})
        candidates.append(Candidate(method, config, kind="baseline"))
    used = set()
    for row in load_results(search_path):
        if row.get("config_yaml"):
            used.add(int(yaml.safe_load(row["config_yaml"]).get("seed", 0)))
    used |= {c.config.seed for c in candidates}
    return candidates, fresh_seeds(used, seeds)


def _resources(search_path: str) -> dict[str, float]:
    resources = (recorded_space(search_path) or {}).get("resources") or {}
    return {"cpu": float(resources.get("cpu", 1.0)), "gpu": float(resources.get("gpu", 0.0))}


def _run_one(config_dict: dict[str, Any], kept: tuple[str, ...]) -> dict[str, Any]:
    """A Ray task: one full run; bad input comes back as an error, not an exception."""
    import ray

    from augkd.cache import StageCache
    from augkd.errors import AugkdError
    from augkd.pipeline import run_trial
    from augkd.reproduce import pin_run_settings
    from augkd.runtime import resolve_device

    config = config_from_dict(config_dict)
    cache_root = config.teacher.cache_dir or ""
    try:
        device = resolve_device(config.device, ray.get_gpu_ids())
        config = pin_run_settings(config, cache_root, device)
        result = run_trial(config, cache=StageCache(cache_root), log=lambda _: None, device=device)
    except AugkdError as error:
        return {"error": str(error)}
    return {
        **{k: float(v) for k, v in result.metrics.items() if k in kept},
        "config_yaml": config.to_yaml(),
    }


def top_k_shortfall(candidates: list[Candidate], top_k: int) -> str | None:
    """Why fewer searched configs than --top-k are evaluated, if so: only trials that ran
    to the full budget are candidates, and ASHA may have stopped all but a few."""
    searched = sum(c.kind == "searched" for c in candidates)
    if searched >= top_k:
        return None
    return (
        f"top {top_k} asked, but only {searched} trial(s) of the search ran to the full "
        "budget (ASHA stopped the others early): evaluating those"
    )


def run_evaluation(
    search_path: str,
    top_k: int = 3,
    seeds: int = 5,
    baselines: list[str] | tuple[str, ...] = BASELINES,
    tracking_uri: str | None = None,
    echo: Callable[[str], None] = print,
) -> Evaluation:
    """Run every (candidate, seed) as a Ray task; write the table, baselines and runs."""
    import ray

    candidates, seed_list = plan(search_path, top_k, seeds, list(baselines))
    find_parent_run(search_path, tracking_uri)  # a wrong store fails before any run
    objective = objective_of(recorded_space(search_path))
    kept = _kept_metrics(objective)
    resources = _resources(search_path)
    threads = max(1, int(resources["cpu"]))
    task = ray.remote(num_cpus=resources["cpu"], num_gpus=resources["gpu"])(_run_one)
    device = "auto" if resources["gpu"] > 0 else "cpu"
    pending = {}
    for candidate in candidates:
        for seed in seed_list:
            config = with_overrides(
                candidate.config, {"seed": seed, "threads": threads, "device": device}
            )
            pending[task.remote(config.to_dict(), kept)] = (candidate, seed)
    shortfall = top_k_shortfall(candidates, top_k)
    if shortfall:
        echo(f"[evaluate] {shortfall}")
    echo(
        f"[evaluate] {len(candidates)} methods x {len(seed_list)} fresh seeds {seed_list}: "
        f"{len(pending)} runs"
    )
    progress = RunsProgress(len(pending), echo)
    while pending:
        done, _ = ray.wait(list(pending), num_returns=1)
        candidate, seed = pending.pop(done[0])
        outcome = ray.get(done[0])
        progress.finished(f"{candidate.label} seed {seed}")
        candidate.runs.append({"seed": seed, **outcome})
        if "error" in outcome:
            echo(f"[evaluate] {candidate.label} seed {seed} failed: {outcome['error']}")
        else:
            shown = dict.fromkeys([objective.metric, BEST_VAL_ACC1, TEST_ACC1])
            values = " ".join(f"{label(m)} {outcome[m]:.3g}" for m in shown if m in outcome)
            echo(f"[evaluate] {candidate.label} seed {seed}: {values}")
    evaluation = judge(search_path, seed_list, candidates, objective)
    _write_files(evaluation)
    _log_runs(evaluation, tracking_uri)
    return evaluation


def _kept_metrics(objective: Objective) -> tuple[str, ...]:
    """What each run returns: the reported metrics, the best epoch and the objective."""
    return tuple(dict.fromkeys((*REPORTED, BEST_EPOCH, objective.metric)))


def judge(
    search_path: str, seeds: list[int], candidates: list[Candidate], objective: Objective
) -> Evaluation:
    """The winner among the searched configs and the best baseline, both by the mean of
    the search's objective over the fresh seeds (test never chooses)."""
    searched = [c for c in candidates if c.kind == "searched"]
    compared = [c for c in candidates if c.is_baseline]
    winner = max(searched, key=lambda c: c.score(objective), default=None)
    best_baseline = max(compared, key=lambda c: c.score(objective), default=None)
    return Evaluation(search_path, seeds, candidates, winner, best_baseline, objective)


def _rows(evaluation: Evaluation) -> list[dict[str, Any]]:
    rows = []
    for candidate in evaluation.candidates:
        for run in sorted(candidate.runs, key=lambda r: r["seed"]):
            rows.append({
                "label": candidate.label,
                "method": candidate.config.method,
                "trial_id": candidate.trial_id,
                "winner": candidate is evaluation.winner,
                "defaults": candidate.is_defaults,
                "seed": run["seed"],
                **{k: run.get(k) for k in _kept_metrics(evaluation.objective)},
                **{k: run.get(k) for k in ("error", "config_yaml")},
            })  # fmt: skip
    return rows


def _write_files(evaluation: Evaluation) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    buffer = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(_rows(evaluation)), buffer)
    write_bytes(join_uri(evaluation.search_path, EVALUATION_FILE), buffer.getvalue())
    compared = {WINNER_KEY: evaluation.winner, DEFAULTS: evaluation.defaults}
    compared |= {c.label: c for c in evaluation.candidates if c.is_baseline}
    methods = {
        key: {m: candidate.values(m) for m in REPORTED}
        for key, candidate in compared.items()
        if candidate is not None
    }
    payload = {
        "seeds": evaluation.seeds,
        "objective": evaluation.objective.model_dump(),
        "winner": evaluation.winner.label if evaluation.winner else None,
        "winner_trial_id": evaluation.winner.trial_id if evaluation.winner else None,
        "defaults": evaluation.defaults.label if evaluation.defaults else None,
        "methods": methods,
    }
    write_bytes(
        join_uri(evaluation.search_path, BASELINES_FILE), json.dumps(payload, indent=2).encode()
    )


def find_parent_run(search_path: str, tracking_uri: str | None) -> tuple[Any, str, str]:
    """(client, experiment id, parent run id) of the search in MLflow; a ConfigError
    naming the store when it holds no such search (checked before any run starts)."""
    from mlflow.tracking import MlflowClient

    from augkd.locations import experiment_name, resolve_tracking_uri
    from augkd.search.tracking import SEARCH_TAG, TRIAL_TAG

    uri = resolve_tracking_uri(tracking_uri)
    name = search_path.rstrip("/").rsplit("/", 1)[-1]
    space = _recorded_space(search_path)
    client = MlflowClient(uri)
    try:
        experiment = client.get_experiment_by_name(experiment_name(space["name"]))
        parents = (
            client.search_runs(
                [experiment.experiment_id],
                filter_string=f"tags.`{SEARCH_TAG}` = '{name}' and tags.`{TRIAL_TAG}` = 'parent'",
            )
            if experiment is not None
            else []
        )
    except Exception as error:
        raise ConfigError(
            f"Tracking store {uri} cannot be read ({type(error).__name__}); pass "
            "--tracking-uri the store the search logged to."
        ) from None
    if not parents:
        raise ConfigError(
            f"Tracking store {uri} holds no run of search '{name}'; pass --tracking-uri "
            "the store the search logged to."
        )
    return client, experiment.experiment_id, parents[0].info.run_id


def _log_runs(evaluation: Evaluation, tracking_uri: str | None) -> None:
    """One MLflow run per (candidate, seed) under the search's parent run."""
    from mlflow.entities import Metric, Param, RunTag

    from augkd.search.tracking import SEARCH_TAG, TRIAL_TAG, source_tags

    name = evaluation.search_path.rstrip("/").rsplit("/", 1)[-1]
    client, experiment_id, parent_run_id = find_parent_run(evaluation.search_path, tracking_uri)
    for candidate in evaluation.candidates:
        for run in candidate.runs:
            created = client.create_run(
                experiment_id,
                run_name=f"{name}/evaluate/{candidate.label}/seed{run['seed']}",
                tags={
                    "mlflow.parentRunId": parent_run_id,
                    SEARCH_TAG: name,
                    TRIAL_TAG: f"evaluate-{candidate.label}-seed{run['seed']}",
                    EVALUATION_TAG: candidate.label,
                    "augkd.source_trial_id": candidate.trial_id or "",
                    **source_tags(),
                },
            ).info.run_id
            config = yaml.safe_load(run["config_yaml"]) if run.get("config_yaml") else {}
            params = [Param(k, str(v)[:6000]) for k, v in flatten_dotted(config).items()]
            kept = _kept_metrics(evaluation.objective)
            metrics = [Metric(k, float(run[k]), 0, 0) for k in kept if k in run]
            tags = [RunTag("augkd.error", run["error"][:5000])] if run.get("error") else []
            for start in range(0, max(len(params), 1), 100):
                client.log_batch(
                    created,
                    metrics=metrics if start == 0 else [],
                    params=params[start : start + 100],
                    tags=tags if start == 0 else [],
                )
            client.set_terminated(created, "FAILED" if run.get("error") else "FINISHED")
    summary = []
    if evaluation.winner is not None:
        for metric in _kept_metrics(evaluation.objective):
            summary.append(Metric(f"evaluation_{metric}", evaluation.winner.mean(metric), 0, 0))
    client.log_batch(
        parent_run_id,
        metrics=[m for m in summary if math.isfinite(m.value)],
        tags=[RunTag("augkd.evaluation_winner", evaluation.winner.label)]
        if evaluation.winner
        else [],
    )


def paired_difference(
    method: Candidate, reference: Candidate, metric: str = TEST_ACC1
) -> PairedDifference | None:
    """The per-seed difference of two candidates (the seeds share splits)."""
    return paired_by_seed(method.by_seed(metric), reference.by_seed(metric))


def _difference_cell(candidate: Candidate, reference: Candidate | None) -> str:
    if reference is None or candidate is reference:
        return "-"
    difference = paired_difference(candidate, reference)
    if difference is None:
        return "-"
    return f"{difference}{' (> 2 s.e.)' if difference.beyond() else ''}"


HEADINGS = {
    TEST_ACC1: "test Acc@1",
    TEST_ACC3: "test Acc@3",
    TEST_ACC5: "test Acc@5",
    BEST_VAL_ACC1: "val Acc@1",
}


def format_table(evaluation: Evaluation) -> str:
    """Mean ± std over the fresh seeds; the paired differences in test Acc@1 to the best
    baseline and to the defaults (both chosen or named before looking at test), as mean ±
    its standard error."""
    objective = evaluation.objective
    base, defaults = evaluation.best_baseline, evaluation.defaults
    shown = list(dict.fromkeys([*REPORTED, objective.metric]))
    header = ["method", "seeds", *(HEADINGS.get(m, m) for m in shown)]
    references: dict[str, Candidate] = {}
    if base is not None:
        references[base.label] = base
    if defaults is not None:
        references[DEFAULTS] = defaults
    header += [f"Δ Acc@1 vs {name} (± s.e.)" for name in references]
    lines = []
    for candidate in evaluation.candidates:
        name = candidate.label
        if candidate.trial_id:
            name += f" ({candidate.trial_id})"
        if candidate.is_defaults and candidate.kind != "defaults":
            name += f" = {DEFAULTS}"
        if candidate is evaluation.winner:
            name += " *"
        cells = [name, str(len(candidate.values(TEST_ACC1)))]
        cells += [format_mean_std(candidate.values(m)) for m in shown]
        cells += [_difference_cell(candidate, reference) for reference in references.values()]
        lines.append(cells)
    widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(header)]
    render = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True))  # noqa: E731
    note = f"fresh seeds {evaluation.seeds}; * the winner by mean {objective.label()}"
    if base is not None:
        note += f"; best baseline by mean {objective.metric}: {base.label}"
    if defaults is not None:
        note += f"; {DEFAULTS}: the base config's values of the searched keys"
        if defaults.kind != "defaults":
            note += f" ({defaults.label} is them)"
    return "\n".join([render(header), *(render(line) for line in lines), note])

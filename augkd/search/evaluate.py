"""A search's final answer, as a paper reports it: the top-k configs by val and the
baselines, each re-run over N fresh seeds (seeds the search never used), the same
seeds for every method so that differences are paired.

Every (config, seed) is one Ray task with the trial's resources, reading and filling
the search's stage cache. The winner is chosen by mean VAL, never by test. Writes
``evaluation.parquet`` (one row per run) and ``baselines.json`` (what the report and
the notebook draw) into the search folder, logs one MLflow run per (config, seed)
under the search's parent run, and returns a table of mean ± std of test Acc@1/3/5
with the paired difference to the best baseline.
"""

from __future__ import annotations

import io
import json
import math
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import yaml

from augkd.config import METHODS, Config, config_from_dict, with_overrides
from augkd.errors import ConfigError
from augkd.locations import BASELINES_FILE, EVALUATION_FILE, SPACE_FILE
from augkd.storage import join_uri, read_bytes, uri_is_file, write_bytes

METRICS = ("test_acc1", "test_acc3", "test_acc5", "best_val_acc1")
EVALUATION_TAG = "augkd.evaluation"
BASELINES = ("ce", "kd", "dfkd")


@dataclass
class Candidate:
    """One method to evaluate: a top-k config of the search, or a baseline."""

    label: str
    config: Config
    trial_id: str | None = None
    runs: list[dict[str, Any]] = field(default_factory=list)

    @property
    def is_baseline(self) -> bool:
        return self.trial_id is None

    def values(self, metric: str) -> list[float]:
        return [r[metric] for r in sorted(self.runs, key=lambda r: r["seed"]) if metric in r]

    def mean(self, metric: str) -> float:
        values = self.values(metric)
        return statistics.fmean(values) if values else -math.inf


@dataclass
class Evaluation:
    search_path: str
    seeds: list[int]
    candidates: list[Candidate]
    winner: Candidate | None
    best_baseline: Candidate | None

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


def plan(search_path: str, top_k: int, seeds: int, baselines: list[str]):
    """The candidates (top-k configs and baselines) and the fresh seeds."""
    from augkd.locations import stage_cache_root
    from augkd.search.results import load_results, ranked_completed

    if top_k < 1 or seeds < 1:
        raise ConfigError("--top-k and --seeds must be at least 1.")
    ranked = ranked_completed(search_path)[:top_k]
    cache = stage_cache_root(search_path.rstrip("/").rsplit("/", 1)[0])
    candidates = []
    for place, row in enumerate(ranked, start=1):
        config = config_from_dict(yaml.safe_load(row["config_yaml"]))
        config = with_overrides(config, {"teacher.cache_dir": cache})
        candidates.append(Candidate(f"rank{place}", config, row["trial_id"]))
    for method in baselines:
        config = with_overrides(candidates[0].config, {"method": method})
        candidates.append(Candidate(method, config))
    used = set()
    for row in load_results(search_path):
        if row.get("config_yaml"):
            used.add(int(yaml.safe_load(row["config_yaml"]).get("seed", 0)))
    used |= {c.config.seed for c in candidates}
    return candidates, fresh_seeds(used, seeds)


def _resources(search_path: str) -> dict[str, float]:
    uri = join_uri(search_path, SPACE_FILE)
    space = json.loads(read_bytes(uri)) if uri_is_file(uri) else {}
    resources = space.get("resources") or {}
    return {"cpu": float(resources.get("cpu", 1.0)), "gpu": float(resources.get("gpu", 0.0))}


def _run_one(config_dict: dict[str, Any]) -> dict[str, Any]:
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
        **{k: float(v) for k, v in result.metrics.items() if k in METRICS or k == "best_epoch"},
        "config_yaml": config.to_yaml(),
    }


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
            pending[task.remote(config.to_dict())] = (candidate, seed)
    echo(
        f"[evaluate] {len(candidates)} methods x {len(seed_list)} fresh seeds {seed_list}: "
        f"{len(pending)} runs"
    )
    while pending:
        done, _ = ray.wait(list(pending), num_returns=1)
        candidate, seed = pending.pop(done[0])
        outcome = ray.get(done[0])
        candidate.runs.append({"seed": seed, **outcome})
        if "error" in outcome:
            echo(f"[evaluate] {candidate.label} seed {seed} failed: {outcome['error']}")
        else:
            echo(
                f"[evaluate] {candidate.label} seed {seed}: val {outcome['best_val_acc1']:.1f} "
                f"test {outcome['test_acc1']:.1f}"
            )
    searched = [c for c in candidates if not c.is_baseline]
    compared = [c for c in candidates if c.is_baseline]
    winner = max(searched, key=lambda c: c.mean("best_val_acc1"), default=None)
    best_baseline = max(compared, key=lambda c: c.mean("best_val_acc1"), default=None)
    evaluation = Evaluation(search_path, seed_list, candidates, winner, best_baseline)
    _write_files(evaluation)
    _log_runs(evaluation, tracking_uri)
    return evaluation


def _rows(evaluation: Evaluation) -> list[dict[str, Any]]:
    rows = []
    for candidate in evaluation.candidates:
        for run in sorted(candidate.runs, key=lambda r: r["seed"]):
            rows.append({
                "label": candidate.label,
                "method": candidate.config.method,
                "trial_id": candidate.trial_id,
                "winner": candidate is evaluation.winner,
                "seed": run["seed"],
                **{k: run.get(k) for k in (*METRICS, "best_epoch", "error", "config_yaml")},
            })  # fmt: skip
    return rows


def _write_files(evaluation: Evaluation) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    buffer = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(_rows(evaluation)), buffer)
    write_bytes(join_uri(evaluation.search_path, EVALUATION_FILE), buffer.getvalue())
    methods: dict[str, dict[str, list[float]]] = {}
    if evaluation.winner is not None:
        methods["augkd"] = {m: evaluation.winner.values(m) for m in METRICS}
    for candidate in evaluation.candidates:
        if candidate.is_baseline:
            methods[candidate.label] = {m: candidate.values(m) for m in METRICS}
    payload = {
        "seeds": evaluation.seeds,
        "winner": evaluation.winner.label if evaluation.winner else None,
        "winner_trial_id": evaluation.winner.trial_id if evaluation.winner else None,
        "methods": methods,
    }
    write_bytes(
        join_uri(evaluation.search_path, BASELINES_FILE), json.dumps(payload, indent=2).encode()
    )


def find_parent_run(search_path: str, tracking_uri: str | None) -> tuple[Any, str, str]:
    """(client, experiment id, parent run id) of the search in MLflow; a ConfigError
    naming the store when it holds no such search (checked before any run starts)."""
    from mlflow.tracking import MlflowClient

    from augkd.locations import default_tracking_uri
    from augkd.search.tracking import SEARCH_TAG, TRIAL_TAG

    uri = tracking_uri or default_tracking_uri()
    name = search_path.rstrip("/").rsplit("/", 1)[-1]
    space = json.loads(read_bytes(join_uri(search_path, SPACE_FILE)))
    client = MlflowClient(uri)
    try:
        experiment = client.get_experiment_by_name(f"augkd-{space['name']}")
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

    from augkd.dotted import flatten_dotted
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
            metrics = [Metric(k, float(run[k]), 0, 0) for k in METRICS if k in run]
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
        for metric in METRICS:
            summary.append(Metric(f"evaluation_{metric}", evaluation.winner.mean(metric), 0, 0))
    client.log_batch(
        parent_run_id,
        metrics=[m for m in summary if math.isfinite(m.value)],
        tags=[RunTag("augkd.evaluation_winner", evaluation.winner.label)]
        if evaluation.winner
        else [],
    )


def paired_difference(method: Candidate, baseline: Candidate, metric: str = "test_acc1"):
    """Mean and standard error of the per-seed difference (seeds share splits)."""
    ours = {r["seed"]: r[metric] for r in method.runs if metric in r}
    theirs = {r["seed"]: r[metric] for r in baseline.runs if metric in r}
    diffs = [ours[s] - theirs[s] for s in sorted(ours.keys() & theirs.keys())]
    if not diffs:
        return None
    mean = statistics.fmean(diffs)
    error = statistics.stdev(diffs) / math.sqrt(len(diffs)) if len(diffs) > 1 else math.nan
    return mean, error, len(diffs)


def _cell(values: list[float]) -> str:
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.1f}"
    return f"{statistics.fmean(values):.1f} ± {statistics.stdev(values):.1f}"


def format_table(evaluation: Evaluation) -> str:
    """Mean ± std over the fresh seeds; the paired difference in test Acc@1 to the best
    baseline (chosen by mean val), as mean ± its standard error."""
    base = evaluation.best_baseline
    header = ["method", "seeds", "test Acc@1", "test Acc@3", "test Acc@5", "val Acc@1"]
    if base is not None:
        header.append(f"Δ Acc@1 vs {base.label} (± s.e.)")
    lines = []
    for candidate in evaluation.candidates:
        label = candidate.label
        if candidate.trial_id:
            label += f" ({candidate.trial_id})"
        if candidate is evaluation.winner:
            label += " *"
        cells = [label, str(len(candidate.values("test_acc1")))]
        cells += [_cell(candidate.values(m)) for m in METRICS]
        if base is not None:
            difference = None if candidate is base else paired_difference(candidate, base)
            if difference is None:
                cells.append("-")
            else:
                mean, error, _ = difference
                beyond = math.isfinite(error) and abs(mean) > 2 * error
                cells.append(
                    f"{mean:+.1f} ± {error:.1f}{' (> 2 s.e.)' if beyond else ''}"
                    if math.isfinite(error)
                    else f"{mean:+.1f}"
                )
        lines.append(cells)
    widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(header)]
    render = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True))  # noqa: E731
    note = f"fresh seeds {evaluation.seeds}; * the winner by mean val Acc@1" + (
        f"; best baseline by mean val: {base.label}" if base else ""
    )
    return "\n".join([render(header), *(render(line) for line in lines), note])

"""A search's final answer, decided: the top-k configs by the search's objective, the base
config's defaults (the search's starting point) and the baselines, each re-run over fresh
seeds (seeds the search never used), the same seeds for every method so that differences
are paired, in rounds until the verdict is decided (augkd.search.racing).

Candidates: the k best trials compared at the highest optimizer step that k trials reached
(ASHA completes few; a trial it stopped at a rung is judged where it stood). Baselines: each
runs at its own defaults and at the search's best recipe (Module 3's lr, weight decay and
budget), and the one with the better val after the first round is its row. Every (config,
seed) is one Ray task with the trial's resources, reading and filling the search's stage
cache. The winner and the best baseline are chosen by the mean of the search's objective
(val), never by test. Writes ``evaluation.parquet`` (one row per run, the verdict in its
metadata) and ``baselines.json`` (what the report and the notebook draw) into the search
folder, logs one MLflow run per (config, seed) under the search's parent run and the verdict
on the parent, and returns a table of mean ± std with the paired differences (95 %
intervals) to the best baseline and to the defaults.
"""

from __future__ import annotations

import dataclasses
import io
import json
import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import yaml

from augkd.config import METHODS, Config, config_from_dict, with_overrides
from augkd.dotted import flatten_dotted, get_dotted
from augkd.errors import ConfigError
from augkd.eta import LinePrinter, ProgressFiles, RunsProgress
from augkd.locations import BASELINES_FILE, EVALUATION_FILE, SPACE_FILE
from augkd.metric_names import (
    BEST_EPOCH,
    BEST_VAL_ACC1,
    REPORTED,
    STEP,
    STEPS,
    TEST_ACC1,
    TEST_ACC3,
    TEST_ACC5,
    label,
    ranking_value,
)
from augkd.search.racing import (
    DEFAULT_MARGIN,
    DEFAULT_MAX_SEEDS,
    RaceSettings,
    Verdict,
    clearly_behind,
    decide,
)
from augkd.search.space import Objective, objective_of, recorded_space
from augkd.seed_stats import CONFIDENCE, PairedDifference, format_mean_std, paired_by_seed
from augkd.storage import join_uri, write_bytes

EVALUATION_TAG = "augkd.evaluation"
VERDICT_TAG = "augkd.verdict"
BASELINES = ("ce", "kd", "dfkd")
DEFAULTS = "defaults"
"""The label of the base config's defaults, the search's starting point."""
WINNER_KEY = "augkd"
"""The winner's key in baselines.json (the report draws it as AuG-KD)."""
IGNORED_WHEN_COMPARING = ("threads", "device", "teacher.cache_dir", "seed")
"""Keys a run pins for itself (augkd.reproduce); two configs equal but for these run the
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
VERDICT_METADATA = b"augkd.verdict"
"""evaluation.parquet's schema metadata key holding the verdict (JSON)."""

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
    verdict: Verdict | None = None

    @property
    def defaults(self) -> Candidate | None:
        return next((c for c in self.candidates if c.is_defaults), None)

    def baseline_rows(self) -> dict[str, Candidate]:
        """Each baseline method's row: the recipe that stayed in the race."""
        rows: dict[str, Candidate] = {}
        for candidate in self.candidates:
            if candidate.is_baseline and candidate.dropped is None:
                rows.setdefault(candidate.method, candidate)
        return rows

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


def _trial_config(row: dict[str, Any], base: dict[str, Any]) -> Config:
    """The config a trial ran: its exported config when it completed, else the base with
    its sampled values (what a trial stopped at a rung ran, too)."""
    if row.get("config_yaml"):
        return config_from_dict(yaml.safe_load(row["config_yaml"]))
    from augkd.search.results import PARAM_PREFIX

    sampled = {k.removeprefix(PARAM_PREFIX): v for k, v in row.items()
               if k.startswith(PARAM_PREFIX) and v is not None}  # fmt: skip
    return with_overrides(config_from_dict(base), sampled)


def baseline_recipes(method: str, defaults: Config, best: Candidate) -> list[Candidate]:
    """``method`` at its own defaults and at the best config's shared recipe (one candidate
    when the two are the same config)."""
    own = with_overrides(defaults, {"method": method})
    recipe = {key: get_dotted(best.config.to_dict(), key) for key in SHARED_RECIPE}
    tuned = with_overrides(own, recipe)
    if _same_method(own, tuned):
        return [Candidate(method, own, kind="baseline", recipe=f"{OWN_DEFAULTS} = {best.label}'s")]
    return [
        Candidate(method, own, kind="baseline", recipe=OWN_DEFAULTS),
        Candidate(f"{method}@{best.label}", tuned, kind="baseline", recipe=f"{best.label}'s"),
    ]


def plan(search_path: str, top_k: int, seeds: int, baselines: list[str]):
    """The candidates (top-k configs, the defaults once, each baseline at two recipes) and
    the first round's fresh seeds."""
    from augkd.locations import stage_cache_root
    from augkd.search.results import load_results, ranked_at_common_step

    if top_k < 1 or seeds < 1:
        raise ConfigError("--top-k and --seeds must be at least 1.")
    space = _recorded_space(search_path)
    rows = load_results(search_path)
    ranked = ranked_at_common_step(rows, objective_of(space), top_k)
    if not ranked:
        raise ConfigError(
            f"Search '{search_path}' has no trial that reported a val pass; let it run "
            "longer or resume it with --resume."
        )
    cache = {"teacher.cache_dir": stage_cache_root(search_path.rstrip("/").rsplit("/", 1)[0])}
    defaults = with_overrides(config_from_dict(space["base_resolved"]), cache)
    candidates = []
    for place, (row, step) in enumerate(ranked, start=1):
        config = with_overrides(_trial_config(row, space["base_resolved"]), cache)
        candidates.append(
            Candidate(f"rank{place}", config, row["trial_id"],
                      is_defaults=_same_method(config, defaults), judged_at=step)
        )  # fmt: skip
    if not any(c.is_defaults for c in candidates):
        candidates.append(Candidate(DEFAULTS, defaults, kind="defaults", is_defaults=True))
    for method in baselines:
        candidates += baseline_recipes(method, defaults, candidates[0])
    used = {int(yaml.safe_load(r["config_yaml"]).get("seed", 0)) for r in rows
            if r.get("config_yaml")}  # fmt: skip
    used |= {c.config.seed for c in candidates}
    return candidates, fresh_seeds(used, seeds)


def _resources(search_path: str) -> dict[str, float]:
    resources = (recorded_space(search_path) or {}).get("resources") or {}
    return {"cpu": float(resources.get("cpu", 1.0)), "gpu": float(resources.get("gpu", 0.0))}


def _run_one(
    config_dict: dict[str, Any],
    kept: tuple[str, ...],
    progress: tuple[str, str] | None = None,
) -> dict[str, Any]:
    """A Ray task: one full run; bad input comes back as an error, not an exception.
    ``progress``: (prefix, label) of the files its stages' progress goes to (augkd.eta), as
    a shared-stage task's; Module 3's at each val pass."""
    import ray

    from augkd.cache import StageCache
    from augkd.errors import AugkdError
    from augkd.eta import ProgressFile
    from augkd.pipeline import run_trial
    from augkd.reproduce import pin_run_settings
    from augkd.runtime import resolve_device

    config = config_from_dict(config_dict)
    cache_root = config.teacher.cache_dir or ""
    started = time.perf_counter()
    try:
        device = resolve_device(config.device, ray.get_gpu_ids())
        config = pin_run_settings(config, cache_root, device)
        cache = StageCache(cache_root)
        on_step, on_epoch = None, None
        if progress is not None:
            on_step = ProgressFile(cache.filesystem, *progress).on_step

            def on_epoch(metrics: dict[str, float], _state: Any) -> None:
                if STEP in metrics and STEPS in metrics:
                    on_step("module3", int(metrics[STEP]), int(metrics[STEPS]))

        result = run_trial(
            config, on_epoch, cache=cache, log=lambda _: None, device=device, on_step=on_step
        )
    except AugkdError as error:
        return {"error": str(error), "run_seconds": time.perf_counter() - started}
    return {
        **{k: float(v) for k, v in result.metrics.items() if k in kept},
        "config_yaml": config.to_yaml(),
        "run_seconds": time.perf_counter() - started,
    }


def top_k_shortfall(candidates: list[Candidate], top_k: int) -> str | None:
    """Why fewer searched configs than --top-k are evaluated, if so (fewer trials reported
    a val pass than asked)."""
    searched = sum(c.kind == "searched" for c in candidates)
    if searched >= top_k:
        return None
    return (
        f"top {top_k} asked, but only {searched} trial(s) of the search reported: evaluating those"
    )


RunRound = Callable[[list[tuple[Candidate, int]]], None]
"""Runs each (candidate, seed) and appends its outcome to candidate.runs."""


def race(
    candidates: list[Candidate],
    seed_order: list[int],
    objective: Objective,
    settings: RaceSettings,
    run_round: RunRound,
    echo: Callable[[str], None] = print,
) -> tuple[list[int], Verdict]:
    """Rounds of fresh seeds until the verdict is decided or ``settings.max_seeds`` ran:
    the first round runs every candidate; then each baseline keeps its recipe with the
    better val, and searched configs clearly behind the leader on val leave the race."""
    seeds: list[int] = []
    round_number = 0
    while True:
        round_number += 1
        count = settings.first_seeds if not seeds else settings.round_seeds
        new = seed_order[len(seeds) : min(len(seeds) + count, settings.max_seeds)]
        racing = [c for c in candidates if c.dropped is None]
        echo(
            f"[evaluate] round {round_number}: {len(racing)} methods x seeds {new}: "
            f"{len(racing) * len(new)} runs"
        )
        run_round([(c, seed) for c in racing for seed in new])
        seeds += new
        if round_number == 1:
            _keep_better_recipes(candidates, objective)
        evaluation = judge("", seeds, candidates, objective)
        verdict = decide(
            evaluation.winner, evaluation.defaults, evaluation.best_baseline, seeds, settings
        )
        if verdict.resolved or len(seeds) >= settings.max_seeds:
            break
        searched = [c for c in candidates if c.kind == "searched" and c.dropped is None]
        for behind in clearly_behind(searched, evaluation.winner, objective, settings.level):
            behind.dropped = f"round {round_number}: behind {evaluation.winner.label} on val"
            echo(f"[evaluate] {behind.label} leaves the race ({behind.dropped})")
        echo(f"[evaluate] after {len(seeds)} seeds: {verdict.sentence}")
    runs = [r for c in candidates for r in c.runs]
    spent = sum(float(r.get("run_seconds", 0.0)) for r in runs)
    return seeds, dataclasses.replace(verdict, runs=len(runs), compute_seconds=spent)


def _keep_better_recipes(candidates: list[Candidate], objective: Objective) -> None:
    """Each baseline method's row is the recipe with the better val; the other leaves."""
    by_method: dict[str, list[Candidate]] = {}
    for candidate in candidates:
        if candidate.is_baseline:
            by_method.setdefault(candidate.method, []).append(candidate)
    for variants in by_method.values():
        best = max(variants, key=lambda c: c.score(objective))
        for other in variants:
            if other is not best:
                other.dropped = f"round 1: lower {objective.metric} than {best.label}"


def run_evaluation(
    search_path: str,
    top_k: int = 3,
    seeds: int = 3,
    baselines: list[str] | tuple[str, ...] = BASELINES,
    tracking_uri: str | None = None,
    echo: Callable[[str], None] = print,
    max_seeds: int | None = None,
    margin: float | None = None,
) -> Evaluation:
    """Race the candidates over fresh seeds (Ray tasks); write the table, baselines, runs
    and the verdict."""
    import ray

    settings = RaceSettings(
        first_seeds=seeds,
        max_seeds=max_seeds if max_seeds is not None else max(seeds, DEFAULT_MAX_SEEDS),
        margin=DEFAULT_MARGIN if margin is None else margin,
    )
    # The same fresh seeds in the same order as plan's first round, then the later rounds'.
    candidates, seed_order = plan(search_path, top_k, settings.max_seeds, list(baselines))
    find_parent_run(search_path, tracking_uri)  # a wrong store fails before any run
    objective = objective_of(recorded_space(search_path))
    kept = _kept_metrics(objective)
    resources = _resources(search_path)
    threads = max(1, int(resources["cpu"]))
    # Re-run by hand (below) when a node dies: Ray's own max_retries would also re-run a run
    # its OOM killer ended, without end.
    task = ray.remote(num_cpus=resources["cpu"], num_gpus=resources["gpu"], max_retries=0)(_run_one)
    device = "auto" if resources["gpu"] > 0 else "cpu"
    shortfall = top_k_shortfall(candidates, top_k)
    if shortfall:
        echo(f"[evaluate] {shortfall}")
    for candidate in candidates:
        if candidate.judged_at is not None:
            echo(f"[evaluate] {candidate.label}: trial {candidate.trial_id}, judged at step "
                 f"{candidate.judged_at:g}")  # fmt: skip

    def progress_files(candidate: Candidate, seed: int, attempt: int) -> tuple[str, str]:
        """(prefix, label) of one run's progress files (augkd.eta)."""
        name = f"{candidate.label}-seed{seed}-try{attempt}"
        return watch.path_for(name), f"{candidate.label} seed {seed}"

    def run_round(work: list[tuple[Candidate, int]]) -> None:
        pending = {}
        progress = RunsProgress(len(work), echo)
        for candidate, seed in work:
            config = with_overrides(
                candidate.config, {"seed": seed, "threads": threads, "device": device}
            )
            files = progress_files(candidate, seed, 0)
            pending[task.remote(config.to_dict(), kept, files)] = (candidate, seed, config, 0)
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1, timeout=POLL_S)
            watch.poll()  # the stage each run is in: step/total, rate, ETA
            if not done:
                continue
            candidate, seed, config, lost = pending.pop(done[0])
            try:
                outcome = ray.get(done[0])
            except ray.exceptions.OutOfMemoryError:
                from augkd.memory import KILLED_FOR_MEMORY, stage_sizes

                sizes = stage_sizes(config, _stages_of(config))
                outcome = {"error": f"Ray killed the run {KILLED_FOR_MEMORY} ({sizes})"}
            except (ray.exceptions.NodeDiedError, ray.exceptions.WorkerCrashedError) as error:
                if lost < RUN_RETRIES:
                    files = progress_files(candidate, seed, lost + 1)
                    pending[task.remote(config.to_dict(), kept, files)] = (
                        candidate, seed, config, lost + 1,
                    )  # fmt: skip
                    continue
                outcome = {
                    "error": f"the run lost its worker {lost + 1} times ({type(error).__name__})"
                }
            progress.finished(f"{candidate.label} seed {seed}")
            candidate.runs.append({"seed": seed, **outcome})
            if "error" in outcome:
                echo(f"[evaluate] {candidate.label} seed {seed} failed: {outcome['error']}")
            else:
                shown = dict.fromkeys([objective.metric, BEST_VAL_ACC1, TEST_ACC1])
                values = " ".join(f"{label(m)} {outcome[m]:.3g}" for m in shown if m in outcome)
                echo(f"[evaluate] {candidate.label} seed {seed}: {values}")

    # Each run writes its stages' progress (Module 1 of a fresh seed takes minutes) where
    # the driver reads it while it waits, as for the shared stages (augkd.eta).
    watch = ProgressFiles(candidates[0].config.teacher.cache_dir or "", LinePrinter(echo),
                          prefix="[evaluate]")  # fmt: skip
    try:
        seed_list, verdict = race(candidates, seed_order, objective, settings, run_round, echo)
    finally:
        watch.close()
    evaluation = judge(search_path, seed_list, candidates, objective)
    evaluation.verdict = verdict
    _write_files(evaluation)
    _log_runs(evaluation, tracking_uri)
    echo(f"[evaluate] verdict: {verdict.sentence}")
    return evaluation


POLL_S = 2.0
"""How often the driver reads the runs' progress files while it waits for them."""
RUN_RETRIES = 3
"""How often an evaluation run whose node or worker died is run again (Ray's default)."""


def _stages_of(config: Config) -> list[str]:
    from augkd.memory import trial_stages
    from augkd.method.plans import METHOD_PLANS

    plan = METHOD_PLANS[config.method]
    return trial_stages(config, plan.module1, plan.module2, plan.batches == "mixup")


def _kept_metrics(objective: Objective) -> tuple[str, ...]:
    """What each run returns: the reported metrics, the best epoch, the objective and the
    run's peak memory (augkd.memory_peaks)."""
    from augkd.memory_peaks import PEAK_MEMORY_KEYS

    return tuple(dict.fromkeys((*REPORTED, BEST_EPOCH, objective.metric, *PEAK_MEMORY_KEYS)))


def judge(
    search_path: str, seeds: list[int], candidates: list[Candidate], objective: Objective
) -> Evaluation:
    """The winner among the searched configs still racing, and the best baseline row, both
    by the mean of the search's objective over the fresh seeds (test never chooses)."""
    racing = [c for c in candidates if c.dropped is None]
    searched = [c for c in racing if c.kind == "searched"]
    compared = [c for c in racing if c.is_baseline]
    winner = max(searched, key=lambda c: c.score(objective), default=None)
    best_baseline = max(compared, key=lambda c: c.score(objective), default=None)
    return Evaluation(search_path, seeds, candidates, winner, best_baseline, objective)


def _rows(evaluation: Evaluation) -> list[dict[str, Any]]:
    rows = []
    for candidate in evaluation.candidates:
        for run in sorted(candidate.runs, key=lambda r: r["seed"]):
            rows.append({
                "label": candidate.label,
                "method": candidate.method,
                "trial_id": candidate.trial_id,
                "winner": candidate is evaluation.winner,
                "defaults": candidate.is_defaults,
                "judged_at_step": candidate.judged_at,
                "recipe": candidate.recipe,
                "dropped": candidate.dropped,
                "seed": run["seed"],
                "run_seconds": run.get("run_seconds"),
                **{k: run.get(k) for k in _kept_metrics(evaluation.objective)},
                **{k: run.get(k) for k in ("error", "config_yaml")},
            })  # fmt: skip
    return rows


def _write_files(evaluation: Evaluation) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    verdict = evaluation.verdict.record() if evaluation.verdict else None
    table = pa.Table.from_pylist(_rows(evaluation))
    table = table.replace_schema_metadata(
        {**(table.schema.metadata or {}), VERDICT_METADATA: json.dumps(verdict).encode()}
    )
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    write_bytes(join_uri(evaluation.search_path, EVALUATION_FILE), buffer.getvalue())
    compared = {WINNER_KEY: evaluation.winner, DEFAULTS: evaluation.defaults}
    compared |= evaluation.baseline_rows()
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
        "recipes": {m: c.recipe for m, c in evaluation.baseline_rows().items()},
        "verdict": verdict,
        "methods": methods,
    }
    write_bytes(
        join_uri(evaluation.search_path, BASELINES_FILE), json.dumps(payload, indent=2).encode()
    )


def read_verdict(search_path: str) -> dict[str, Any] | None:
    """The verdict an evaluation wrote into the search folder (None before one ran)."""
    import pyarrow.parquet as pq

    from augkd.storage import read_bytes, uri_is_file

    uri = join_uri(search_path, EVALUATION_FILE)
    if not uri_is_file(uri):
        return None
    metadata = pq.read_schema(io.BytesIO(read_bytes(uri))).metadata or {}
    raw = metadata.get(VERDICT_METADATA)
    return json.loads(raw) if raw else None


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
    tags = [RunTag("augkd.evaluation_winner", evaluation.winner.label)] if evaluation.winner else []
    verdict = evaluation.verdict
    if verdict is not None:
        tags += [
            RunTag(VERDICT_TAG, verdict.sentence[:5000]),
            RunTag(f"{VERDICT_TAG}_decision", verdict.decision),
        ]
        summary += [
            Metric("evaluation_seeds", float(len(verdict.seeds)), 0, 0),
            Metric("evaluation_runs", float(verdict.runs), 0, 0),
            Metric("evaluation_compute_seconds", verdict.compute_seconds, 0, 0),
        ]
        for comparison, name in ((verdict.versus_defaults, "defaults"),
                                 (verdict.versus_baseline, "baseline")):  # fmt: skip
            if comparison is not None and comparison.difference is not None:
                summary += [
                    Metric(f"evaluation_vs_{name}_mean", comparison.difference.mean, 0, 0),
                    Metric(f"evaluation_vs_{name}_half_width", comparison.half_width, 0, 0),
                ]
    client.log_batch(
        parent_run_id, metrics=[m for m in summary if math.isfinite(m.value)], tags=tags
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
    return difference.with_interval(CONFIDENCE) if difference is not None else "-"


def _status(candidate: Candidate) -> str:
    """Which rung judged a searched config, whose recipe a baseline ran, and whether it
    stayed in the race."""
    parts = []
    if candidate.judged_at is not None:
        parts.append(f"judged at step {candidate.judged_at:g}")
    if candidate.recipe is not None:
        parts.append(f"recipe: {candidate.recipe}")
    if candidate.dropped is not None:
        parts.append(f"left {candidate.dropped}")
    return "; ".join(parts) or "-"


HEADINGS = {
    TEST_ACC1: "test Acc@1",
    TEST_ACC3: "test Acc@3",
    TEST_ACC5: "test Acc@5",
    BEST_VAL_ACC1: "val Acc@1",
}


def format_table(evaluation: Evaluation) -> str:
    """Mean ± std over the fresh seeds; the paired differences in test Acc@1 to the best
    baseline and to the defaults (both chosen or named before looking at test), as mean ±
    the half width of its 95 % interval; the verdict last."""
    objective = evaluation.objective
    base, defaults = evaluation.best_baseline, evaluation.defaults
    shown = list(dict.fromkeys([*REPORTED, objective.metric]))
    header = ["method", "seeds", *(HEADINGS.get(m, m) for m in shown)]
    references: dict[str, Candidate] = {}
    if base is not None:
        references[base.label] = base
    if defaults is not None:
        references[DEFAULTS] = defaults
    header += [f"Δ Acc@1 vs {name} ({CONFIDENCE:.0%})" for name in references]
    header.append("how")
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
        cells.append(_status(candidate))
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
    verdict = [f"verdict: {evaluation.verdict.sentence}"] if evaluation.verdict else []
    return "\n".join([render(header), *(render(line) for line in lines), note, *verdict])

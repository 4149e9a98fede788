"""Search spaces: what a space names (a base config, distributions over config keys, the
objective, the sampler, ASHA and the resources; read from YAML by space_file.py), and the
resolved space recorded beside a search's results, which ranks them afterwards."""

from __future__ import annotations

import json
import math
from typing import Any, Literal

import optuna
from pydantic import ConfigDict, Field, field_validator, model_validator

from augkd.basics.config import Config, StrictNumbers, config_from_dict
from augkd.basics.metric_names import (
    DEFAULT_MODE,
    DEFAULT_OBJECTIVE,
    OBJECTIVE_METRICS,
    RUNG_METRICS,
    TEST_METRICS,
    Mode,
    natural_mode,
)
from augkd.storage.files import join_uri, read_bytes, uri_is_file, write_bytes
from augkd.storage.locations import SPACE_FILE


class _Strict(StrictNumbers):
    model_config = ConfigDict(extra="forbid")


class Param(_Strict):
    """One distribution over a config key; ``when`` makes it conditional on another param."""

    type: Literal["float", "log_float", "int", "categorical"]
    low: float | None = None
    high: float | None = None
    step: float | None = None
    choices: list[Any] | None = None
    grid: list[Any] | None = None
    """Values the grid sampler visits (categoricals default to their choices)."""
    when: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _bounds(self) -> Param:
        if self.type == "categorical":
            if not self.choices:
                raise ValueError("a categorical param needs a non-empty 'choices' list")
        else:
            if self.low is None or self.high is None:
                raise ValueError(f"a {self.type} param needs 'low' and 'high'")
            if self.low > self.high:
                raise ValueError(f"low ({self.low}) is greater than high ({self.high})")
            if self.type == "log_float" and self.low <= 0:
                raise ValueError("a log_float param needs low > 0")
        return self

    def bounds_to_check(self) -> list[Any]:
        return list(self.choices or []) if self.type == "categorical" else [self.low, self.high]

    def grid_values(self) -> list[Any] | None:
        return self.grid or (self.choices if self.type == "categorical" else None)

    def distribution(self) -> optuna.distributions.BaseDistribution:
        """The Optuna distribution this param samples from (the one home of that mapping)."""
        from optuna.distributions import (
            CategoricalDistribution,
            FloatDistribution,
            IntDistribution,
        )

        if self.type == "categorical":
            return CategoricalDistribution(list(self.choices or []))
        if self.type == "int":
            return IntDistribution(int(self.low), int(self.high), step=int(self.step or 1))
        return FloatDistribution(
            float(self.low), float(self.high), log=self.type == "log_float", step=self.step
        )


class Objective(_Strict):
    """What the search optimises; everything that ranks trials or candidates follows it."""

    metric: str = DEFAULT_OBJECTIVE
    mode: Mode = DEFAULT_MODE
    seeds: int = Field(1, ge=1, le=8)
    """Each trial runs its settings on this many seeds (the base's seed and the next ones:
    other splits, stages and students) in lockstep and is judged by the mean: a winner picked
    on one seed's val is often picked on noise. Costs that many times the compute."""

    @field_validator("metric")
    @classmethod
    def _reported_every_epoch(cls, metric: str) -> str:
        if metric in TEST_METRICS:
            raise ValueError(
                f"'{metric}' is measured once, on test data, and never chooses anything; "
                f"optimise a val metric such as {DEFAULT_OBJECTIVE}"
            )
        if metric not in OBJECTIVE_METRICS:
            raise ValueError(
                f"'{metric}' is not a metric every epoch reports; choose one of "
                f"{', '.join(OBJECTIVE_METRICS)}"
            )
        return metric

    def label(self) -> str:
        return f"{self.metric} ({self.mode})"


class SamplerSettings(_Strict):
    name: Literal["tpe", "random", "gp", "cmaes", "grid", "nsga2"] = "tpe"
    seed: int | None = 0
    multivariate: bool = True
    n_startup_trials: int = Field(6, ge=0)


class SchedulerSettings(_Strict):
    name: Literal["asha", "fifo"] = "asha"
    grace_period: int = Field(40, ge=1)
    """Module 3's optimizer steps before the first rung (every rung is in optimizer steps,
    the unit of the budget: module3.steps, or module3.epochs times the steps of an epoch)."""
    reduction_factor: float = Field(2.0, gt=1)
    max_steps: int | None = Field(None, ge=1)
    """Defaults to the base config's Module-3 budget in optimizer steps."""
    brackets: int = Field(1, ge=1)
    """ASHA brackets; bracket s places its first rung at grace_period * factor**s, so more
    brackets hedge against a grace period that cuts too early."""
    rung_metric: Literal[RUNG_METRICS] | None = None  # type: ignore[valid-type]
    """The result key ASHA compares at its rungs (default: the objective), each in its own
    direction. Measured with benchmarks/rung_correlation.py, which prints each candidate's
    rank correlation."""

    def milestones(self, max_steps: int, bracket: int = 0) -> list[float]:
        """ASHA's rungs (optimizer steps) of one bracket, ascending, placed as Ray's _Bracket
        does."""
        if self.name != "asha":
            return []
        factor = self.reduction_factor
        count = int(math.log(max_steps / self.grace_period) / math.log(factor) - bracket + 1)
        return [float(self.grace_period * factor ** (k + bracket)) for k in range(max(count, 0))]


class Resources(_Strict):
    cpu: float = Field(1.0, ge=0)
    gpu: float = Field(0.0, ge=0)


class SearchSpace(_Strict):
    name: str = "search"
    base_config: str | None = None
    """A config YAML, relative to this file; ``base`` overrides apply on top."""
    base: dict[str, Any] = Field(default_factory=dict)
    params: dict[str, Param]
    objective: Objective = Field(default_factory=Objective)
    second_objective: Objective | None = None
    """With NSGA-II, e.g. {metric: student_params, mode: min}."""
    sampler: SamplerSettings = Field(default_factory=SamplerSettings)
    scheduler: SchedulerSettings = Field(default_factory=SchedulerSettings)
    num_samples: int = Field(16, ge=1)
    max_concurrent: int = Field(2, ge=1)
    resources: Resources = Field(default_factory=Resources)
    max_failures: int = Field(2, ge=0)
    reuse_actors: bool = True
    """A finished trial's worker process runs the next trial (Tune's reuse_actors): no new
    process that imports torch again (seconds a trial, all before its first rung), and the
    rendered fonts/forms images stay decoded. False: a fresh process for each trial."""
    checkpoint_minutes: float = Field(10.0, ge=0)
    """A trial checkpoints at ASHA's rungs, at its last epoch, and at most this often
    otherwise (0: every epoch). A lost node repeats at most this much of a trial."""
    records_minutes: float = Field(5.0, ge=0)
    """With object storage (s3://), how often the driver copies the MLflow store and the
    Optuna journal into the search folder (augkd.search.records.backup); they are also copied when
    the search ends in any way. 0: only then."""
    name_lease_seconds: float = Field(60.0, gt=0)
    """With object storage (s3://), how long a search's hold on its name outlives a driver
    that died: its driver renews the lease every quarter of this, and a new search with the
    name takes an unrenewed one over after this long. On local storage an OS lock holds the
    name, freed when its driver dies."""
    stop_after_same_failures: int = Field(3, ge=0)
    """Stop the search when its first this-many finished trials all failed with the same
    error (a shared cause such as unreadable data); 0 never stops."""
    stage_retries: int = Field(3, ge=0)
    """How often a task before the trials (the preflight, a seed's shared stages) is run
    again after its worker or node died (a spot reclaim, a kernel's kill); after that the
    search ends with the command that continues it (finished stages stay cached). A task
    Ray's OOM killer ended is not run again: the search ends at once, naming the batch-size
    keys of its stages."""

    # Filled in by load_space, not by the YAML.
    base_resolved: dict[str, Any] = Field(default_factory=dict, exclude=True)

    def base_config_object(self) -> Config:
        return config_from_dict(self.base_resolved)

    def max_steps(self, train_images: int) -> int:
        """ASHA's last rung: scheduler.max_steps, else the base's Module-3 budget in steps on
        ``train_images`` (what the preflight found)."""
        from augkd.method.mixup import module3_budget

        budget = module3_budget(self.base_config_object().module3, train_images)
        return self.scheduler.max_steps or budget.steps

    def rung_objective(self) -> Objective:
        """What ASHA compares at its rungs: the rung metric in its own direction, else the
        objective."""
        metric = self.scheduler.rung_metric
        if metric is None:
            return self.objective
        return Objective(metric=metric, mode=natural_mode(metric))

    def tracked_metrics(self) -> tuple[str, ...]:
        """Every metric something ranks by: kept per epoch and per trial in the results."""
        objectives = (self.objective, self.second_objective, self.rung_objective())
        return tuple(dict.fromkeys(o.metric for o in objectives if o is not None))


def without_credentials(uri: str) -> str:
    """``uri`` without a user:password@ part: a file beside the results is no place for a
    secret (MLflow reads credentials from MLFLOW_TRACKING_USERNAME/PASSWORD)."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(uri)
    if "@" not in parts.netloc:
        return uri
    return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))


def write_recorded_space(
    search_path: str, space: SearchSpace, tracking_uri: str | None = None
) -> None:
    """The resolved space next to the results: what ranks them (its objective), the
    distributions analysis needs (fANOVA), and the MLflow store its runs went to (so that
    `augkd report` finds it without --tracking-uri)."""
    payload = space.model_dump(mode="json")
    payload["base_resolved"] = space.base_resolved
    if tracking_uri is not None:
        payload["tracking_uri"] = without_credentials(tracking_uri)
    write_bytes(join_uri(search_path, SPACE_FILE), json.dumps(payload, indent=2).encode())


def recorded_space(search_path: str) -> dict[str, Any] | None:
    """The space a search wrote next to its results; None when it wrote none."""
    uri = join_uri(search_path, SPACE_FILE)
    return json.loads(read_bytes(uri)) if uri_is_file(uri) else None


def objective_of(space: dict[str, Any] | None) -> Objective:
    """A recorded space's objective; the default (best_val_acc1, max) for a search
    that recorded none."""
    return Objective.model_validate((space or {}).get("objective") or {})


def recorded_objective(search_path: str) -> Objective:
    """What ranks the trials of a search that is known only by its path."""
    return objective_of(recorded_space(search_path))

"""A space's Optuna side: the define-by-run that suggests each param whose condition holds,
the sampler its settings name, and the sampler-scheduler pairings that work worse than a
user may expect."""

from __future__ import annotations

import warnings

import optuna

from augkd.search.prepare.space import SearchSpace


def suggest(space: SearchSpace, trial: optuna.Trial) -> None:
    """Define-by-run: suggest every param whose condition holds, in file order."""
    for key, param in space.params.items():
        if param.when and any(trial.params.get(k) != v for k, v in param.when.items()):
            continue
        distribution = param.distribution()
        SUGGEST[type(distribution)](trial, key, distribution)


SUGGEST = {
    optuna.distributions.CategoricalDistribution: lambda trial, key, d: trial.suggest_categorical(
        key, d.choices
    ),
    optuna.distributions.IntDistribution: lambda trial, key, d: trial.suggest_int(
        key, d.low, d.high, step=d.step, log=d.log
    ),
    optuna.distributions.FloatDistribution: lambda trial, key, d: trial.suggest_float(
        key, d.low, d.high, step=d.step, log=d.log
    ),
}


def build_sampler(space: SearchSpace) -> optuna.samplers.BaseSampler:
    settings = space.sampler
    seed = settings.seed
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    builders = {
        "tpe": lambda: optuna.samplers.TPESampler(
            seed=seed,
            multivariate=settings.multivariate,
            group=settings.multivariate,
            n_startup_trials=settings.n_startup_trials,
            constant_liar=True,
        ),
        "random": lambda: optuna.samplers.RandomSampler(seed=seed),
        "gp": lambda: optuna.samplers.GPSampler(
            seed=seed, n_startup_trials=settings.n_startup_trials
        ),
        # Under ASHA most trials end PRUNED: CMA-ES learns from them at their last value.
        "cmaes": lambda: optuna.samplers.CmaEsSampler(
            seed=seed,
            n_startup_trials=settings.n_startup_trials,
            consider_pruned_trials=space.scheduler.name == "asha",
        ),
        "grid": lambda: optuna.samplers.GridSampler(
            {key: param.grid_values() for key, param in space.params.items()}, seed=seed
        ),
        "nsga2": lambda: optuna.samplers.NSGAIISampler(seed=seed),
    }
    return builders[settings.name]()


def sampler_warnings(space: SearchSpace) -> list[str]:
    """Sampler and scheduler pairings that work, but worse than the user may expect."""
    if space.sampler.name == "gp" and space.scheduler.name == "asha":
        return [
            "the GP sampler learns from COMPLETE trials only, and ASHA stops most trials "
            "early, so GP proposes from few points (close to random search); use "
            "sampler.name=tpe (which learns from pruned trials) or scheduler.name=fifo"
        ]
    return []

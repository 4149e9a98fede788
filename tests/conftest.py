"""Shared fixtures: a tiny but real configuration, a session-wide stage cache, and one
tiny real search (Ray Tune + Optuna + ASHA + MLflow) that several modules read."""

from __future__ import annotations

import pytest

from augkd.config import Config, load_config

TINY = [
    "teacher.epochs=12",
    "module1.epochs=1",
    "module1.iters_per_epoch=4",
    "module1.student_steps=2",
    "module2.epochs=2",
    "module3.epochs=3",
]


@pytest.fixture(scope="session")
def cache_home(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(tmp_path_factory.mktemp("augkd_cache"))


@pytest.fixture
def tiny_config(cache_home: str) -> Config:
    return load_config(None, [*TINY, f"teacher.cache_dir={cache_home}"])


TINY_SEARCH = ["teacher.epochs=5", "module2.epochs=1", "module3.epochs=3", "scheduler.max_epochs=3"]


@pytest.fixture(scope="session")
def tiny_search(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """One real smoke-size search (3 trials of up to 3 epochs, ASHA rungs at 1 and 2), in
    a Ray of its own that is shut down again. Tests read it; none may change it."""
    import ray

    from augkd.search.results import load_results
    from augkd.search.runner import SearchOptions, run_search

    root = tmp_path_factory.mktemp("tiny_search")
    # address="local": never join another process's Ray (runner.init_ray tries "auto").
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        outcome = run_search(
            SearchOptions(
                space="digits",
                storage=str(root),
                tracking_uri=f"sqlite:///{root}/mlflow.db",
                smoke_test=True,
                num_samples=3,
                overrides=TINY_SEARCH,
            ),
            echo=lambda *_: None,
        )
    finally:
        ray.shutdown()
    return {
        "path": outcome.search_path,
        "uri": outcome.tracking_uri,
        "rows": load_results(outcome.search_path),
        "root": root,
    }

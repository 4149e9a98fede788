"""Which searched knobs mattered in a finished search: fANOVA importance of each key for the
objective, at the one fidelity (optimizer step) that `augkd report` draws, and the spread of
the objective there. Reads the search; trains nothing.

    python benchmarks/importances.py augkd_runs/fonts-20261129-092506 --tracking-uri sqlite:///mlflow.db

With few trials at that step (a 16-trial ASHA search leaves about 8 at its full budget),
one odd trial can carry most of the importance: read it with the spread printed under it.
"""

from __future__ import annotations

import argparse
import statistics

import optuna

from augkd import report
from augkd.basics.errors import ConfigError


def importances(search_path: str, tracking_uri: str | None = None, seed: int = 0) -> dict:
    """The fidelity, the trials valued there, their objective's spread, and each key's
    fANOVA importance (summing to 1), most important first."""
    data = report.load_search(search_path, tracking_uri, strict=True)
    study, step, statuses = report.importance_study(data)
    values = [trial.value for trial in study.trials]
    found = {"search": search_path, "step": step, "statuses": statuses, "values": values}
    if len(values) < 2 or len(set(values)) < 2:
        return {**found, "importance": {}}
    evaluator = optuna.importance.FanovaImportanceEvaluator(seed=seed)
    ranked = optuna.importance.get_param_importances(study, evaluator=evaluator)
    return {**found, "importance": dict(ranked)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("search", nargs="+", help="search folders (or storage roots: latest)")
    parser.add_argument("--tracking-uri", default=None, help="MLflow tracking URI")
    args = parser.parse_args(argv)
    for path in args.search:
        try:
            found = importances(path, args.tracking_uri)
        except ConfigError as error:  # one line, as the augkd commands print it
            raise SystemExit(f"error: {error}") from None
        values = found["values"]
        print(f"{found['search']}: step {found['step']}, trials {found['statuses']}")
        if len(values) >= 2:
            print(
                f"  objective there: min {min(values):.1f}  median "
                f"{statistics.median(values):.1f}  max {max(values):.1f}"
            )
        if not found["importance"]:
            print("  too few distinct values for fANOVA")
        for key, share in found["importance"].items():
            print(f"  {key:28s} {share:.2f}")


if __name__ == "__main__":
    main()

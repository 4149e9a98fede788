"""The distributed search, in the order it runs: prepare (the space and the checks before Ray,
the forecast), stages (the shared stages before the trials), run (Ray Tune, Optuna, ASHA),
records (MLflow and the results table), answer (the evaluation, its verdict, the exports)."""

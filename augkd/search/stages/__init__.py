"""The shared stages, produced once per seed (and Module-2 grid point) on workers before the
first trial: the preflight, the stage tasks, their retries, and S3 access checks."""
